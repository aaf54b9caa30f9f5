// http_server.cpp: listeners, connections, in-order replies with delays, drips and stalls.
#include "http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "http2.hpp"

namespace demper_mock {

namespace {
constexpr int kListenBacklog = 4096;
constexpr size_t kReadChunk = 64 * 1024;
constexpr uint64_t kDripTickMs = 50;
constexpr uint64_t kLingerMs = 1000;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kSwitchToH2c =
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

// drip_tick_ms is how often a dripped body advances: often enough to look smooth, and at least one
// byte per tick at low rates.
uint64_t drip_tick_ms(const Reply& reply) {
    return std::max<uint64_t>(kDripTickMs, 1000 / std::max<uint64_t>(reply.drip_bytes_per_sec, 1));
}

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}
// refuse_tunnel answers CONNECT: tests proxy plain http only, so no tunnel is ever opened.
Reply refuse_tunnel() {
    Reply reply = error_reply(405, "CONNECT is not supported: the mock proxies plain http");
    reply.close = true;
    return reply;
}

}  // namespace

struct HttpServer::Connection {
    int fd = -1;
    uint64_t id = 0;
    uint16_t egress_port = 0;
    std::string input;
    size_t input_pos = 0;  // start of the first unanswered request
    std::string output;
    size_t output_pos = 0;
    uint32_t events = 0;         // what epoll currently watches for
    bool busy = false;           // a reply is delayed, dripping or stalled: later requests wait
    bool stalled = false;        // the busy reply will never finish
    bool continue_sent = false;  // 100 Continue already sent for the request being received
    bool close_after = false;    // close once output is flushed; read nothing more
    bool peer_closed = false;    // the client shut down its sending side
    bool lingering = false;      // our side is shut; draining the client's leftovers before close
    bool fresh = true;           // nothing read yet: the input may start with an HTTP/2 preface
    bool http2 = false;          // the client spoke HTTP/2 (prior knowledge)
    std::shared_ptr<Hold> held;  // a request held before it is taken (Reply::hold)
};

// PendingReply is a reply on its way out over more than one loop turn.
struct HttpServer::PendingReply {
    std::string head;
    Reply reply;
    size_t body_sent = 0;
    uint64_t drip_start_ms = 0;
};

HttpServer::HttpServer(EventLoop& loop, RequestHandler& handler, const ProtocolSwitches& switches)
    : loop_(loop), handler_(handler), switches_(switches) {}

HttpServer::~HttpServer() {
    for (auto& [id, conn] : connections_) close(conn->fd);
    for (auto& [fd, port] : listeners_) close(fd);
}

uint16_t HttpServer::listen(const std::string& host, uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
        throw std::runtime_error("not an IPv4 address: " + host);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        fail("bind " + host + ":" + std::to_string(port));
    }
    if (::listen(fd, kListenBacklog) != 0) fail("listen");
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    uint16_t bound = ntohs(addr.sin_port);
    listeners_[fd] = bound;
    loop_.watch(fd, EPOLLIN, [this, fd, bound](uint32_t) { accept_all(fd, bound); });
    return bound;
}

void HttpServer::accept_all(int listen_fd, uint16_t egress_port) {
    for (;;) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                // Out of descriptors: the listener stays readable, and accepting again at once
                // would spin the loop. Stop listening for 50 ms; connections close meanwhile.
                loop_.change_events(listen_fd, 0);
                loop_.after(50, [this, listen_fd] { loop_.change_events(listen_fd, EPOLLIN); });
            }
            return;  // EAGAIN: nothing more to accept
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small replies go out at once
        auto conn = std::make_unique<Connection>();
        conn->fd = fd;
        conn->id = next_connection_id_++;
        conn->egress_port = egress_port;
        conn->events = EPOLLIN | EPOLLRDHUP;
        uint64_t id = conn->id;
        loop_.watch(fd, conn->events,
                    [this, id](uint32_t events) { on_connection_event(id, events); });
        connections_.emplace(id, std::move(conn));
    }
}

HttpServer::Connection* HttpServer::find(uint64_t id) {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second.get();
}

void HttpServer::on_connection_event(uint64_t id, uint32_t events) {
    Connection* conn = find(id);
    if (conn == nullptr) return;
    if (events & (EPOLLERR | EPOLLHUP)) {  // reset, or both directions shut: nothing can be sent
        close_connection(*conn);
        return;
    }
    if ((events & EPOLLOUT) && !flush(*conn)) return;
    if (events & (EPOLLIN | EPOLLRDHUP)) {
        if (!read_input(*conn)) return;
        if (!process_input(*conn)) return;
    }
    settle(*conn);
}

bool HttpServer::read_input(Connection& conn) {
    char buffer[kReadChunk];
    for (;;) {
        ssize_t n = recv(conn.fd, buffer, sizeof buffer, 0);
        if (n > 0) {
            if (!conn.close_after) conn.input.append(buffer, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) {
            conn.peer_closed = true;
            return true;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        close_connection(conn);  // reset by peer
        return false;
    }
}

bool HttpServer::process_input(Connection& conn) {
    if (conn.fresh && !detect_http2(conn)) return flush(conn);
    if (conn.http2) return process_http2(conn);
    while (!conn.busy && !conn.close_after && conn.input_pos < conn.input.size()) {
        std::string_view pending(conn.input);
        pending.remove_prefix(conn.input_pos);
        HttpRequest request;
        size_t head_bytes = 0;
        HeadParse verdict = parse_head(pending, request, head_bytes);
        if (verdict == HeadParse::incomplete) break;
        Arrival arrival{conn.egress_port, now_ms(), unix_now()};
        if (verdict != HeadParse::complete) {
            reject(conn,
                   verdict == HeadParse::head_too_large   ? 431
                   : verdict == HeadParse::body_too_large ? 413
                   : verdict == HeadParse::unsupported    ? 501
                                                          : 400,
                   arrival);
            break;
        }
        if (pending.size() - head_bytes < request.content_length) {
            if (request.expect_continue && !conn.continue_sent) {
                conn.output += kContinue;
                conn.continue_sent = true;
            }
            break;
        }
        request.body.assign(pending.substr(head_bytes, request.content_length));
        conn.input_pos += head_bytes + request.content_length;
        conn.continue_sent = false;
        if (request.upgrade_h2c && switches_.refuse_http2) {
            // The upgraded request is stream 1 of the new HTTP/2 connection.
            refuse_http2_stream(conn, 1, request.path,
                                std::string(kSwitchToH2c) + settings_frame(false));
            break;
        }
        Reply reply =
            request.method == "CONNECT" ? refuse_tunnel() : handler_.handle(request, arrival);
        answer(conn, request, std::move(reply), arrival);
    }
    if (conn.input_pos == conn.input.size()) {
        conn.input.clear();
        conn.input_pos = 0;
    } else if (conn.input_pos > 0) {
        conn.input.erase(0, conn.input_pos);
        conn.input_pos = 0;
    }
    return flush(conn);
}

// detect_http2 looks at the first bytes of a connection for the HTTP/2 client preface, when HTTP/2
// is to be refused; false while they are too few to tell.
bool HttpServer::detect_http2(Connection& conn) {
    if (conn.input.empty()) return true;
    if (switches_.refuse_http2) {
        PrefaceMatch match = match_preface(conn.input);
        if (match == PrefaceMatch::partial) return false;
        if (match == PrefaceMatch::full) {
            conn.http2 = true;
            conn.input.erase(0, kHttp2Preface.size());
            conn.output += settings_frame(false);
        }
    }
    conn.fresh = false;
    return true;
}

// process_http2 reads the client's frames until a request is complete, and refuses it.
bool HttpServer::process_http2(Connection& conn) {
    std::string_view pending(conn.input);
    size_t used = 0;
    while (!conn.close_after) {
        Http2Frame frame;
        size_t consumed = 0;
        FrameParse verdict = next_frame(pending.substr(used), frame, consumed);
        if (verdict == FrameParse::incomplete) break;
        if (verdict == FrameParse::too_large) {
            conn.output += goaway_frame(0, kHttp2FrameSizeError);
            conn.close_after = true;
            break;
        }
        used += consumed;
        auto type = static_cast<Http2FrameType>(frame.type);
        if (type == Http2FrameType::settings && !(frame.flags & kFlagAck)) {
            conn.output += settings_frame(true);
        } else if (type == Http2FrameType::ping && !(frame.flags & kFlagAck)) {
            conn.output += ping_ack(frame.payload);
        } else if ((type == Http2FrameType::headers || type == Http2FrameType::data) &&
                   (frame.flags & kFlagEndStream) && frame.stream != 0) {
            refuse_http2_stream(conn, frame.stream, "-", std::string());
        }
    }
    conn.input.erase(0, used);
    return flush(conn);
}

// refuse_http2_stream answers a stream 405 and ends the connection; `prefix` goes out first.
void HttpServer::refuse_http2_stream(Connection& conn, uint32_t stream, std::string_view path,
                                     std::string prefix) {
    Arrival arrival{conn.egress_port, now_ms(), unix_now()};
    prefix += status_405_frame(stream);
    prefix += goaway_frame(stream, 0);
    handler_.on_reply("H2", path, arrival, 405, prefix.size());
    conn.output += prefix;
    conn.close_after = true;
}

void HttpServer::reject(Connection& conn, int status, const Arrival& arrival) {
    Reply reply = error_reply(status, reason_phrase(status));
    reply.close = true;
    HttpRequest unknown;
    unknown.method = "-";
    unknown.path = "-";
    answer(conn, unknown, std::move(reply), arrival);
}

void HttpServer::answer(Connection& conn, const HttpRequest& request, Reply reply,
                        const Arrival& arrival) {
    if (reply.hold) {
        hold(conn, request, std::move(reply));
        return;
    }
    if (!request.keep_alive) reply.close = true;
    auto pending = std::make_shared<PendingReply>();
    pending->head = serialize_head(reply);
    if (reply.recorded) {
        size_t body_bytes = reply.delivery == Delivery::stall_after_headers ? 0 : reply.body.size();
        handler_.on_reply(request.method, request.path, arrival, reply.status,
                          pending->head.size() + body_bytes);
    }
    pending->reply = std::move(reply);
    if (pending->reply.close) conn.close_after = true;  // read no further requests from here on
    if (pending->reply.delay_ms == 0) {
        send_now(conn, std::move(pending));
        return;
    }
    conn.busy = true;
    uint64_t id = conn.id;
    loop_.after(pending->reply.delay_ms, [this, id, pending]() {
        Connection* delayed = find(id);
        if (delayed == nullptr) return;  // the client left while we were waiting
        send_now(*delayed, pending);
        resume(id);
    });
}

// hold keeps a request for the reply's delay, or until its gate opens, before it is taken: the
// connection is busy meanwhile (its later requests wait), and a client that leaves first abandons
// it (close_connection).
void HttpServer::hold(Connection& conn, const HttpRequest& request, Reply reply) {
    conn.busy = true;
    std::shared_ptr<Gate> gate = reply.hold->gate;
    conn.held = std::move(reply.hold);
    HttpRequest head = request;  // what answer() needs of it, the body aside
    head.body.clear();
    uint64_t id = conn.id;
    auto take = [this, id, head]() {
        Connection* waiting = find(id);
        if (waiting == nullptr || !waiting->held) return;  // the client left: abandoned
        if (waiting->peer_closed) {
            close_connection(*waiting);  // abandons it
            return;
        }
        std::shared_ptr<Hold> held = std::move(waiting->held);
        Arrival taken{waiting->egress_port, now_ms(), unix_now()};
        answer(*waiting, head, held->take(taken), taken);
        resume(id);
    };
    if (!gate) {
        loop_.after(reply.delay_ms, take);
        return;
    }
    // The gate opens inside another connection's request (the control call): the held request is
    // taken from the loop, never from inside that call.
    gate->wait([this, take]() { loop_.after(0, take); });
}

// send_now starts putting `pending` on the wire; the connection stays busy if the body comes later.
void HttpServer::send_now(Connection& conn, std::shared_ptr<PendingReply> pending) {
    conn.output += pending->head;
    const Reply& reply = pending->reply;
    switch (reply.delivery) {
        case Delivery::whole:
            conn.output += reply.body;
            conn.busy = false;
            break;
        case Delivery::stall_after_headers:
            conn.busy = true;
            conn.stalled = true;
            break;
        case Delivery::drip: {
            // The first tick comes from the timer, never from here: finishing a reply synchronously
            // would re-enter process_input from inside itself.
            conn.busy = true;
            pending->drip_start_ms = now_ms();
            uint64_t id = conn.id;
            loop_.after(drip_tick_ms(reply), [this, id, pending]() { drip(id, pending); });
            break;
        }
    }
}

// drip sends the part of the body that is due by now and schedules the next tick.
void HttpServer::drip(uint64_t id, std::shared_ptr<PendingReply> pending) {
    Connection* conn = find(id);
    if (conn == nullptr) return;
    const Reply& reply = pending->reply;
    uint64_t rate = std::max<uint64_t>(reply.drip_bytes_per_sec, 1);
    uint64_t elapsed = now_ms() - pending->drip_start_ms;
    size_t due = std::min<uint64_t>(reply.body.size(), rate * elapsed / 1000);
    if (due > pending->body_sent) {
        conn->output.append(reply.body, pending->body_sent, due - pending->body_sent);
        pending->body_sent = due;
    }
    if (pending->body_sent == reply.body.size()) {
        conn->busy = false;
        resume(id);
        return;
    }
    if (!flush(*conn)) return;
    loop_.after(drip_tick_ms(reply), [this, id, pending]() { drip(id, pending); });
}

// resume continues a connection after an asynchronous step: flush, then answer waiting requests.
void HttpServer::resume(uint64_t id) {
    Connection* conn = find(id);
    if (conn == nullptr || !flush(*conn) || !process_input(*conn)) return;
    settle(*conn);
}

bool HttpServer::flush(Connection& conn) {
    while (conn.output_pos < conn.output.size()) {
        ssize_t n = send(conn.fd, conn.output.data() + conn.output_pos,
                         conn.output.size() - conn.output_pos, MSG_NOSIGNAL);
        if (n > 0) {
            conn.output_pos += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        close_connection(conn);  // EPIPE, ECONNRESET: the client is gone mid-response
        return false;
    }
    if (conn.output_pos == conn.output.size()) {
        conn.output.clear();
        conn.output_pos = 0;
    }
    return true;
}

// settle closes a connection that has nothing more to do, or fixes what epoll watches for.
bool HttpServer::settle(Connection& conn) {
    bool output_pending = conn.output_pos < conn.output.size();
    bool peer_gone =
        conn.peer_closed && (conn.stalled || conn.held || (!conn.busy && !output_pending));
    if (peer_gone) {
        close_connection(conn);
        return false;
    }
    if (conn.close_after && !conn.busy && !output_pending && !conn.lingering) linger(conn);
    update_events(conn);
    return true;
}

// linger shuts our sending side and drains what the client still sends before closing. Closing with
// unread input would make the kernel send a reset, and the client could lose the answer (a 431 or
// 413 sent while it was still uploading).
void HttpServer::linger(Connection& conn) {
    conn.lingering = true;
    shutdown(conn.fd, SHUT_WR);
    uint64_t id = conn.id;
    loop_.after(kLingerMs, [this, id]() {
        if (Connection* slow = find(id)) close_connection(*slow);
    });
}

void HttpServer::update_events(Connection& conn) {
    uint32_t wanted = 0;
    if (!conn.peer_closed && (!conn.close_after || conn.lingering)) wanted |= EPOLLIN | EPOLLRDHUP;
    if (conn.output_pos < conn.output.size()) wanted |= EPOLLOUT;
    if (wanted != conn.events) {
        loop_.change_events(conn.fd, wanted);
        conn.events = wanted;
    }
}

void HttpServer::close_connection(Connection& conn) {
    if (std::shared_ptr<Hold> held = std::move(conn.held)) held->abandon();
    loop_.unwatch(conn.fd);
    close(conn.fd);
    connections_.erase(conn.id);  // destroys conn: callers return right after
}

}  // namespace demper_mock
