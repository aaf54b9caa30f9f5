// http2.hpp: just enough cleartext HTTP/2 (h2c, RFC 9113) to refuse a request the way Kaspi's WAF
// is reported to refuse non-browser HTTP/2 POSTs: with 405.
//
// The mock does not serve HTTP/2. With the refusal switched on (POST /_mock/http2), a connection
// that starts with the client preface (prior knowledge), or an HTTP/1.1 request carrying
// "Upgrade: h2c", gets: the server's SETTINGS, a SETTINGS ACK for the client's, and on the
// request's stream a HEADERS frame holding only ":status: 405" with END_STREAM, then GOAWAY, and
// the connection closes. Header blocks are not decoded (no HPACK decoder), so every HTTP/2 request
// is refused whatever its method and path. With the switch off, a preface reads as a malformed
// HTTP/1.1 request (400 and close) and Upgrade headers are ignored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace demper_mock {

constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class PrefaceMatch { no, partial, full };

// match_preface says whether `input` starts with the client preface, or could once more arrives.
PrefaceMatch match_preface(std::string_view input);

enum class Http2FrameType : uint8_t {
    data = 0x0,
    headers = 0x1,
    settings = 0x4,
    ping = 0x6,
    goaway = 0x7,
    continuation = 0x9,
};

constexpr uint8_t kFlagEndStream = 0x1;
constexpr uint8_t kFlagAck = 0x1;  // on SETTINGS and PING
constexpr uint8_t kFlagEndHeaders = 0x4;
constexpr uint32_t kHttp2FrameSizeError = 0x6;
constexpr size_t kHttp2MaxFrameBytes = 16384;  // SETTINGS_MAX_FRAME_SIZE's initial value

struct Http2Frame {
    uint8_t type = 0;
    uint8_t flags = 0;
    uint32_t stream = 0;
    std::string_view payload;
};

enum class FrameParse { incomplete, complete, too_large };

// next_frame reads the frame at the front of `input`; on `complete` sets `consumed` to its size.
FrameParse next_frame(std::string_view input, Http2Frame& frame, size_t& consumed);

// settings_frame is an empty SETTINGS (all defaults), or its ACK.
std::string settings_frame(bool ack);
// ping_ack echoes a PING's opaque data.
std::string ping_ack(std::string_view payload);
// status_405_frame is HEADERS on `stream` with END_STREAM and END_HEADERS, its block ":status: 405"
// as one HPACK literal without indexing, name index 8 (":status"), value not Huffman-coded.
std::string status_405_frame(uint32_t stream);
// goaway_frame ends the connection after `last_stream`, with `error` (0 = NO_ERROR).
std::string goaway_frame(uint32_t last_stream, uint32_t error);

}  // namespace demper_mock
