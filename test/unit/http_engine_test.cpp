// Unit tests for core/http_engine against a tiny HTTP/1.1 server living inside this file.
#include "core/http_engine.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace demper::core {
namespace {

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// ---------------------------------------------------------------------------------------------
// TestServer: one thread accepting on 127.0.0.1:0, one thread per connection, keep-alive,
// canned answers chosen by a handler. It records every request and the peak concurrency.

struct SeenRequest {
    std::string method;
    std::string target;  // origin-form "/x" or, through a proxy, absolute-form "http://h:p/x"
    std::string host_header;
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names
    double at = 0;                               // steady clock seconds at arrival
    int index = 0;                               // 0-based arrival order
};

struct CannedResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body = "{}";
    std::vector<std::string> headers;  // extra "Name: value" lines
    int delay_ms = 0;                  // before anything is sent
    int stall_after_headers_ms = 0;    // headers (with Content-Length) sent, then silence
    bool no_content_length = false;    // body delimited by closing the connection
    bool close = false;
};

class TestServer {
  public:
    using Handler = std::function<CannedResponse(const SeenRequest&)>;

    explicit TestServer(Handler handler) : handler_(std::move(handler)) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(listen_fd_, 256) != 0) {
            throw std::runtime_error("test server: bind/listen failed");
        }
        socklen_t len = sizeof addr;
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    ~TestServer() { stop(); }

    void stop() {
        if (stopping_.exchange(true)) return;
        acceptor_.join();
        ::close(listen_fd_);
        std::vector<std::thread> conns;
        {
            std::lock_guard<std::mutex> lock(mu_);
            conns.swap(connections_);
        }
        for (auto& t : conns) t.join();
    }

    int port() const { return port_; }
    std::string url(const std::string& path = "/offers/1") const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }
    std::vector<SeenRequest> requests() const {
        std::lock_guard<std::mutex> lock(mu_);
        return seen_;
    }
    std::size_t request_count() const {
        std::lock_guard<std::mutex> lock(mu_);
        return seen_.size();
    }
    int peak_concurrency() const { return peak_; }
    int connections_accepted() const { return accepted_; }

  private:
    void accept_loop() {
        while (!stopping_) {
            pollfd p{listen_fd_, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            ++accepted_;
            std::lock_guard<std::mutex> lock(mu_);
            connections_.emplace_back([this, fd] { serve(fd); });
        }
    }

    // sleep_ms sleeps in small slices so that stop() is never held up for long.
    bool sleep_ms(int ms) {
        const double until = now_s() + ms / 1000.0;
        while (now_s() < until) {
            if (stopping_) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return true;
    }

    bool send_all(int fd, const std::string& data) {
        std::size_t off = 0;
        while (off < data.size()) {
            const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return false;
            off += static_cast<std::size_t>(n);
        }
        return true;
    }

    // read_request reads one request into `req`; false when the peer closed or we stop.
    bool read_request(int fd, std::string& buffer, SeenRequest& req) {
        std::size_t header_end;
        while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
            if (!read_more(fd, buffer)) return false;
            if (buffer[0] == '\x16') {  // a TLS ClientHello: answer in plain text and hang up
                send_all(fd, "HTTP/1.1 400 Plain HTTP here\r\n\r\n");
                return false;
            }
        }
        const std::string head = buffer.substr(0, header_end);
        buffer.erase(0, header_end + 4);
        std::size_t line_end = head.find("\r\n");
        const std::string request_line = head.substr(0, line_end);
        const std::size_t sp1 = request_line.find(' ');
        const std::size_t sp2 = request_line.rfind(' ');
        req.method = request_line.substr(0, sp1);
        req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
        std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
        while (pos < head.size()) {
            std::size_t end = head.find("\r\n", pos);
            if (end == std::string::npos) end = head.size();
            const std::string line = head.substr(pos, end - pos);
            pos = end + 2;
            const std::size_t colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string name = line.substr(0, colon);
            for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            req.headers[name] = value;
        }
        req.host_header = req.headers["host"];
        const std::size_t length =
            req.headers.count("content-length") ? std::stoul(req.headers["content-length"]) : 0;
        while (buffer.size() < length) {
            if (!read_more(fd, buffer)) return false;
        }
        req.body = buffer.substr(0, length);
        buffer.erase(0, length);
        return true;
    }

    bool read_more(int fd, std::string& buffer) {
        while (!stopping_) {
            pollfd p{fd, POLLIN, 0};
            const int r = ::poll(&p, 1, 20);
            if (r == 0) continue;
            if (r < 0) return false;
            char chunk[4096];
            const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) return false;
            buffer.append(chunk, static_cast<std::size_t>(n));
            return true;
        }
        return false;
    }

    void serve(int fd) {
        std::string buffer;
        while (!stopping_) {
            SeenRequest req;
            if (!read_request(fd, buffer, req)) break;
            req.at = now_s();
            {
                std::lock_guard<std::mutex> lock(mu_);
                req.index = static_cast<int>(seen_.size());
                seen_.push_back(req);
            }
            const int now_busy = ++busy_;
            int peak = peak_;
            while (now_busy > peak && !peak_.compare_exchange_weak(peak, now_busy)) {
            }
            const CannedResponse r = handler_(req);
            const bool ok = respond(fd, r);
            --busy_;
            if (!ok || r.close || r.no_content_length) break;
        }
        ::close(fd);
    }

    bool respond(int fd, const CannedResponse& r) {
        if (r.delay_ms > 0 && !sleep_ms(r.delay_ms)) return false;
        std::string head = "HTTP/1.1 " + std::to_string(r.status) + " Canned\r\n";
        if (!r.content_type.empty()) head += "Content-Type: " + r.content_type + "\r\n";
        if (!r.no_content_length) {
            head += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
        }
        if (r.close || r.no_content_length) head += "Connection: close\r\n";
        for (const auto& h : r.headers) head += h + "\r\n";
        head += "\r\n";
        if (r.stall_after_headers_ms <= 0) return send_all(fd, head + r.body);  // one segment
        if (!send_all(fd, head)) return false;
        if (!sleep_ms(r.stall_after_headers_ms)) return false;
        return send_all(fd, r.body);
    }

    Handler handler_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;
    mutable std::mutex mu_;
    std::vector<std::thread> connections_;
    std::vector<SeenRequest> seen_;
    std::atomic<int> busy_{0};
    std::atomic<int> peak_{0};
    std::atomic<int> accepted_{0};
};

CannedResponse ok_json(const std::string& body = R"({"offers":[]})") {
    CannedResponse r;
    r.body = body;
    return r;
}

EngineConfig test_config() {
    EngineConfig c;
    c.allowed_hosts = "127.0.0.1";
    c.requests_per_second = 1000;
    c.burst = 100;
    c.timeout_ms = 5000;
    c.connect_timeout_ms = 2000;
    c.backoff_base_s = 0.02;
    c.backoff_cap_s = 0.2;
    c.backoff_seed = 1;
    c.egress_cooldown_s = 0.05;
    return c;
}

HttpRequest make_request(std::uint64_t id, const std::string& url) {
    HttpRequest r;
    r.id = id;
    r.url = url;
    r.body = R"({"cityId":"750000000"})";
    r.headers = {"Content-Type: application/json", "Cookie: mc-session=SECRET"};
    return r;
}

// Loop drives the engine the way the worker does: wait on wait_fd() for next_timeout_ms(), then
// perform(). A -1 timeout (nothing pending) is capped so a broken engine cannot hang the test.
struct Loop {
    explicit Loop(HttpEngine& e) : engine(e) {}
    HttpEngine& engine;
    std::vector<HttpResponse> done;
    std::size_t peak_in_flight = 0;

    bool run_until(std::size_t expected, double max_seconds,
                   const std::function<void()>& on_tick = {}) {
        const double deadline = now_s() + max_seconds;
        while (done.size() < expected && now_s() < deadline) {
            tick();
            if (on_tick) on_tick();
        }
        return done.size() >= expected;
    }
    void run_for(double seconds, const std::function<void()>& on_tick = {}) {
        const double deadline = now_s() + seconds;
        while (now_s() < deadline) {
            tick();
            if (on_tick) on_tick();
        }
    }
    void tick() {
        long timeout = engine.next_timeout_ms();
        if (timeout < 0 || timeout > 200) timeout = 200;
        pollfd p{engine.wait_fd(), POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(timeout));
        engine.perform();
        peak_in_flight = std::max(peak_in_flight, engine.in_flight());
        for (auto& r : engine.take_completed()) done.push_back(std::move(r));
    }
};

std::size_t open_fd_count() {
    std::size_t n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (::readdir(d) != nullptr) ++n;
        ::closedir(d);
    }
    return n;
}

// ---------------------------------------------------------------------------------------------

TEST(HttpEngineBasics, ErrorClassNames) {
    EXPECT_STREQ(error_class_name(ErrorClass::none), "none");
    EXPECT_STREQ(error_class_name(ErrorClass::http_4xx), "http_4xx");
    EXPECT_STREQ(error_class_name(ErrorClass::http_5xx), "http_5xx");
    EXPECT_STREQ(error_class_name(ErrorClass::refused_host), "refused_host");
    EXPECT_STREQ(error_class_name(ErrorClass::canceled), "canceled");
    EXPECT_STREQ(error_class_name(ErrorClass::too_large), "too_large");
    EXPECT_STREQ(error_class_name(ErrorClass::bad_body), "bad_body");
}

TEST(HttpEngineBasics, IdleEngineHasNothingPending) {
    HttpEngine e(test_config());
    EXPECT_GE(e.wait_fd(), 0);
    EXPECT_EQ(e.next_timeout_ms(), -1);
    e.perform();
    EXPECT_TRUE(e.take_completed().empty());
    EXPECT_EQ(e.in_flight(), 0u);
    EXPECT_EQ(e.queued(), 0u);
}

TEST(HttpEngine, SingleRequestRoundTrip) {
    TestServer server(
        [](const SeenRequest& req) { return ok_json(R"({"echo":)" + req.body + "}"); });
    HttpEngine e(test_config());
    e.submit(make_request(42, server.url("/yml/offer-view/offers/101")));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    const HttpResponse& r = loop.done[0];
    EXPECT_EQ(r.id, 42u);
    EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"echo":{"cityId":"750000000"}})");
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.attempts, 1);
    EXPECT_GT(r.elapsed_ms, 0);
    EXPECT_GT(r.request_ms, 0);
    EXPECT_LE(r.request_ms, r.elapsed_ms);
    auto seen = server.requests();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].method, "POST");
    EXPECT_EQ(seen[0].target, "/yml/offer-view/offers/101");
    EXPECT_EQ(seen[0].headers["content-type"], "application/json");
    EXPECT_EQ(seen[0].headers["user-agent"], "demper/0.1");
    EXPECT_EQ(seen[0].headers.count("expect"), 0u);
    EXPECT_EQ(e.counters().requests, 1u);
    EXPECT_EQ(e.counters().completed_ok, 1u);
    EXPECT_EQ(e.next_timeout_ms(), -1);
}

TEST(HttpEngine, ManyRequestsCompleteWithinMaxInflight) {
    TestServer server([](const SeenRequest&) {
        CannedResponse r = ok_json();
        r.delay_ms = 5;
        return r;
    });
    EngineConfig c = test_config();
    c.max_inflight = 8;
    HttpEngine e(c);
    constexpr int kRequests = 300;
    for (int i = 0; i < kRequests; ++i) e.submit(make_request(i, server.url()));
    EXPECT_EQ(e.queued(), static_cast<std::size_t>(kRequests));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(kRequests, 60));
    std::set<std::uint64_t> ids;
    for (const auto& r : loop.done) {
        EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
        ids.insert(r.id);
    }
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(kRequests));
    EXPECT_LE(loop.peak_in_flight, 8u);
    EXPECT_GE(loop.peak_in_flight, 2u);
    EXPECT_LE(server.peak_concurrency(), 8);
    // keep-alive: connections are reused rather than opened per request
    EXPECT_LE(server.connections_accepted(), 16);
    EXPECT_EQ(e.counters().completed_ok, static_cast<std::uint64_t>(kRequests));
}

// Easy handles are reused from one request to the next (curl_easy_reset): nothing of a request
// (method, body, headers, cookies) may reach the next one sent on the same handle.
TEST(HttpEngine, ReusedHandlesCarryNothingOver) {
    TestServer server([](const SeenRequest& req) { return ok_json(R"({"n":)" + std::to_string(req.index) + "}"); });
    auto cfg = test_config();
    cfg.max_inflight = 1;  // one handle at a time: each request reuses the previous one's
    HttpEngine e(cfg);
    Loop loop{e};
    const int rounds = 30;
    for (int i = 0; i < rounds; i++) {
        HttpRequest r;
        r.id = static_cast<std::uint64_t>(i);
        r.url = server.url("/r/" + std::to_string(i));
        switch (i % 3) {
            case 0:  // POST with a body and a secret header
                r.method = "POST";
                r.body = "{\"i\":" + std::to_string(i) + "}";
                r.headers = {"Content-Type: application/json", "Cookie: mc-session=SECRET" + std::to_string(i)};
                break;
            case 1:  // GET without headers
                r.method = "GET";
                break;
            default:  // PUT with another header
                r.method = "PUT";
                r.body = "x" + std::to_string(i);
                r.headers = {"X-Only: " + std::to_string(i)};
        }
        e.submit(std::move(r));
        ASSERT_TRUE(loop.run_until(static_cast<std::size_t>(i + 1), 10)) << "request " << i;
    }
    auto seen = server.requests();
    ASSERT_EQ(seen.size(), static_cast<std::size_t>(rounds));
    for (int i = 0; i < rounds; i++) {
        SeenRequest& q = seen[static_cast<std::size_t>(i)];
        EXPECT_EQ(q.target, "/r/" + std::to_string(i));
        switch (i % 3) {
            case 0:
                EXPECT_EQ(q.method, "POST");
                EXPECT_EQ(q.body, "{\"i\":" + std::to_string(i) + "}");
                EXPECT_EQ(q.headers["cookie"], "mc-session=SECRET" + std::to_string(i));
                EXPECT_EQ(q.headers.count("x-only"), 0u);
                break;
            case 1:
                EXPECT_EQ(q.method, "GET") << i;
                EXPECT_EQ(q.body, "") << i;
                EXPECT_EQ(q.headers.count("cookie"), 0u) << i;
                EXPECT_EQ(q.headers.count("content-type"), 0u) << i;
                break;
            default:
                EXPECT_EQ(q.method, "PUT");
                EXPECT_EQ(q.body, "x" + std::to_string(i));
                EXPECT_EQ(q.headers["x-only"], std::to_string(i));
                EXPECT_EQ(q.headers.count("cookie"), 0u) << i;
        }
        EXPECT_EQ(q.headers["user-agent"], "demper/0.1");
    }
    for (const HttpResponse& r : loop.done) EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
}

TEST(HttpEngine, AdmissionRateIsRespected) {
    TestServer server([](const SeenRequest&) { return ok_json(); });
    EngineConfig c = test_config();
    c.requests_per_second = 50;
    c.burst = 5;
    HttpEngine e(c);
    for (int i = 0; i < 300; ++i) e.submit(make_request(i, server.url()));
    const double start = now_s();
    Loop loop{e};
    loop.run_for(1.0);
    // Every request arriving by start + 1 s was admitted between start and start + 1 s: at most
    // the burst plus 1 s of refill. (Lateness can only lower the count.)
    std::size_t in_window = 0;
    for (const auto& r : server.requests()) in_window += r.at <= start + 1.0 ? 1 : 0;
    EXPECT_LE(in_window, 55u);
    EXPECT_GE(in_window, 20u);  // it does flow
    EXPECT_GT(e.counters().rate_limit_waits, 0u);
    EXPECT_GT(e.queued(), 0u);
    // while queued, the engine asks to be woken for the next token, not much later
    const long t = e.next_timeout_ms();
    EXPECT_GE(t, 0);
    EXPECT_LE(t, 25);
    e.cancel_all();
    EXPECT_EQ(e.queued(), 0u);
}

TEST(HttpEngine, TimeoutOnServerThatStallsAfterHeaders) {
    TestServer server([](const SeenRequest&) {
        CannedResponse r = ok_json(std::string(100, 'x'));
        r.stall_after_headers_ms = 10000;
        return r;
    });
    EngineConfig c = test_config();
    c.timeout_ms = 300;
    c.max_attempts = 1;
    HttpEngine e(c);
    e.submit(make_request(1, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::timeout) << loop.done[0].error_detail;
    EXPECT_GE(loop.done[0].elapsed_ms, 250);
    EXPECT_LT(loop.done[0].elapsed_ms, 5000);
    EXPECT_EQ(loop.done[0].error_detail.find("SECRET"), std::string::npos);
}

TEST(HttpEngine, QueueTimeDoesNotCountTowardsTheTimeout) {
    TestServer server([](const SeenRequest&) {
        CannedResponse r = ok_json();
        r.delay_ms = 100;
        return r;
    });
    EngineConfig c = test_config();
    c.requests_per_second = 2;  // the 4th request waits ~1.5 s in the queue
    c.burst = 1;
    c.timeout_ms = 700;
    c.max_attempts = 1;
    HttpEngine e(c);
    for (int i = 0; i < 4; ++i) e.submit(make_request(i, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(4, 20));
    for (const auto& r : loop.done) {
        EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
        EXPECT_LT(r.request_ms, 700);
    }
    EXPECT_GT(loop.done.back().elapsed_ms, 1000);
}

TEST(HttpEngine, OversizedBodyIsTooLarge) {
    TestServer server([](const SeenRequest& req) {
        CannedResponse r = ok_json(std::string(50000, 'x'));
        r.no_content_length = req.target == "/chunkless";
        return r;
    });
    EngineConfig c = test_config();
    c.max_body_bytes = 1000;
    HttpEngine e(c);
    e.submit(make_request(1, server.url("/with-length")));
    e.submit(make_request(2, server.url("/chunkless")));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(2, 10));
    for (const auto& r : loop.done) {
        EXPECT_EQ(r.error, ErrorClass::too_large) << r.id << " " << r.error_detail;
        EXPECT_LE(r.body.size(), 1000u);
        EXPECT_EQ(r.attempts, 1);
    }
}

TEST(HttpEngine, HostOutsideAllowListIsRefusedWithoutNetwork) {
    TestServer server([](const SeenRequest&) { return ok_json(); });
    HttpEngine e(test_config());
    e.submit(make_request(1, "http://localhost:" + std::to_string(server.port()) + "/x"));
    e.submit(make_request(2, "http://169.254.169.254/latest/meta-data/"));
    e.submit(make_request(3, "http://127.0.0.1@evil.example/"));
    e.submit(make_request(4, "ftp://127.0.0.1/"));
    EXPECT_EQ(e.next_timeout_ms(), 0);  // responses are ready to be taken
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(4, 5));
    for (const auto& r : loop.done) {
        EXPECT_EQ(r.error, ErrorClass::refused_host) << r.id;
        EXPECT_EQ(r.attempts, 0);
    }
    EXPECT_EQ(server.request_count(), 0u);
    EXPECT_EQ(e.counters().refused, 4u);
}

TEST(HttpEngine, MalformedRequestIsRefused) {
    TestServer server([](const SeenRequest&) { return ok_json(); });
    HttpEngine e(test_config());
    HttpRequest bad_header = make_request(1, server.url());
    bad_header.headers.push_back("X-Evil: a\r\nHost: other");
    HttpRequest bad_method = make_request(2, server.url());
    bad_method.method = "GET /x HTTP/1.1\r\n";
    e.submit(bad_header);
    e.submit(bad_method);
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(2, 5));
    for (const auto& r : loop.done) EXPECT_EQ(r.error, ErrorClass::refused_host);
    EXPECT_EQ(server.request_count(), 0u);
}

TEST(HttpEngine, RedirectIsFollowedWithinTheAllowList) {
    TestServer server([](const SeenRequest& req) {
        if (req.target == "/final") return ok_json(R"({"final":true})");
        CannedResponse r;
        r.status = req.target == "/see-other" ? 303 : 307;
        r.headers = {"Location: /final"};
        r.body = "";
        return r;
    });
    HttpEngine e(test_config());
    e.submit(make_request(1, server.url("/moved")));
    e.submit(make_request(2, server.url("/see-other")));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(2, 10));
    for (const auto& r : loop.done) {
        EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
        EXPECT_EQ(r.body, R"({"final":true})");
        EXPECT_EQ(r.attempts, 2);
    }
    std::multiset<std::string> at_final;
    for (const auto& s : server.requests()) {
        if (s.target == "/final") at_final.insert(s.method + " " + s.body);
    }
    // 307 keeps the method and body; 303 switches to GET without a body
    EXPECT_EQ(at_final, (std::multiset<std::string>{"GET ", R"(POST {"cityId":"750000000"})"}));
}

TEST(HttpEngine, RedirectToDisallowedHostIsRefused) {
    TestServer server([](const SeenRequest&) {
        CannedResponse r;
        r.status = 302;
        r.headers = {"Location: http://169.254.169.254/latest/meta-data/"};
        r.body = "";
        return r;
    });
    HttpEngine e(test_config());
    e.submit(make_request(1, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::refused_host);
    EXPECT_EQ(loop.done[0].status, 302);
    EXPECT_NE(loop.done[0].error_detail.find("169.254.169.254"), std::string::npos);
    EXPECT_EQ(server.request_count(), 1u);
}

TEST(HttpEngine, RedirectLoopStopsAfterMaxHops) {
    TestServer server([](const SeenRequest&) {
        CannedResponse r;
        r.status = 301;
        r.headers = {"Location: /again"};
        r.body = "";
        return r;
    });
    HttpEngine e(test_config());
    e.submit(make_request(1, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::bad_body);
    EXPECT_EQ(loop.done[0].attempts, 1 + kMaxRedirects);
    EXPECT_EQ(server.request_count(), static_cast<std::size_t>(1 + kMaxRedirects));
}

TEST(HttpEngine, RetriesOn503ThenSucceeds) {
    std::atomic<int> calls{0};
    TestServer server([&calls](const SeenRequest&) {
        if (calls++ < 2) {
            CannedResponse r;
            r.status = 503;
            r.body = "busy";
            return r;
        }
        return ok_json();
    });
    EngineConfig c = test_config();
    c.max_attempts = 3;
    HttpEngine e(c);
    e.submit(make_request(7, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::none) << loop.done[0].error_detail;
    EXPECT_EQ(loop.done[0].attempts, 3);
    EXPECT_EQ(e.counters().retries, 2u);
    EXPECT_EQ(server.request_count(), 3u);
}

TEST(HttpEngine, RetriesStopAtMaxAttempts) {
    TestServer server([](const SeenRequest&) {
        CannedResponse r;
        r.status = 403;
        r.body = "banned";
        return r;
    });
    EngineConfig c = test_config();
    c.max_attempts = 2;
    HttpEngine e(c);
    e.submit(make_request(1, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::ban);
    EXPECT_EQ(loop.done[0].status, 403);
    EXPECT_EQ(loop.done[0].attempts, 2);
    EXPECT_EQ(server.request_count(), 2u);
    EXPECT_EQ(e.counters().completed_failed, 1u);
}

TEST(HttpEngine, RetryAfterIsHonoured) {
    std::atomic<int> calls{0};
    TestServer server([&calls](const SeenRequest&) {
        if (calls++ == 0) {
            CannedResponse r;
            r.status = 429;
            r.headers = {"Retry-After: 1"};
            return r;
        }
        return ok_json();
    });
    EngineConfig c = test_config();
    c.backoff_base_s = 0.001;
    c.backoff_cap_s = 5;
    HttpEngine e(c);
    e.submit(make_request(1, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::none);
    auto seen = server.requests();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_GE(seen[1].at - seen[0].at, 0.95);
    EXPECT_LT(seen[1].at - seen[0].at, 4.0);
}

TEST(HttpEngine, RetryAfterIsCappedByBackoffCap) {
    std::atomic<int> calls{0};
    TestServer server([&calls](const SeenRequest&) {
        if (calls++ == 0) {
            CannedResponse r;
            r.status = 503;
            r.headers = {"Retry-After: 3600"};
            return r;
        }
        return ok_json();
    });
    EngineConfig c = test_config();
    c.backoff_cap_s = 0.2;
    HttpEngine e(c);
    e.submit(make_request(1, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::none);
    EXPECT_LT(loop.done[0].elapsed_ms, 3000);
}

TEST(HttpEngine, BadRequestAndNotFoundAreNotRetried) {
    TestServer server([](const SeenRequest& req) {
        CannedResponse r;
        r.status = req.target == "/400" ? 400 : 404;
        return r;
    });
    HttpEngine e(test_config());
    e.submit(make_request(1, server.url("/400")));
    e.submit(make_request(2, server.url("/404")));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(2, 10));
    for (const auto& r : loop.done) {
        EXPECT_EQ(r.error, ErrorClass::http_4xx);
        EXPECT_EQ(r.attempts, 1);
        EXPECT_EQ(r.status, r.id == 1 ? 400 : 404);
    }
    EXPECT_EQ(server.request_count(), 2u);
    EXPECT_EQ(e.counters().retries, 0u);
}

TEST(HttpEngine, HtmlContentTypeIsBadBody) {
    TestServer server([](const SeenRequest&) {
        CannedResponse r;
        r.content_type = "Text/HTML; charset=utf-8";
        r.body = "<html>are you a robot?</html>";
        return r;
    });
    HttpEngine e(test_config());
    e.submit(make_request(1, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::bad_body);
    EXPECT_EQ(loop.done[0].status, 200);
    EXPECT_EQ(loop.done[0].attempts, 1);
    EXPECT_NE(loop.done[0].error_detail.find("HTML"), std::string::npos);
}

TEST(HttpEngine, ConnectionRefusedIsConnectAndRetried) {
    int port;
    {
        TestServer gone([](const SeenRequest&) { return ok_json(); });
        port = gone.port();
    }
    EngineConfig c = test_config();
    c.max_attempts = 2;
    HttpEngine e(c);
    e.submit(make_request(1, "http://127.0.0.1:" + std::to_string(port) + "/x"));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::connect) << loop.done[0].error_detail;
    EXPECT_EQ(loop.done[0].attempts, 2);
}

TEST(HttpEngine, TlsFailureIsTlsAndNotRetried) {
    TestServer server([](const SeenRequest&) { return ok_json(); });
    HttpEngine e(test_config());
    e.submit(make_request(1, "https://127.0.0.1:" + std::to_string(server.port()) + "/x"));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::tls) << loop.done[0].error_detail;
    EXPECT_EQ(loop.done[0].attempts, 1);
}

// Requests to a server that answers only after 5 s, through an engine with 2 slots: the first two
// are in flight, the rest queued (the cancel tests).
struct StalledRequests {
    TestServer server{[](const SeenRequest&) {
        CannedResponse r = ok_json();
        r.delay_ms = 5000;
        return r;
    }};
    HttpEngine e{[] {
        EngineConfig c = test_config();
        c.max_inflight = 2;
        return c;
    }()};
    Loop loop{e};
    explicit StalledRequests(int n) {
        for (int i = 0; i < n; ++i) e.submit(make_request(i, server.url()));
        loop.run_until(static_cast<std::size_t>(n), 0.3);
    }
};

TEST(HttpEngine, CancelOneInFlightOrQueued) {
    StalledRequests s(4);
    HttpEngine& e = s.e;
    ASSERT_EQ(e.in_flight(), 2u);
    ASSERT_EQ(e.queued(), 2u);
    EXPECT_TRUE(e.cancel(0, "given up"));  // in flight (admitted first)
    EXPECT_TRUE(e.cancel(3, "given up"));  // still queued
    EXPECT_FALSE(e.cancel(3, "again"));    // no longer pending
    EXPECT_FALSE(e.cancel(42, "unknown"));
    auto out = e.take_completed();
    ASSERT_EQ(out.size(), 2u);
    for (const auto& r : out) {
        EXPECT_EQ(r.error, ErrorClass::canceled);
        EXPECT_EQ(r.error_detail, "given up");
    }
    EXPECT_EQ(out[0].id + out[1].id, 3u);
    // The others go on: the freed slot admits request 2.
    s.loop.tick();
    EXPECT_EQ(e.in_flight() + e.queued(), 2u);
    e.cancel_all();
}

TEST(HttpEngine, CancelAllCompletesEverything) {
    StalledRequests s(5);
    HttpEngine& e = s.e;
    EXPECT_EQ(e.in_flight(), 2u);
    EXPECT_EQ(e.queued(), 3u);
    e.cancel_all();
    EXPECT_EQ(e.in_flight(), 0u);
    EXPECT_EQ(e.queued(), 0u);
    auto out = e.take_completed();
    ASSERT_EQ(out.size(), 5u);
    for (const auto& r : out) EXPECT_EQ(r.error, ErrorClass::canceled);
    EXPECT_EQ(e.next_timeout_ms(), -1);
}

TEST(HttpEngine, ReconfigureAppliesToLaterAdmissions) {
    TestServer server([](const SeenRequest&) { return ok_json(); });
    EngineConfig c = test_config();
    HttpEngine e(c);
    c.allowed_hosts = "kaspi.kz";
    e.reconfigure(c);
    e.submit(make_request(1, server.url()));
    c.allowed_hosts = "127.0.0.1";
    e.reconfigure(c);
    e.submit(make_request(2, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(2, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::refused_host);
    EXPECT_EQ(loop.done[1].error, ErrorClass::none);
}

TEST(HttpEngine, DestructionWithWorkInFlightLeaksNoDescriptor) {
    const std::size_t before = open_fd_count();
    TestServer server([](const SeenRequest&) {
        CannedResponse r = ok_json();
        r.delay_ms = 3000;
        return r;
    });
    {
        EngineConfig c = test_config();
        c.max_inflight = 4;
        HttpEngine e(c);
        for (int i = 0; i < 10; ++i) e.submit(make_request(i, server.url()));
        Loop loop{e};
        loop.run_for(0.3);
        EXPECT_EQ(e.in_flight(), 4u);
    }
    server.stop();  // the server lives in this process too: close its side first
    EXPECT_EQ(open_fd_count(), before);
}

// ---------------------------------------------------------------------------------------------
// Stage 2: per-host breaker, AIMD and in-flight cap; the egress pool.

TEST(HttpEngineHosts, BreakerPausesHostThenProbeCloses) {
    std::atomic<bool> failing{true};
    TestServer server([&failing](const SeenRequest&) {
        if (failing) {
            CannedResponse r;
            r.status = 503;
            return r;
        }
        return ok_json();
    });
    EngineConfig c = test_config();
    c.max_inflight_per_host = 1;
    c.max_attempts = 1;
    c.breaker_failure_threshold = 3;
    c.breaker_cooldown_s = 0.5;
    HttpEngine e(c);
    for (int i = 0; i < 8; ++i) e.submit(make_request(i, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(3, 10));
    EngineSnapshot snap = e.snapshot();
    ASSERT_EQ(snap.hosts.size(), 1u);
    EXPECT_EQ(snap.hosts[0].breaker, BreakerState::open);
    EXPECT_EQ(snap.hosts[0].queued, 5u);  // waiting, not failed
    EXPECT_EQ(snap.counters.breaker_opens, 1u);
    loop.run_for(0.2);
    EXPECT_EQ(loop.done.size(), 3u);
    EXPECT_EQ(server.request_count(), 3u);
    failing = false;
    ASSERT_TRUE(loop.run_until(8, 10));
    for (std::size_t i = 0; i < loop.done.size(); ++i) {
        EXPECT_EQ(loop.done[i].error, i < 3 ? ErrorClass::http_5xx : ErrorClass::none) << i;
    }
    auto seen = server.requests();
    ASSERT_EQ(seen.size(), 8u);
    EXPECT_GE(seen[3].at - seen[2].at, 0.45);  // the probe came after the cool-down
    EXPECT_EQ(e.snapshot().hosts[0].breaker, BreakerState::closed);
    EXPECT_EQ(e.counters().breaker_opens, 1u);
}

TEST(HttpEngineHosts, FailedProbeReopensTheBreaker) {
    TestServer server([](const SeenRequest&) {
        CannedResponse r;
        r.status = 500;
        return r;
    });
    EngineConfig c = test_config();
    c.max_inflight_per_host = 1;
    c.max_attempts = 1;
    c.breaker_failure_threshold = 2;
    c.breaker_cooldown_s = 0.3;
    HttpEngine e(c);
    for (int i = 0; i < 4; ++i) e.submit(make_request(i, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(4, 10));
    auto seen = server.requests();
    ASSERT_EQ(seen.size(), 4u);
    EXPECT_LT(seen[1].at - seen[0].at, 0.25);
    EXPECT_GE(seen[2].at - seen[1].at, 0.27);  // first probe
    EXPECT_GE(seen[3].at - seen[2].at, 0.27);  // second probe, after the reopened cool-down
    EXPECT_EQ(e.counters().breaker_opens, 3u);
}

TEST(HttpEngineHosts, InflightCapIsPerHost) {
    auto slow = [](const SeenRequest&) {
        CannedResponse r = ok_json();
        r.delay_ms = 100;
        return r;
    };
    TestServer a(slow), b(slow);
    EngineConfig c = test_config();
    c.max_inflight_per_host = 3;
    HttpEngine e(c);
    for (int i = 0; i < 12; ++i) {
        e.submit(make_request(i, a.url()));
        e.submit(make_request(100 + i, b.url()));
    }
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(24, 30));
    for (const auto& r : loop.done) EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    EXPECT_LE(a.peak_concurrency(), 3);
    EXPECT_LE(b.peak_concurrency(), 3);
    EXPECT_LE(loop.peak_in_flight, 6u);
    EXPECT_GE(loop.peak_in_flight, 4u);  // one host's cap does not hold up the other
    EXPECT_EQ(e.snapshot().hosts.size(), 2u);
}

TEST(HttpEngineHosts, BanSignalHalvesTheHostRate) {
    std::atomic<int> calls{0};
    TestServer server([&calls](const SeenRequest&) {
        if (calls++ == 0) {
            CannedResponse r;
            r.status = 429;
            return r;
        }
        return ok_json();
    });
    EngineConfig c = test_config();
    c.requests_per_second = 100;
    c.aimd_clean_period_s = 60;
    HttpEngine e(c);
    e.submit(make_request(1, server.url()));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(loop.done[0].error, ErrorClass::none);
    EngineSnapshot snap = e.snapshot();
    ASSERT_EQ(snap.hosts.size(), 1u);
    EXPECT_DOUBLE_EQ(snap.hosts[0].effective_rate, 50.0);
    EXPECT_EQ(snap.hosts[0].bans, 1u);
    EXPECT_EQ(snap.counters.bans, 1u);
    EXPECT_EQ(snap.egresses.size(), 1u);
    EXPECT_EQ(snap.egresses[0].name, "direct");
    EXPECT_EQ(snap.egresses[0].bans, 1u);
    EXPECT_EQ(snap.hosts[0].host, "127.0.0.1:" + std::to_string(server.port()));
}

TEST(HttpEngineEgress, RedactProxyUrl) {
    EXPECT_EQ(redact_proxy_url("http://user:secret@proxy.example:3128"),
              "http://proxy.example:3128");
    EXPECT_EQ(redact_proxy_url("socks5h://u:p@10.0.0.1:1080/"), "socks5h://10.0.0.1:1080/");
    EXPECT_EQ(redact_proxy_url("http://proxy.example:3128"), "http://proxy.example:3128");
    EXPECT_EQ(redact_proxy_url("u:p@proxy:1"), "proxy:1");
    EXPECT_EQ(redact_proxy_url("http://proxy/a@b"), "http://proxy/a@b");
}

// A test server acting as a forward proxy: it sees absolute-form targets.
CannedResponse proxy_answer(const SeenRequest& req, const std::string& who) {
    CannedResponse r = ok_json(R"({"via":")" + who + R"(","target":")" + req.target + "\"}");
    return r;
}

TEST(HttpEngineEgress, TwoProxiesShareTheLoadEachWithItsOwnBudget) {
    TestServer pa([](const SeenRequest& req) { return proxy_answer(req, "a"); });
    TestServer pb([](const SeenRequest& req) { return proxy_answer(req, "b"); });
    EngineConfig c = test_config();
    c.allowed_hosts = "shop.test";
    c.proxies = {"http://127.0.0.1:" + std::to_string(pa.port()),
                 "http://127.0.0.1:" + std::to_string(pb.port())};
    c.requests_per_second = 20;
    c.burst = 2;
    HttpEngine e(c);
    constexpr int kRequests = 30;
    for (int i = 0; i < kRequests; ++i) {
        e.submit(make_request(i, "http://shop.test:8080/offers/" + std::to_string(i)));
    }
    const double start = now_s();
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(kRequests, 30));
    for (const auto& r : loop.done) EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    for (TestServer* p : {&pa, &pb}) {
        auto seen = p->requests();
        EXPECT_GE(seen.size(), 5u);
        std::size_t early = 0;
        for (const auto& s : seen) {
            EXPECT_EQ(s.method, "POST");
            EXPECT_EQ(s.target.rfind("http://shop.test:8080/offers/", 0), 0u) << s.target;
            EXPECT_EQ(s.host_header, "shop.test:8080");
            EXPECT_EQ(s.body, R"({"cityId":"750000000"})");
            early += s.at <= start + 0.5 ? 1 : 0;
        }
        EXPECT_LE(early, 12u);  // burst 2 + 0.5 s at 20/s, per egress
    }
    EXPECT_EQ(pa.request_count() + pb.request_count(), static_cast<std::size_t>(kRequests));
    EngineSnapshot snap = e.snapshot();
    ASSERT_EQ(snap.egresses.size(), 2u);
    EXPECT_EQ(snap.egresses[0].attempts + snap.egresses[1].attempts,
              static_cast<std::uint64_t>(kRequests));
    ASSERT_EQ(snap.hosts.size(), 1u);
    EXPECT_EQ(snap.hosts[0].host, "shop.test:8080");
    EXPECT_DOUBLE_EQ(snap.hosts[0].effective_rate, 40.0);  // 2 egresses x 20/s
}

TEST(HttpEngineEgress, BannedEgressRestsWhileTheOtherCarriesOn) {
    TestServer banned([](const SeenRequest&) {
        CannedResponse r;
        r.status = 403;
        r.body = "forbidden";
        return r;
    });
    TestServer fine([](const SeenRequest& req) { return proxy_answer(req, "fine"); });
    EngineConfig c = test_config();
    c.allowed_hosts = "shop.test";
    c.proxies = {"http://127.0.0.1:" + std::to_string(banned.port()),
                 "http://user:secret@127.0.0.1:" + std::to_string(fine.port())};
    c.requests_per_second = 50;
    c.burst = 2;
    c.egress_cooldown_s = 30;
    c.max_attempts = 3;
    c.aimd_clean_period_s = 60;
    HttpEngine e(c);
    constexpr int kRequests = 20;
    for (int i = 0; i < kRequests; ++i) {
        e.submit(make_request(i, "http://shop.test/offers/" + std::to_string(i)));
    }
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(kRequests, 30));
    for (const auto& r : loop.done) EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    EXPECT_GE(banned.request_count(), 1u);
    EXPECT_LE(banned.request_count(), 4u);  // only what was in flight before the first 403
    EXPECT_EQ(fine.request_count(), static_cast<std::size_t>(kRequests));
    EngineSnapshot snap = e.snapshot();
    ASSERT_EQ(snap.egresses.size(), 2u);
    EXPECT_TRUE(snap.egresses[0].cooling_down);
    EXPECT_GT(snap.egresses[0].cooldown_left_s, 20);
    EXPECT_GE(snap.egresses[0].bans, 1u);
    EXPECT_FALSE(snap.egresses[1].cooling_down);
    EXPECT_EQ(snap.egresses[1].name, "http://127.0.0.1:" + std::to_string(fine.port()));
    EXPECT_EQ(snap.counters.egress_cooldowns, 1u);
    EXPECT_LT(snap.hosts[0].effective_rate, 100.0);  // AIMD reacted too
    EXPECT_EQ(snap.hosts[0].breaker, BreakerState::closed);
}

TEST(HttpEngineEgress, ReconfigureKeepsEgressStateAndDropsRemovedProxies) {
    TestServer pa([](const SeenRequest& req) { return proxy_answer(req, "a"); });
    EngineConfig c = test_config();
    c.allowed_hosts = "shop.test";
    c.proxies = {"http://127.0.0.1:" + std::to_string(pa.port())};
    HttpEngine e(c);
    e.submit(make_request(1, "http://shop.test/x"));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(1, 10));
    EXPECT_EQ(e.snapshot().egresses[0].attempts, 1u);
    c.proxies.push_back("http://127.0.0.1:1");
    e.reconfigure(c);
    EngineSnapshot snap = e.snapshot();
    ASSERT_EQ(snap.egresses.size(), 2u);
    EXPECT_EQ(snap.egresses[0].attempts, 1u);  // same proxy, same state
    c.proxies.clear();
    e.reconfigure(c);
    snap = e.snapshot();
    ASSERT_EQ(snap.egresses.size(), 1u);
    EXPECT_EQ(snap.egresses[0].name, "direct");
}

}  // namespace
}  // namespace demper::core
