// Unit tests for core/http_engine against a tiny HTTP/1.1 server (plain or TLS) living inside this
// file.
#include "core/http_engine.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
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
// canned answers chosen by a handler, in plain text or TLS. It records every request, the peak
// concurrency and, over TLS, the ALPN protocols each client offered.

struct SeenRequest {
    std::string method;
    std::string target;   // origin-form "/x" or, through a proxy, absolute-form "http://h:p/x"
    std::string version;  // "HTTP/1.1"; "HTTP/2.0" for the h2 connection preface ("PRI *")
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

enum class Transport { plain, tls };

// TlsContext is a server TLS context with a fresh self-signed certificate (the engine under test
// runs with verify_tls off). It answers ALPN with http/1.1 and records what each client offered.
class TlsContext {
  public:
    TlsContext() {
        EVP_PKEY* key = EVP_EC_gen("P-256");
        X509* cert = X509_new();
        ctx_ = SSL_CTX_new(TLS_server_method());
        bool ok = key != nullptr && cert != nullptr && ctx_ != nullptr;
        if (ok) {
            ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
            X509_gmtime_adj(X509_getm_notBefore(cert), 0);
            X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
            X509_NAME* name = X509_get_subject_name(cert);
            const auto* cn = reinterpret_cast<const unsigned char*>("127.0.0.1");
            ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, cn, -1, -1, 0) == 1 &&
                 X509_set_issuer_name(cert, name) == 1 && X509_set_pubkey(cert, key) == 1 &&
                 X509_sign(cert, key, EVP_sha256()) > 0 &&
                 SSL_CTX_use_certificate(ctx_, cert) == 1 &&
                 SSL_CTX_use_PrivateKey(ctx_, key) == 1;
        }
        X509_free(cert);
        EVP_PKEY_free(key);
        if (!ok) {
            SSL_CTX_free(ctx_);
            throw std::runtime_error("test server: TLS context setup failed");
        }
        SSL_CTX_set_alpn_select_cb(ctx_, &TlsContext::select_alpn, this);
    }
    ~TlsContext() { SSL_CTX_free(ctx_); }
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    SSL_CTX* get() const { return ctx_; }
    // alpn_offers has one entry per handshake: the offered protocols, comma separated.
    std::vector<std::string> alpn_offers() const {
        std::lock_guard<std::mutex> lock(mu_);
        return offers_;
    }

  private:
    static int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen,
                           const unsigned char* in, unsigned int inlen, void* arg) {
        auto* self = static_cast<TlsContext*>(arg);
        std::string offered;
        const unsigned char* chosen = nullptr;
        for (unsigned int i = 0; i < inlen && i + 1 + in[i] <= inlen; i += 1u + in[i]) {
            const std::string proto(reinterpret_cast<const char*>(in + i + 1), in[i]);
            offered += (offered.empty() ? "" : ",") + proto;
            if (proto == "http/1.1") chosen = in + i + 1;
        }
        {
            std::lock_guard<std::mutex> lock(self->mu_);
            self->offers_.push_back(offered);
        }
        if (chosen == nullptr) return SSL_TLSEXT_ERR_NOACK;
        *out = chosen;
        *outlen = 8;
        return SSL_TLSEXT_ERR_OK;
    }

    SSL_CTX* ctx_ = nullptr;
    mutable std::mutex mu_;
    std::vector<std::string> offers_;
};

// Connection is one accepted socket, in plain text or TLS (non-blocking, so that a client that
// never completes its handshake cannot hold up the server's stop()).
class Connection {
  public:
    Connection(int fd, SSL_CTX* tls) : fd_(fd) {
        if (tls == nullptr) return;
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        ssl_ = SSL_new(tls);
        SSL_set_fd(ssl_, fd);
    }
    ~Connection() {
        SSL_free(ssl_);
        ::close(fd_);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool tls() const { return ssl_ != nullptr; }

    // handshake completes the TLS handshake (at once in plain text); false on failure or stop.
    bool handshake(const std::atomic<bool>& stopping) {
        while (tls() && !stopping) {
            const int r = SSL_accept(ssl_);
            if (r == 1) return true;
            if (!wait_for(SSL_get_error(ssl_, r))) return false;
        }
        return !stopping;
    }

    // read_some appends what arrives within 20 ms: > 0 bytes read, 0 nothing yet, < 0 closed.
    int read_some(std::string& buffer) {
        char chunk[4096];
        if (!tls() || SSL_pending(ssl_) == 0) {
            pollfd p{fd_, POLLIN, 0};
            const int r = ::poll(&p, 1, 20);
            if (r <= 0) return r;
        }
        if (!tls()) {
            const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n <= 0) return -1;
            buffer.append(chunk, static_cast<std::size_t>(n));
            return static_cast<int>(n);
        }
        const int n = SSL_read(ssl_, chunk, sizeof chunk);
        if (n > 0) {
            buffer.append(chunk, static_cast<std::size_t>(n));
            return n;
        }
        return SSL_get_error(ssl_, n) == SSL_ERROR_WANT_READ ? 0 : -1;
    }

    bool write_all(const std::string& data) {
        std::size_t off = 0;
        while (off < data.size()) {
            if (!tls()) {
                const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
                if (n <= 0) return false;
                off += static_cast<std::size_t>(n);
                continue;
            }
            const int n = SSL_write(ssl_, data.data() + off, static_cast<int>(data.size() - off));
            if (n > 0) {
                off += static_cast<std::size_t>(n);
            } else if (!wait_for(SSL_get_error(ssl_, n))) {
                return false;
            }
        }
        return true;
    }

  private:
    // wait_for waits (20 ms at most) for what OpenSSL wants; false for any other error.
    bool wait_for(int ssl_error) {
        short events = 0;
        if (ssl_error == SSL_ERROR_WANT_READ) events = POLLIN;
        if (ssl_error == SSL_ERROR_WANT_WRITE) events = POLLOUT;
        if (events == 0) return false;
        pollfd p{fd_, events, 0};
        ::poll(&p, 1, 20);
        return true;
    }

    int fd_;
    SSL* ssl_ = nullptr;
};

class TestServer {
  public:
    using Handler = std::function<CannedResponse(const SeenRequest&)>;

    explicit TestServer(Handler handler, Transport transport = Transport::plain)
        : handler_(std::move(handler)) {
        if (transport == Transport::tls) tls_ = std::make_unique<TlsContext>();
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
    // url names the server by its address; url_as names it by another host name ("localhost").
    std::string url(const std::string& path = "/offers/1") const { return url_as("127.0.0.1", path); }
    std::string url_as(const std::string& host, const std::string& path = "/offers/1") const {
        return std::string(tls_ ? "https" : "http") + "://" + host + ":" + std::to_string(port_) +
               path;
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
    std::vector<std::string> alpn_offers() const { return tls_ ? tls_->alpn_offers() : std::vector<std::string>{}; }

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

    // read_request reads one request into `req`; false when the peer closed or we stop.
    bool read_request(Connection& conn, std::string& buffer, SeenRequest& req) {
        std::size_t header_end;
        while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
            if (!read_more(conn, buffer)) return false;
            if (!conn.tls() && buffer[0] == '\x16') {  // a TLS ClientHello: answer in plain text
                conn.write_all("HTTP/1.1 400 Plain HTTP here\r\n\r\n");
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
        req.version = request_line.substr(sp2 + 1);
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
            if (!read_more(conn, buffer)) return false;
        }
        req.body = buffer.substr(0, length);
        buffer.erase(0, length);
        return true;
    }

    bool read_more(Connection& conn, std::string& buffer) {
        while (!stopping_) {
            const int r = conn.read_some(buffer);
            if (r > 0) return true;
            if (r < 0) return false;
        }
        return false;
    }

    void serve(int fd) {
        Connection conn(fd, tls_ ? tls_->get() : nullptr);
        if (!conn.handshake(stopping_)) return;
        std::string buffer;
        while (!stopping_) {
            SeenRequest req;
            if (!read_request(conn, buffer, req)) break;
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
            const bool ok = respond(conn, r);
            --busy_;
            if (!ok || r.close || r.no_content_length) break;
        }
    }

    bool respond(Connection& conn, const CannedResponse& r) {
        if (r.delay_ms > 0 && !sleep_ms(r.delay_ms)) return false;
        std::string head = "HTTP/1.1 " + std::to_string(r.status) + " Canned\r\n";
        if (!r.content_type.empty()) head += "Content-Type: " + r.content_type + "\r\n";
        if (!r.no_content_length) {
            head += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
        }
        if (r.close || r.no_content_length) head += "Connection: close\r\n";
        for (const auto& h : r.headers) head += h + "\r\n";
        head += "\r\n";
        if (r.stall_after_headers_ms <= 0) return conn.write_all(head + r.body);  // one segment
        if (!conn.write_all(head)) return false;
        if (!sleep_ms(r.stall_after_headers_ms)) return false;
        return conn.write_all(r.body);
    }

    Handler handler_;
    std::unique_ptr<TlsContext> tls_;
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

// answer is a canned answer other than 200: an error, or a redirect with its Location line.
CannedResponse answer(int status, std::vector<std::string> headers = {}, std::string body = "") {
    CannedResponse r;
    r.status = status;
    r.headers = std::move(headers);
    r.body = std::move(body);
    return r;
}

CannedResponse slow_ok(int delay_ms) {
    CannedResponse r = ok_json();
    r.delay_ms = delay_ms;
    return r;
}

// fail_first answers `failure` to the first `n` requests and ok_json() to the rest.
TestServer::Handler fail_first(int n, CannedResponse failure) {
    auto calls = std::make_shared<std::atomic<int>>(0);
    return [calls, n, failure](const SeenRequest&) { return (*calls)++ < n ? failure : ok_json(); };
}

// The servers of these tests live on 127.0.0.1, so private addresses are allowed here; the tests
// of the address check turn that off.
EngineConfig test_config() {
    EngineConfig c;
    c.allowed_hosts = "127.0.0.1";
    c.allow_private_addresses = true;
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

// run_one submits one request and drives the engine until it completes (10 s at most).
::testing::AssertionResult run_one(HttpEngine& e, HttpRequest req, HttpResponse* out) {
    e.submit(std::move(req));
    Loop loop{e};
    if (!loop.run_until(1, 10)) return ::testing::AssertionFailure() << "no completion in 10 s";
    *out = std::move(loop.done[0]);
    return ::testing::AssertionSuccess();
}

// run_one_with builds an engine from `c` for one request to `url` (make_request, id 1).
::testing::AssertionResult run_one_with(const EngineConfig& c, const std::string& url,
                                        HttpResponse* out) {
    HttpEngine e(c);
    return run_one(e, make_request(1, url), out);
}

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

TEST(HttpEngineBasics, SafeDefaults) {
    const EngineConfig c;
    EXPECT_FALSE(c.allow_private_addresses);
    EXPECT_EQ(c.http_version, HttpVersion::http1_1);
    EXPECT_EQ(parse_http_version("1.1"), HttpVersion::http1_1);
    EXPECT_EQ(parse_http_version("2"), HttpVersion::http2);
    for (const char* bad : {"", "1", "1.0", "2.0", "3", "HTTP/2", " 2"}) {
        EXPECT_FALSE(parse_http_version(bad).has_value()) << bad;
    }
}

TEST(HttpEngine, SingleRequestRoundTrip) {
    TestServer server(
        [](const SeenRequest& req) { return ok_json(R"({"echo":)" + req.body + "}"); });
    HttpEngine e(test_config());
    HttpResponse r;
    ASSERT_TRUE(run_one(e, make_request(42, server.url("/yml/offer-view/offers/101")), &r));
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
    EXPECT_EQ(seen[0].version, "HTTP/1.1");  // the default HttpVersion
    EXPECT_EQ(seen[0].headers["content-type"], "application/json");
    EXPECT_EQ(seen[0].headers["user-agent"], "demper/0.1");
    EXPECT_EQ(seen[0].headers.count("expect"), 0u);
    EXPECT_EQ(e.counters().requests, 1u);
    EXPECT_EQ(e.counters().completed_ok, 1u);
    EXPECT_EQ(e.next_timeout_ms(), -1);
}

TEST(HttpEngine, ManyRequestsCompleteWithinMaxInflight) {
    TestServer server([](const SeenRequest&) { return slow_ok(5); });
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
    HttpResponse r;
    ASSERT_TRUE(run_one_with(c, server.url(), &r));
    EXPECT_EQ(r.error, ErrorClass::timeout) << r.error_detail;
    EXPECT_GE(r.elapsed_ms, 250);
    EXPECT_LT(r.elapsed_ms, 5000);
    EXPECT_EQ(r.error_detail.find("SECRET"), std::string::npos);
}

TEST(HttpEngine, QueueTimeDoesNotCountTowardsTheTimeout) {
    TestServer server([](const SeenRequest&) { return slow_ok(100); });
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
    e.submit(make_request(1, server.url_as("localhost", "/x")));
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
        return answer(req.target == "/see-other" ? 303 : 307, {"Location: /final"});
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
        return answer(302, {"Location: http://169.254.169.254/latest/meta-data/"});
    });
    HttpResponse r;
    ASSERT_TRUE(run_one_with(test_config(), server.url(), &r));
    EXPECT_EQ(r.error, ErrorClass::refused_host);
    EXPECT_EQ(r.status, 302);
    EXPECT_NE(r.error_detail.find("169.254.169.254"), std::string::npos);
    EXPECT_EQ(server.request_count(), 1u);
}

TEST(HttpEngine, RedirectLoopStopsAfterMaxHops) {
    TestServer server([](const SeenRequest&) { return answer(301, {"Location: /again"}); });
    HttpResponse r;
    ASSERT_TRUE(run_one_with(test_config(), server.url(), &r));
    EXPECT_EQ(r.error, ErrorClass::bad_body);
    EXPECT_EQ(r.attempts, 1 + kMaxRedirects);
    EXPECT_EQ(server.request_count(), static_cast<std::size_t>(1 + kMaxRedirects));
}

TEST(HttpEngine, RetriesOn503ThenSucceeds) {
    TestServer server(fail_first(2, answer(503, {}, "busy")));
    EngineConfig c = test_config();
    c.max_attempts = 3;
    HttpEngine e(c);
    HttpResponse r;
    ASSERT_TRUE(run_one(e, make_request(7, server.url()), &r));
    EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    EXPECT_EQ(r.attempts, 3);
    EXPECT_EQ(e.counters().retries, 2u);
    EXPECT_EQ(server.request_count(), 3u);
}

TEST(HttpEngine, RetriesStopAtMaxAttempts) {
    TestServer server([](const SeenRequest&) { return answer(403, {}, "banned"); });
    EngineConfig c = test_config();
    c.max_attempts = 2;
    HttpEngine e(c);
    HttpResponse r;
    ASSERT_TRUE(run_one(e, make_request(1, server.url()), &r));
    EXPECT_EQ(r.error, ErrorClass::ban);
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(r.attempts, 2);
    EXPECT_EQ(server.request_count(), 2u);
    EXPECT_EQ(e.counters().completed_failed, 1u);
}

TEST(HttpEngine, RetryAfterIsHonoured) {
    TestServer server(fail_first(1, answer(429, {"Retry-After: 1"})));
    EngineConfig c = test_config();
    c.backoff_base_s = 0.001;
    c.backoff_cap_s = 5;
    HttpResponse r;
    ASSERT_TRUE(run_one_with(c, server.url(), &r));
    EXPECT_EQ(r.error, ErrorClass::none);
    auto seen = server.requests();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_GE(seen[1].at - seen[0].at, 0.95);
    EXPECT_LT(seen[1].at - seen[0].at, 4.0);
}

TEST(HttpEngine, RetryAfterIsCappedByBackoffCap) {
    TestServer server(fail_first(1, answer(503, {"Retry-After: 3600"})));
    EngineConfig c = test_config();
    c.backoff_cap_s = 0.2;
    HttpResponse r;
    ASSERT_TRUE(run_one_with(c, server.url(), &r));
    EXPECT_EQ(r.error, ErrorClass::none);
    EXPECT_LT(r.elapsed_ms, 3000);
}

TEST(HttpEngine, BadRequestAndNotFoundAreNotRetried) {
    TestServer server(
        [](const SeenRequest& req) { return answer(req.target == "/400" ? 400 : 404, {}, "{}"); });
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
    HttpResponse r;
    ASSERT_TRUE(run_one_with(test_config(), server.url(), &r));
    EXPECT_EQ(r.error, ErrorClass::bad_body);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.attempts, 1);
    EXPECT_NE(r.error_detail.find("HTML"), std::string::npos);
}

TEST(HttpEngine, ConnectionRefusedIsConnectAndRetried) {
    int port;
    {
        TestServer gone([](const SeenRequest&) { return ok_json(); });
        port = gone.port();
    }
    EngineConfig c = test_config();
    c.max_attempts = 2;
    HttpResponse r;
    ASSERT_TRUE(run_one_with(c, "http://127.0.0.1:" + std::to_string(port) + "/x", &r));
    EXPECT_EQ(r.error, ErrorClass::connect) << r.error_detail;
    EXPECT_EQ(r.attempts, 2);
}

TEST(HttpEngine, TlsFailureIsTlsAndNotRetried) {
    TestServer server([](const SeenRequest&) { return ok_json(); });
    HttpResponse r;
    ASSERT_TRUE(run_one_with(test_config(),
                             "https://127.0.0.1:" + std::to_string(server.port()) + "/x", &r));
    EXPECT_EQ(r.error, ErrorClass::tls) << r.error_detail;
    EXPECT_EQ(r.attempts, 1);
}

// Requests to a server that answers only after 5 s, through an engine with 2 slots: the first two
// are in flight, the rest queued (the cancel tests).
struct StalledRequests {
    TestServer server{[](const SeenRequest&) { return slow_ok(5000); }};
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
    TestServer server([](const SeenRequest&) { return slow_ok(3000); });
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

// breaker_config sends one request at a time, never retried, so that each failure reaches the
// host's breaker in order.
EngineConfig breaker_config(int failure_threshold, double cooldown_s) {
    EngineConfig c = test_config();
    c.max_inflight_per_host = 1;
    c.max_attempts = 1;
    c.breaker_failure_threshold = failure_threshold;
    c.breaker_cooldown_s = cooldown_s;
    return c;
}

TEST(HttpEngineHosts, BreakerPausesHostThenProbeCloses) {
    std::atomic<bool> failing{true};
    TestServer server([&failing](const SeenRequest&) {
        return failing ? answer(503, {}, "{}") : ok_json();
    });
    HttpEngine e(breaker_config(3, 0.5));
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
    TestServer server([](const SeenRequest&) { return answer(500, {}, "{}"); });
    HttpEngine e(breaker_config(2, 0.3));
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
    auto slow = [](const SeenRequest&) { return slow_ok(100); };
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
    TestServer server(fail_first(1, answer(429, {}, "{}")));
    EngineConfig c = test_config();
    c.requests_per_second = 100;
    c.aimd_clean_period_s = 60;
    HttpEngine e(c);
    HttpResponse r;
    ASSERT_TRUE(run_one(e, make_request(1, server.url()), &r));
    EXPECT_EQ(r.error, ErrorClass::none);
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

std::string proxy_url(const TestServer& proxy, const std::string& userinfo = "") {
    return "http://" + userinfo + "127.0.0.1:" + std::to_string(proxy.port());
}

// via_proxies sends requests for shop.test (a name only the proxies know) through `proxies`.
EngineConfig via_proxies(std::vector<std::string> proxies) {
    EngineConfig c = test_config();
    c.allowed_hosts = "shop.test";
    c.proxies = std::move(proxies);
    return c;
}

// submit_numbered submits n requests with ids 0..n-1 to url_prefix + id.
void submit_numbered(HttpEngine& e, int n, const std::string& url_prefix) {
    for (int i = 0; i < n; ++i) e.submit(make_request(i, url_prefix + std::to_string(i)));
}

TEST(HttpEngineEgress, TwoProxiesShareTheLoadEachWithItsOwnBudget) {
    TestServer pa([](const SeenRequest& req) { return proxy_answer(req, "a"); });
    TestServer pb([](const SeenRequest& req) { return proxy_answer(req, "b"); });
    EngineConfig c = via_proxies({proxy_url(pa), proxy_url(pb)});
    c.requests_per_second = 20;
    c.burst = 2;
    HttpEngine e(c);
    constexpr int kRequests = 30;
    submit_numbered(e, kRequests, "http://shop.test:8080/offers/");
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
    TestServer banned([](const SeenRequest&) { return answer(403, {}, "forbidden"); });
    TestServer fine([](const SeenRequest& req) { return proxy_answer(req, "fine"); });
    EngineConfig c = via_proxies({proxy_url(banned), proxy_url(fine, "user:secret@")});
    c.requests_per_second = 50;
    c.burst = 2;
    c.egress_cooldown_s = 30;
    c.max_attempts = 3;
    c.aimd_clean_period_s = 60;
    HttpEngine e(c);
    constexpr int kRequests = 20;
    submit_numbered(e, kRequests, "http://shop.test/offers/");
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
    EXPECT_EQ(snap.egresses[1].name, proxy_url(fine));
    EXPECT_EQ(snap.counters.egress_cooldowns, 1u);
    EXPECT_LT(snap.hosts[0].effective_rate, 100.0);  // AIMD reacted too
    EXPECT_EQ(snap.hosts[0].breaker, BreakerState::closed);
}

TEST(HttpEngineEgress, AnAccountsLimitRestsNoEgressAndOpensNoBreaker) {
    // A merchant's 429 to its pushes: the answer comes back, and the offers requests go on.
    TestServer server([](const SeenRequest& req) {
        return req.target.find("push") != std::string::npos ? answer(429, {}, "{}") : answer(200, {}, "{}");
    });
    EngineConfig c = test_config();
    c.requests_per_second = 100;
    c.egress_cooldown_s = 30;
    c.breaker_failure_threshold = 2;
    c.aimd_clean_period_s = 60;
    HttpEngine e(c);
    for (int i = 0; i < 5; i++) {
        HttpRequest push = make_request(static_cast<std::uint64_t>(100 + i), server.url("/push/1"));
        push.max_attempts = 1;
        push.account_limited = true;
        HttpResponse r;
        ASSERT_TRUE(run_one(e, std::move(push), &r));
        EXPECT_EQ(r.status, 429);
        EXPECT_EQ(r.error, ErrorClass::ban);  // the caller still sees the limit
    }
    HttpResponse offers;
    ASSERT_TRUE(run_one(e, make_request(1, server.url("/offers/1")), &offers));
    EXPECT_EQ(offers.error, ErrorClass::none) << offers.error_detail;
    EngineSnapshot snap = e.snapshot();
    ASSERT_EQ(snap.egresses.size(), 1u);
    EXPECT_FALSE(snap.egresses[0].cooling_down);
    EXPECT_EQ(snap.egresses[0].bans, 0u);
    EXPECT_EQ(snap.counters.egress_cooldowns, 0u);
    EXPECT_EQ(snap.counters.bans, 0u);
    ASSERT_EQ(snap.hosts.size(), 1u);
    EXPECT_EQ(snap.hosts[0].breaker, BreakerState::closed);
    EXPECT_DOUBLE_EQ(snap.hosts[0].effective_rate, 100.0);
}

TEST(HttpEngineEgress, AnUrgentRequestGoesAheadOfTheQueueAndStillTakesItsToken) {
    // A price push submitted behind a queue of offers requests (the budget spent in full) is the
    // next to go, not the last; urgent ones keep their own order; the rate is the same.
    TestServer server([](const SeenRequest&) { return ok_json(); });
    EngineConfig c = test_config();
    c.requests_per_second = 20;
    c.burst = 1;
    HttpEngine e(c);
    for (int i = 0; i < 8; ++i)
        e.submit(make_request(static_cast<std::uint64_t>(i), server.url("/offers/" + std::to_string(i))));
    for (int i = 0; i < 2; ++i) {
        HttpRequest push = make_request(static_cast<std::uint64_t>(100 + i), server.url("/push/" + std::to_string(i)));
        push.urgent = true;
        e.submit(std::move(push));
    }
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(10, 30));
    // The time each waited for its admission (all were submitted within microseconds; admissions
    // are 1/20 s apart): both pushes went before every offers request, in their own order.
    std::map<std::uint64_t, double> waited;
    for (const HttpResponse& r : loop.done) {
        EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
        waited[r.id] = r.elapsed_ms - r.request_ms;
    }
    ASSERT_EQ(waited.size(), 10u);
    EXPECT_LT(waited[100], waited[101]);
    for (std::uint64_t i = 0; i < 8; ++i) EXPECT_LT(waited[101], waited[i]) << "offers request " << i;
    // Ten admissions at 20 a second with a burst of 1: the last waited at least 9 / 20 s, so the
    // pushes took their tokens.
    double last = 0;
    for (const auto& [id, ms] : waited) last = std::max(last, ms);
    EXPECT_GE(last, 9.0 / 20 * 1000 - 10);
}

TEST(HttpEngineEgress, AnUnflaggedBanStillRestsTheEgress) {
    TestServer server([](const SeenRequest&) { return answer(429, {}, "{}"); });
    EngineConfig c = test_config();
    c.egress_cooldown_s = 30;
    c.aimd_clean_period_s = 60;
    HttpEngine e(c);
    HttpRequest req = make_request(1, server.url());
    req.max_attempts = 1;
    HttpResponse r;
    ASSERT_TRUE(run_one(e, std::move(req), &r));
    EXPECT_EQ(r.error, ErrorClass::ban);
    EngineSnapshot snap = e.snapshot();
    ASSERT_EQ(snap.egresses.size(), 1u);
    EXPECT_TRUE(snap.egresses[0].cooling_down);
    EXPECT_EQ(snap.counters.bans, 1u);
}

TEST(HttpEngineEgress, ReconfigureKeepsEgressStateAndDropsRemovedProxies) {
    TestServer pa([](const SeenRequest& req) { return proxy_answer(req, "a"); });
    EngineConfig c = via_proxies({proxy_url(pa)});
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

// ---------------------------------------------------------------------------------------------
// Redirects that leave the origin or TLS; the HTTP version.

// credentialed_request is a push-like request: a cookie, an Authorization header and a header
// the caller marks sensitive, next to a header that is no credential.
HttpRequest credentialed_request(const std::string& url) {
    HttpRequest r = make_request(1, url);
    r.headers = {"Content-Type: application/json", "Cookie: mc-session=SECRET",
                 "authorization: Bearer TOKEN", "X-Auth-Version: 3"};
    r.sensitive_headers = {"x-auth-version"};
    return r;
}

// expect_credentials checks which of credentialed_request's credentials a request carried.
void expect_credentials(const SeenRequest& seen, bool present) {
    for (const char* name : {"cookie", "authorization", "x-auth-version"}) {
        EXPECT_EQ(seen.headers.count(name), present ? 1u : 0u) << name << " at " << seen.target;
    }
    EXPECT_EQ(seen.headers.count("content-type"), 1u) << seen.target;  // not a credential
}

TEST(HttpEngineRedirects, LeavingTheOriginDropsCredentialsForGood) {
    // a (127.0.0.1) -> b ("localhost", another port) -> back to a: only the first request of a
    // carries the credentials.
    std::atomic<int> a_port{0}, b_port{0};
    TestServer a([&b_port](const SeenRequest& req) {
        if (req.target == "/back") return ok_json(R"({"back":true})");
        return answer(307, {"Location: http://localhost:" + std::to_string(b_port) + "/hop"});
    });
    TestServer b([&a_port](const SeenRequest&) {
        return answer(307, {"Location: http://127.0.0.1:" + std::to_string(a_port) + "/back"});
    });
    a_port = a.port();
    b_port = b.port();
    EngineConfig c = test_config();
    c.allowed_hosts = "127.0.0.1,localhost";
    HttpEngine e(c);
    HttpResponse r;
    ASSERT_TRUE(run_one(e, credentialed_request(a.url("/start")), &r));
    EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    EXPECT_EQ(r.body, R"({"back":true})");
    EXPECT_EQ(r.attempts, 3);
    const auto at_a = a.requests();
    const auto at_b = b.requests();
    ASSERT_EQ(at_a.size(), 2u);
    ASSERT_EQ(at_b.size(), 1u);
    EXPECT_EQ(at_a[0].headers.at("cookie"), "mc-session=SECRET");
    expect_credentials(at_a[0], true);
    expect_credentials(at_b[0], false);
    EXPECT_EQ(at_b[0].host_header, "localhost:" + std::to_string(b.port()));
    EXPECT_EQ(at_b[0].body, R"({"cityId":"750000000"})");  // 307 keeps the body
    expect_credentials(at_a[1], false);
    EXPECT_EQ(at_a[1].target, "/back");
}

TEST(HttpEngineRedirects, SameOriginRedirectKeepsCredentials) {
    TestServer server([](const SeenRequest& req) {
        if (req.target == "/final") return ok_json();
        return answer(308, {"Location: /final"});
    });
    HttpEngine e(test_config());
    HttpResponse r;
    ASSERT_TRUE(run_one(e, credentialed_request(server.url("/moved")), &r));
    EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    const auto seen = server.requests();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[1].target, "/final");
    expect_credentials(seen[0], true);
    expect_credentials(seen[1], true);
    EXPECT_EQ(seen[1].headers.at("cookie"), "mc-session=SECRET");
    EXPECT_EQ(seen[1].headers.at("x-auth-version"), "3");
}

TEST(HttpEngineRedirects, HttpsToHttpIsRefusedAndNothingGoesOverHttp) {
    TestServer plain([](const SeenRequest&) { return ok_json(); });
    TestServer secure(
        [&plain](const SeenRequest&) {
            return answer(302, {"Location: " + plain.url("/downgraded")});
        },
        Transport::tls);
    EngineConfig c = test_config();
    c.verify_tls = false;  // the test server's certificate is self-signed
    HttpResponse r;
    ASSERT_TRUE(run_one_with(c, secure.url("/start"), &r));
    EXPECT_EQ(r.error, ErrorClass::refused_host) << r.error_detail;
    EXPECT_EQ(r.status, 302);
    EXPECT_NE(r.error_detail.find("from https to http"), std::string::npos) << r.error_detail;
    EXPECT_EQ(r.error_detail.find("SECRET"), std::string::npos);
    EXPECT_EQ(secure.request_count(), 1u);
    EXPECT_EQ(plain.connections_accepted(), 0);
    EXPECT_EQ(plain.request_count(), 0u);
}

TEST(HttpEngineVersion, Http11ByDefaultOverTls) {
    TestServer secure([](const SeenRequest&) { return ok_json(); }, Transport::tls);
    EngineConfig c = test_config();
    c.verify_tls = false;
    HttpResponse r;
    ASSERT_TRUE(run_one_with(c, secure.url(), &r));
    EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    ASSERT_EQ(secure.request_count(), 1u);
    EXPECT_EQ(secure.requests()[0].version, "HTTP/1.1");
    EXPECT_EQ(secure.alpn_offers(), std::vector<std::string>{"http/1.1"});  // h2 not offered
}

TEST(HttpEngineVersion, Http2IsOfferedByAlpnOverTls) {
    TestServer secure([](const SeenRequest&) { return ok_json(); }, Transport::tls);
    EngineConfig c = test_config();
    c.verify_tls = false;
    c.http_version = HttpVersion::http2;
    HttpResponse r;
    ASSERT_TRUE(run_one_with(c, secure.url(), &r));
    // The server chose http/1.1 from the offer: the request falls back and succeeds.
    EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    EXPECT_EQ(secure.alpn_offers(), std::vector<std::string>{"h2,http/1.1"});
    ASSERT_EQ(secure.request_count(), 1u);
    EXPECT_EQ(secure.requests()[0].version, "HTTP/1.1");
}

TEST(HttpEngineVersion, Http2UsesPriorKnowledgeOverPlainHttp) {
    // The test server speaks HTTP/1.1 only: it records the h2 connection preface and hangs up.
    TestServer server([](const SeenRequest&) {
        CannedResponse r = answer(400, {}, "");
        r.close = true;
        return r;
    });
    EngineConfig c = test_config();
    c.http_version = HttpVersion::http2;
    c.max_attempts = 1;
    HttpResponse r;
    ASSERT_TRUE(run_one_with(c, server.url(), &r));
    EXPECT_NE(r.error, ErrorClass::none);
    const auto seen = server.requests();
    ASSERT_GE(seen.size(), 1u);
    EXPECT_EQ(seen[0].method, "PRI");
    EXPECT_EQ(seen[0].target, "*");
    EXPECT_EQ(seen[0].version, "HTTP/2.0");
}

// ---------------------------------------------------------------------------------------------
// Addresses: an allowed host that is, or resolves to, a private address.

EngineConfig private_addresses_refused(const std::string& allowed_hosts) {
    EngineConfig c = test_config();
    c.allowed_hosts = allowed_hosts;
    c.allow_private_addresses = false;
    return c;
}

TEST(HttpEngineAddresses, NameResolvingToLoopbackIsRefusedBeforeConnecting) {
    TestServer server([](const SeenRequest&) { return ok_json(); });
    HttpResponse r;
    ASSERT_TRUE(run_one_with(private_addresses_refused("localhost"), server.url_as("localhost"), &r));
    EXPECT_EQ(r.error, ErrorClass::refused_host) << r.error_detail;
    EXPECT_NE(r.error_detail.find("localhost resolves to"), std::string::npos) << r.error_detail;
    EXPECT_NE(r.error_detail.find("loopback"), std::string::npos) << r.error_detail;
    EXPECT_EQ(r.error_detail.find("SECRET"), std::string::npos);
    EXPECT_EQ(r.attempts, 1);  // handed to curl, stopped at the socket
    EXPECT_EQ(server.connections_accepted(), 0);
    EXPECT_EQ(server.request_count(), 0u);

    EngineConfig allowed = private_addresses_refused("localhost");
    allowed.allow_private_addresses = true;
    ASSERT_TRUE(run_one_with(allowed, server.url_as("localhost"), &r));
    EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
    EXPECT_EQ(server.request_count(), 1u);
}

TEST(HttpEngineAddresses, ReusedConnectionIsCheckedAgain) {
    TestServer server([](const SeenRequest&) { return ok_json(); });
    EngineConfig c = private_addresses_refused("localhost");
    c.allow_private_addresses = true;
    HttpEngine e(c);
    HttpResponse r;
    ASSERT_TRUE(run_one(e, make_request(1, server.url_as("localhost")), &r));
    ASSERT_EQ(r.error, ErrorClass::none) << r.error_detail;
    ASSERT_EQ(server.connections_accepted(), 1);  // kept alive in curl's connection cache
    c.allow_private_addresses = false;
    e.reconfigure(c);
    ASSERT_TRUE(run_one(e, make_request(2, server.url_as("localhost")), &r));
    EXPECT_EQ(r.error, ErrorClass::refused_host) << r.error_detail;
    EXPECT_NE(r.error_detail.find("loopback"), std::string::npos) << r.error_detail;
    EXPECT_EQ(server.request_count(), 1u);
    EXPECT_EQ(server.connections_accepted(), 1);
}

TEST(HttpEngineAddresses, PrivateLiteralsAreRefusedBeforeAnythingIsSent) {
    // Each URL is allowed by name; its address is what refuses it.
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"http://169.254.169.254/latest/meta-data/", "link-local"},   // cloud metadata
        {"http://2852039166/latest/meta-data/", "link-local"},        // the same, as one number
        {"http://[::ffff:169.254.169.254]/latest/meta-data/", "link-local"},  // IPv4-mapped
        {"http://127.0.0.1/", "loopback"},
        {"http://0.0.0.0/", "unspecified"},
        {"http://10.1.2.3/", "private"},
        {"http://[fd00::1]/", "private"},
        {"http://[fe80::1]/", "link-local"},
        {"http://224.0.0.1/", "multicast"},
    };
    HttpEngine e(private_addresses_refused(
        "169.254.169.254,2852039166,::ffff:169.254.169.254,127.0.0.1,0.0.0.0,10.1.2.3,fd00::1,"
        "fe80::1,224.0.0.1"));
    for (std::size_t i = 0; i < cases.size(); ++i) e.submit(make_request(i, cases[i].first));
    EXPECT_EQ(e.in_flight() + e.queued(), 0u);
    const auto done = e.take_completed();
    ASSERT_EQ(done.size(), cases.size());
    for (const HttpResponse& r : done) {
        const auto& [url, address_class] = cases[r.id];
        EXPECT_EQ(r.error, ErrorClass::refused_host) << url;
        EXPECT_EQ(r.attempts, 0) << url;  // never handed to curl: no packet was sent
        EXPECT_NE(r.error_detail.find(" is " + address_class + ";"), std::string::npos)
            << url << ": " << r.error_detail;
    }
    EXPECT_EQ(e.counters().refused, cases.size());
}

TEST(HttpEngineAddresses, ReconfigureRefusesQueuedPrivateTargets) {
    TestServer server([](const SeenRequest&) { return ok_json(); });
    EngineConfig c = test_config();
    c.requests_per_second = 0.01;  // one token: the second request stays queued
    c.burst = 1;
    HttpEngine e(c);
    Loop loop{e};
    e.submit(make_request(1, server.url()));
    ASSERT_TRUE(loop.run_until(1, 10));
    e.submit(make_request(2, server.url()));
    loop.tick();
    ASSERT_EQ(e.queued(), 1u);
    c.allow_private_addresses = false;
    e.reconfigure(c);
    EXPECT_EQ(e.queued(), 0u);
    const auto done = e.take_completed();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].error, ErrorClass::refused_host);
    EXPECT_NE(done[0].error_detail.find("loopback"), std::string::npos) << done[0].error_detail;
    EXPECT_EQ(server.request_count(), 1u);
}

// Through a proxy the proxy's address is the operator's choice and the target's name is the
// proxy's to resolve; a target IP literal is still checked.
TEST(HttpEngineAddresses, ThroughAProxyOnlyTheTargetLiteralIsChecked) {
    TestServer proxy([](const SeenRequest& req) { return proxy_answer(req, "p"); });
    EngineConfig c = private_addresses_refused("shop.test,10.1.2.3");
    c.proxies = {proxy_url(proxy)};
    HttpEngine e(c);
    e.submit(make_request(1, "http://shop.test/offers/1"));
    e.submit(make_request(2, "http://10.1.2.3/offers/1"));
    Loop loop{e};
    ASSERT_TRUE(loop.run_until(2, 10));
    for (const HttpResponse& r : loop.done) {
        if (r.id == 1) {
            EXPECT_EQ(r.error, ErrorClass::none) << r.error_detail;
        } else {
            EXPECT_EQ(r.error, ErrorClass::refused_host);
            EXPECT_NE(r.error_detail.find("10.1.2.3 is private"), std::string::npos);
        }
    }
    const auto seen = proxy.requests();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].target, "http://shop.test/offers/1");
}

}  // namespace
}  // namespace demper::core
