// http2.cpp: HTTP/2 frame reading and the few frames the mock writes.
#include "http2.hpp"

#include <algorithm>

namespace demper_mock {

namespace {

constexpr size_t kFrameHeaderBytes = 9;

void append_u32(std::string& out, uint32_t value) {
    out += static_cast<char>((value >> 24) & 0xFF);
    out += static_cast<char>((value >> 16) & 0xFF);
    out += static_cast<char>((value >> 8) & 0xFF);
    out += static_cast<char>(value & 0xFF);
}

std::string frame(Http2FrameType type, uint8_t flags, uint32_t stream, std::string_view payload) {
    std::string out;
    out.reserve(kFrameHeaderBytes + payload.size());
    out += static_cast<char>((payload.size() >> 16) & 0xFF);
    out += static_cast<char>((payload.size() >> 8) & 0xFF);
    out += static_cast<char>(payload.size() & 0xFF);
    out += static_cast<char>(type);
    out += static_cast<char>(flags);
    append_u32(out, stream & 0x7FFFFFFF);
    out.append(payload);
    return out;
}

uint8_t byte_at(std::string_view input, size_t i) { return static_cast<uint8_t>(input[i]); }

}  // namespace

PrefaceMatch match_preface(std::string_view input) {
    size_t n = std::min(input.size(), kHttp2Preface.size());
    if (input.substr(0, n) != kHttp2Preface.substr(0, n)) return PrefaceMatch::no;
    return n == kHttp2Preface.size() ? PrefaceMatch::full : PrefaceMatch::partial;
}

FrameParse next_frame(std::string_view input, Http2Frame& out, size_t& consumed) {
    if (input.size() < kFrameHeaderBytes) return FrameParse::incomplete;
    size_t length = (static_cast<size_t>(byte_at(input, 0)) << 16) |
                    (static_cast<size_t>(byte_at(input, 1)) << 8) | byte_at(input, 2);
    if (length > kHttp2MaxFrameBytes) return FrameParse::too_large;
    if (input.size() < kFrameHeaderBytes + length) return FrameParse::incomplete;
    out.type = byte_at(input, 3);
    out.flags = byte_at(input, 4);
    out.stream = ((static_cast<uint32_t>(byte_at(input, 5)) << 24) |
                  (static_cast<uint32_t>(byte_at(input, 6)) << 16) |
                  (static_cast<uint32_t>(byte_at(input, 7)) << 8) | byte_at(input, 8)) &
                 0x7FFFFFFF;
    out.payload = input.substr(kFrameHeaderBytes, length);
    consumed = kFrameHeaderBytes + length;
    return FrameParse::complete;
}

std::string settings_frame(bool ack) {
    return frame(Http2FrameType::settings, ack ? kFlagAck : 0, 0, {});
}

std::string ping_ack(std::string_view payload) {
    return frame(Http2FrameType::ping, kFlagAck, 0, payload);
}

std::string status_405_frame(uint32_t stream) {
    // 0x08: literal header field without indexing, indexed name 8 (":status" in the static table);
    // 0x03: a 3-byte string, Huffman bit clear.
    static constexpr char kBlock[] = {0x08, 0x03, '4', '0', '5'};
    return frame(Http2FrameType::headers, kFlagEndStream | kFlagEndHeaders, stream,
                 std::string_view(kBlock, sizeof kBlock));
}

std::string goaway_frame(uint32_t last_stream, uint32_t error) {
    std::string payload;
    append_u32(payload, last_stream & 0x7FFFFFFF);
    append_u32(payload, error);
    return frame(Http2FrameType::goaway, 0, 0, payload);
}

}  // namespace demper_mock
