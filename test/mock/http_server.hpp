// http_server.hpp: non-blocking HTTP/1.1 server on the event loop.
//
// Vocabulary: an *egress* is one listening port. Tests point each of the client's egresses (its
// "IPs" or proxies) at a different port, so the port a request arrived on stands for the client IP
// in ban emulation, stats and the log.
//
// A connection answers its requests strictly in order (pipelining needs that): while a reply is in
// flight (delayed, dripping or stalled) the requests behind it wait in the input buffer. The server
// knows nothing of the marketplace; a RequestHandler turns each request into a Reply.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "event_loop.hpp"
#include "http_message.hpp"

namespace demper_mock {

// Arrival says where and when a request came in.
struct Arrival {
    uint16_t egress_port = 0;
    uint64_t at_ms = 0;    // monotonic
    double unix_time = 0;  // wall clock
};

// ProtocolSwitches are the server-wide behaviours the control API can turn on.
struct ProtocolSwitches {
    bool refuse_http2 = false;  // answer every HTTP/2 request 405 (http2.hpp)
};

class RequestHandler {
  public:
    virtual ~RequestHandler() = default;
    // handle answers one complete request.
    virtual Reply handle(const HttpRequest& request, const Arrival& arrival) = 0;
    // on_reply is told of every recorded reply when it is planned, with the bytes it will put on
    // the wire (fewer reach the client if it disconnects first). Malformed requests arrive here as
    // method "-", refused HTTP/2 requests as method "H2" (path "-" unless it came with an
    // HTTP/1.1 upgrade).
    virtual void on_reply(std::string_view method, std::string_view path, const Arrival& arrival,
                          int status, size_t wire_bytes) = 0;
};

class HttpServer {
  public:
    HttpServer(EventLoop& loop, RequestHandler& handler, const ProtocolSwitches& switches);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // listen binds host:port (port 0 picks a free one) and returns the bound port. Throws on
    // failure.
    uint16_t listen(const std::string& host, uint16_t port);

  private:
    struct Connection;
    struct PendingReply;

    EventLoop& loop_;
    RequestHandler& handler_;
    const ProtocolSwitches& switches_;
    std::unordered_map<int, uint16_t> listeners_;  // fd -> egress port
    std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
    uint64_t next_connection_id_ = 1;

    void accept_all(int listen_fd, uint16_t egress_port);
    void on_connection_event(uint64_t id, uint32_t events);
    Connection* find(uint64_t id);

    // Each of these may close the connection; they return false when it is gone.
    bool read_input(Connection& conn);
    bool process_input(Connection& conn);
    bool detect_http2(Connection& conn);
    bool process_http2(Connection& conn);
    void refuse_http2_stream(Connection& conn, uint32_t stream, std::string_view path,
                             std::string prefix);
    bool flush(Connection& conn);
    bool settle(Connection& conn);

    void answer(Connection& conn, const HttpRequest& request, Reply reply, const Arrival& arrival);
    void hold(Connection& conn, const HttpRequest& request, Reply reply);
    void reject(Connection& conn, int status, const Arrival& arrival);
    void send_now(Connection& conn, std::shared_ptr<PendingReply> pending);
    void drip(uint64_t id, std::shared_ptr<PendingReply> pending);
    void resume(uint64_t id);
    void update_events(Connection& conn);
    void linger(Connection& conn);
    void close_connection(Connection& conn);
};

}  // namespace demper_mock
