// http_engine: libcurl multi in "socket action" mode behind an epoll fd (see http_engine.hpp).
//
// Life of a request: submit() -> ready_ queue -> admission (allow-list, token, in-flight slot)
// -> an easy handle inside the multi -> finished: complete, or retry (delayed_ until its time,
// then ready_ again), or follow a redirect (ready_ front, re-checked against the allow-list).
#include "core/http_engine.hpp"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <ctime>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include "core/rate_limit.hpp"
#include "core/url.hpp"

namespace demper::core {

const char* error_class_name(ErrorClass c) {
    switch (c) {
        case ErrorClass::none: return "none";
        case ErrorClass::timeout: return "timeout";
        case ErrorClass::connect: return "connect";
        case ErrorClass::dns: return "dns";
        case ErrorClass::tls: return "tls";
        case ErrorClass::http_4xx: return "http_4xx";
        case ErrorClass::http_5xx: return "http_5xx";
        case ErrorClass::ban: return "ban";
        case ErrorClass::too_large: return "too_large";
        case ErrorClass::bad_body: return "bad_body";
        case ErrorClass::refused_host: return "refused_host";
        case ErrorClass::canceled: return "canceled";
    }
    return "unknown";
}

namespace {

constexpr int kEpollBatch = 64;
// perform() repeats socket/timer/admission rounds while curl asks to be called at once, at most
// this many times, so one call stays short.
constexpr int kMaxPerformRounds = 8;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void init_curl_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            throw std::runtime_error("curl_global_init failed");
        }
    });
}

struct EasyDeleter {
    void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct MultiDeleter {
    void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;

// OwnedFd closes its descriptor on destruction.
class OwnedFd {
public:
    explicit OwnedFd(int fd) : fd_(fd) {}
    ~OwnedFd() {
        if (fd_ >= 0) ::close(fd_);
    }
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

bool iequals_prefix(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        const char a = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
        if (a != prefix[i]) return false;
    }
    return true;
}

std::string_view trim_header_value(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r' ||
                          v.back() == '\n')) {
        v.remove_suffix(1);
    }
    return v;
}

bool is_retried(ErrorClass c) {
    return c == ErrorClass::timeout || c == ErrorClass::connect || c == ErrorClass::dns ||
           c == ErrorClass::ban || c == ErrorClass::http_5xx;
}

bool is_ban_status(long status) { return status == 403 || status == 429 || status == 526; }

ErrorClass classify_status(long status) {
    if (is_ban_status(status)) return ErrorClass::ban;
    if (status >= 500 && status <= 599) return ErrorClass::http_5xx;
    if (status >= 400 && status <= 499) return ErrorClass::http_4xx;
    if (status >= 200 && status <= 299) return ErrorClass::none;
    return ErrorClass::bad_body;  // 1xx/3xx that was not followed, or nonsense
}

ErrorClass classify_curl_code(CURLcode code) {
    switch (code) {
        case CURLE_OPERATION_TIMEDOUT: return ErrorClass::timeout;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY: return ErrorClass::dns;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_SSL_SHUTDOWN_FAILED:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CLIENTCERT:
        case CURLE_USE_SSL_FAILED: return ErrorClass::tls;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT: return ErrorClass::refused_host;
        case CURLE_FILESIZE_EXCEEDED: return ErrorClass::too_large;
        default: return ErrorClass::connect;  // refused, reset, empty reply, broken stream
    }
}

bool method_is_valid(const std::string& m) {
    return !m.empty() && m.size() <= 16 &&
           std::all_of(m.begin(), m.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

bool headers_are_valid(const std::vector<std::string>& headers) {
    for (const std::string& h : headers) {
        if (h.find_first_of("\r\n") != std::string::npos || h.find(':') == std::string::npos ||
            h.front() == ':') {
            return false;
        }
    }
    return true;
}

}  // namespace

// Transfer is one request over its whole life; the per-attempt part is reset by each admission.
struct Transfer {
    HttpRequest req;
    std::string url;  // current URL (changes with redirects)
    std::string method;
    bool send_body = true;
    int attempts = 0;  // attempts sent
    int retries = 0;   // retries scheduled (bounded by max_attempts - 1)
    int hops = 0;      // redirects followed
    double submitted_at = 0;
    double not_before = 0;
    bool waited_for_token = false;

    // per attempt
    EasyPtr easy;
    SlistPtr header_list;
    std::string body;
    std::optional<std::string> retry_after;
    bool too_large = false;
    std::size_t max_body = 0;
    std::array<char, CURL_ERROR_SIZE> errbuf{};
};

using TransferPtr = std::unique_ptr<Transfer>;

struct HttpEngine::Impl {
    EngineConfig cfg;
    HostAllowList allow;
    TokenBucket bucket;
    Backoff backoff;
    EngineCounters counters;

    OwnedFd epoll_fd;
    MultiPtr multi;
    double timer_deadline = -1;  // curl's requested wake-up (seconds, steady clock), -1 = none

    std::deque<TransferPtr> ready;             // waiting for admission, FIFO
    std::multimap<double, TransferPtr> delayed;  // retries waiting for their time
    std::unordered_map<CURL*, TransferPtr> active;  // inside curl
    std::vector<HttpResponse> completed;

    explicit Impl(const EngineConfig& c);
    ~Impl();

    void apply_multi_options();
    void complete(TransferPtr t, ErrorClass error, long status, std::string detail,
                  std::string content_type = {});
    void drive_sockets();
    void fire_timer_if_due(double now);
    void collect_finished(double now);
    void finish_transfer(TransferPtr t, CURLcode code, double now);
    void schedule_retry(TransferPtr t, double now);
    void promote_due_retries(double now);
    void admit(double now);
    bool start_attempt(Transfer& t, double now, std::string* why);
    std::optional<std::string> refusal_reason(const std::string& url) const;

    static int on_socket(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp);
    static int on_timer(CURLM* multi, long timeout_ms, void* userp);
    static size_t on_body(char* data, size_t size, size_t nmemb, void* userp);
    static size_t on_header(char* data, size_t size, size_t nmemb, void* userp);
};

static std::uint64_t pick_seed(std::uint64_t configured) {
    if (configured != 0) return configured;
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

HttpEngine::Impl::Impl(const EngineConfig& c)
    : cfg(c),
      allow(c.allowed_hosts),
      bucket(c.requests_per_second, c.burst),
      backoff(c.backoff_base_s, c.backoff_cap_s, pick_seed(c.backoff_seed)),
      epoll_fd(::epoll_create1(EPOLL_CLOEXEC)) {
    init_curl_once();
    if (epoll_fd.get() < 0) {
        throw std::runtime_error(std::string("epoll_create1 failed: ") + std::strerror(errno));
    }
    multi.reset(curl_multi_init());
    if (!multi) throw std::runtime_error("curl_multi_init failed");
    curl_multi_setopt(multi.get(), CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
    curl_multi_setopt(multi.get(), CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi.get(), CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
    curl_multi_setopt(multi.get(), CURLMOPT_TIMERDATA, this);
    apply_multi_options();
}

HttpEngine::Impl::~Impl() {
    for (auto& [easy, t] : active) curl_multi_remove_handle(multi.get(), easy);
    active.clear();  // frees the easy handles (after their removal from the multi)
    ready.clear();
    delayed.clear();
    multi.reset();  // closes cached connections; may call on_socket, epoll_fd is still open
}

void HttpEngine::Impl::apply_multi_options() {
    // Our own in-flight cap is never above curl's connection caps, so curl never parks an
    // admitted handle in its internal pending queue (where the timeout would run unseen).
    const long cap = std::max(1, cfg.max_inflight);
    curl_multi_setopt(multi.get(), CURLMOPT_MAX_HOST_CONNECTIONS, cap);
    curl_multi_setopt(multi.get(), CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    curl_multi_setopt(multi.get(), CURLMOPT_MAXCONNECTS, std::max(cap, 16L));
}

int HttpEngine::Impl::on_socket(CURL*, curl_socket_t s, int what, void* userp, void*) {
    auto* self = static_cast<Impl*>(userp);
    const int epfd = self->epoll_fd.get();
    if (what == CURL_POLL_REMOVE) {
        ::epoll_ctl(epfd, EPOLL_CTL_DEL, s, nullptr);  // ENOENT/EBADF are harmless here
        return 0;
    }
    epoll_event ev{};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.fd = s;
    if (::epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT) {
        ::epoll_ctl(epfd, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
}

int HttpEngine::Impl::on_timer(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    self->timer_deadline = timeout_ms < 0 ? -1 : now_s() + static_cast<double>(timeout_ms) / 1000.0;
    return 0;
}

size_t HttpEngine::Impl::on_body(char* data, size_t size, size_t nmemb, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const size_t n = size * nmemb;
    if (t->body.size() + n > t->max_body) {
        t->too_large = true;
        return 0;  // any count other than n aborts the transfer with CURLE_WRITE_ERROR
    }
    t->body.append(data, n);
    return n;
}

size_t HttpEngine::Impl::on_header(char* data, size_t size, size_t nmemb, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const size_t n = size * nmemb;
    const std::string_view line(data, n);
    if (iequals_prefix(line, "http/")) {
        t->retry_after.reset();  // a new response (after 1xx): forget the previous one's headers
    } else if (iequals_prefix(line, "retry-after:")) {
        t->retry_after = std::string(trim_header_value(line.substr(12)));
    }
    return n;
}

std::optional<std::string> HttpEngine::Impl::refusal_reason(const std::string& url) const {
    auto parts = parse_url(url);
    if (!parts) return std::string("malformed or non-http(s) URL");
    if (!allow.allows(parts->host, parts->port)) {
        return "host not in the allow-list: " + parts->host;
    }
    return std::nullopt;
}

void HttpEngine::Impl::complete(TransferPtr t, ErrorClass error, long status, std::string detail,
                                std::string content_type) {
    HttpResponse r;
    r.id = t->req.id;
    r.error = error;
    r.status = status;
    r.body = std::move(t->body);
    r.error_detail = std::move(detail);
    r.elapsed_ms = (now_s() - t->submitted_at) * 1000.0;
    r.attempts = t->attempts;
    r.content_type = std::move(content_type);
    if (error == ErrorClass::none) {
        ++counters.completed_ok;
    } else {
        ++counters.completed_failed;
        if (error == ErrorClass::refused_host) ++counters.refused;
    }
    completed.push_back(std::move(r));
}

bool HttpEngine::Impl::start_attempt(Transfer& t, double now, std::string* why) {
    EasyPtr easy(curl_easy_init());
    if (!easy) {
        *why = "curl_easy_init failed";
        return false;
    }
    CURL* h = easy.get();
    t.body.clear();
    t.retry_after.reset();
    t.too_large = false;
    t.max_body = cfg.max_body_bytes;
    t.errbuf[0] = '\0';

    SlistPtr list;
    auto append = [&list](const char* line) {
        curl_slist* next = curl_slist_append(list.get(), line);
        if (next == nullptr) return false;
        (void)list.release();
        list.reset(next);
        return true;
    };
    for (const std::string& line : t.req.headers) {
        if (!append(line.c_str())) {
            *why = "out of memory building headers";
            return false;
        }
    }
    // Without this curl sends "Expect: 100-continue" for larger bodies and waits for a reply.
    if (!append("Expect:")) {
        *why = "out of memory building headers";
        return false;
    }

    CURLcode rc = CURLE_OK;
    auto set = [&rc](CURLcode r) {
        if (rc == CURLE_OK) rc = r;
    };
    set(curl_easy_setopt(h, CURLOPT_URL, t.url.c_str()));
    set(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https"));
    set(curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
    set(curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L));  // we follow, after the allow-list
    set(curl_easy_setopt(h, CURLOPT_PROXY, ""));            // ignore http_proxy & co.
    set(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, std::max(1L, cfg.timeout_ms)));
    set(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, std::max(1L, cfg.connect_timeout_ms)));
    set(curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, cfg.verify_tls ? 1L : 0L));
    set(curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, cfg.verify_tls ? 2L : 0L));
    if (!cfg.ca_file.empty()) set(curl_easy_setopt(h, CURLOPT_CAINFO, cfg.ca_file.c_str()));
    set(curl_easy_setopt(h, CURLOPT_USERAGENT, cfg.user_agent.c_str()));
    set(curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get()));
    set(curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""));  // whatever curl can decode
    set(curl_easy_setopt(h, CURLOPT_DNS_CACHE_TIMEOUT, cfg.dns_cache_timeout_s));
    set(curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L));
    set(curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
                         static_cast<curl_off_t>(cfg.max_body_bytes)));
    set(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Impl::on_body));
    set(curl_easy_setopt(h, CURLOPT_WRITEDATA, &t));
    set(curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Impl::on_header));
    set(curl_easy_setopt(h, CURLOPT_HEADERDATA, &t));
    set(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.errbuf.data()));
    set(curl_easy_setopt(h, CURLOPT_PRIVATE, &t));
    if (t.method == "HEAD") {
        set(curl_easy_setopt(h, CURLOPT_NOBODY, 1L));
    } else if (t.method == "GET" || !t.send_body) {
        set(curl_easy_setopt(h, CURLOPT_HTTPGET, 1L));
        if (t.method != "GET") set(curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, t.method.c_str()));
    } else {
        set(curl_easy_setopt(h, CURLOPT_POST, 1L));
        set(curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(t.req.body.size())));
        set(curl_easy_setopt(h, CURLOPT_POSTFIELDS, t.req.body.data()));
        if (t.method != "POST") {
            set(curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, t.method.c_str()));
        }
    }
    if (rc != CURLE_OK) {
        *why = std::string("curl option rejected: ") + curl_easy_strerror(rc);
        return false;
    }
    const CURLMcode mrc = curl_multi_add_handle(multi.get(), h);
    if (mrc != CURLM_OK) {
        *why = std::string("curl_multi_add_handle failed: ") + curl_multi_strerror(mrc);
        return false;
    }
    (void)now;
    t.header_list = std::move(list);
    t.easy = std::move(easy);
    ++t.attempts;
    return true;
}

void HttpEngine::Impl::admit(double now) {
    const std::size_t cap = static_cast<std::size_t>(std::max(1, cfg.max_inflight));
    while (!ready.empty() && active.size() < cap) {
        Transfer& head = *ready.front();
        if (auto why = refusal_reason(head.url)) {
            TransferPtr t = std::move(ready.front());
            ready.pop_front();
            complete(std::move(t), ErrorClass::refused_host, 0, std::move(*why));
            continue;
        }
        if (!bucket.try_take(now)) {
            if (!head.waited_for_token) {
                head.waited_for_token = true;
                ++counters.rate_limit_waits;
            }
            return;
        }
        TransferPtr t = std::move(ready.front());
        ready.pop_front();
        t->waited_for_token = false;
        std::string why;
        if (!start_attempt(*t, now, &why)) {
            complete(std::move(t), ErrorClass::connect, 0, std::move(why));
            continue;
        }
        CURL* easy = t->easy.get();
        active.emplace(easy, std::move(t));
    }
}

void HttpEngine::Impl::drive_sockets() {
    std::array<epoll_event, kEpollBatch> events{};
    for (int round = 0; round < kMaxPerformRounds; ++round) {
        const int n = ::epoll_wait(epoll_fd.get(), events.data(), kEpollBatch, 0);
        if (n <= 0) return;
        for (int i = 0; i < n; ++i) {
            int mask = 0;
            if (events[i].events & EPOLLIN) mask |= CURL_CSELECT_IN;
            if (events[i].events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
            if (events[i].events & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
            int running = 0;
            curl_multi_socket_action(multi.get(), events[i].data.fd, mask, &running);
        }
        if (n < kEpollBatch) return;
    }
}

void HttpEngine::Impl::fire_timer_if_due(double now) {
    if (timer_deadline < 0 || now < timer_deadline) return;
    timer_deadline = -1;  // on_timer may set a new one during the call
    int running = 0;
    curl_multi_socket_action(multi.get(), CURL_SOCKET_TIMEOUT, 0, &running);
}

void HttpEngine::Impl::collect_finished(double now) {
    int pending = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi.get(), &pending)) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL* easy = msg->easy_handle;
        const CURLcode code = msg->data.result;  // read before remove: msg dies with the handle
        auto it = active.find(easy);
        curl_multi_remove_handle(multi.get(), easy);
        if (it == active.end()) continue;  // not ours; cannot happen
        TransferPtr t = std::move(it->second);
        active.erase(it);
        finish_transfer(std::move(t), code, now);
    }
}

void HttpEngine::Impl::finish_transfer(TransferPtr t, CURLcode code, double now) {
    CURL* h = t->easy.get();
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    const char* ctype = nullptr;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
    std::string content_type = ctype != nullptr ? ctype : "";
    const char* redirect = nullptr;
    curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &redirect);
    std::string redirect_url = redirect != nullptr ? redirect : "";
    std::string curl_detail = t->errbuf[0] != '\0' ? t->errbuf.data() : curl_easy_strerror(code);
    // The attempt is over: free its handle now (connections stay cached in the multi).
    t->easy.reset();
    t->header_list.reset();

    ErrorClass error = ErrorClass::none;
    std::string detail;
    if (code != CURLE_OK) {
        if (t->too_large || code == CURLE_FILESIZE_EXCEEDED) {
            error = ErrorClass::too_large;
            detail = "body larger than " + std::to_string(cfg.max_body_bytes) + " bytes";
        } else {
            error = classify_curl_code(code);
            detail = std::move(curl_detail);
        }
    } else if (status == 301 || status == 302 || status == 303 || status == 307 ||
               status == 308) {
        if (redirect_url.empty()) {
            complete(std::move(t), ErrorClass::bad_body, status, "redirect without Location",
                     std::move(content_type));
            return;
        }
        if (t->hops >= kMaxRedirects) {
            complete(std::move(t), ErrorClass::bad_body, status, "too many redirects",
                     std::move(content_type));
            return;
        }
        if (auto why = refusal_reason(redirect_url)) {
            complete(std::move(t), ErrorClass::refused_host, status, "redirect refused: " + *why,
                     std::move(content_type));
            return;
        }
        ++t->hops;
        t->url = std::move(redirect_url);
        if (status == 303) {  // "see other": fetch the result with GET; 301/302/307/308 keep POST
            t->method = "GET";
            t->send_body = false;
        }
        ready.push_front(std::move(t));
        return;
    } else {
        error = classify_status(status);
        if (error == ErrorClass::none) {
            if (iequals_prefix(trim_header_value(content_type), "text/html")) {
                error = ErrorClass::bad_body;
                detail = "HTML instead of JSON";
            }
        } else {
            detail = "HTTP " + std::to_string(status);
        }
    }

    if (is_retried(error) && t->retries + 1 < cfg.max_attempts) {
        schedule_retry(std::move(t), now);
        return;
    }
    complete(std::move(t), error, status, std::move(detail), std::move(content_type));
}

void HttpEngine::Impl::schedule_retry(TransferPtr t, double now) {
    double wait = backoff.delay(t->retries);
    if (t->retry_after) {
        if (auto ra = parse_retry_after(*t->retry_after, static_cast<double>(std::time(nullptr)))) {
            wait = std::max(wait, *ra);
        }
    }
    wait = std::min(wait, std::max(0.0, cfg.backoff_cap_s));
    ++t->retries;
    ++counters.retries;
    t->not_before = now + wait;
    const double at = t->not_before;
    delayed.emplace(at, std::move(t));
}

void HttpEngine::Impl::promote_due_retries(double now) {
    while (!delayed.empty() && delayed.begin()->first <= now) {
        ready.push_back(std::move(delayed.begin()->second));
        delayed.erase(delayed.begin());
    }
}

// ---------------------------------------------------------------------------------------------
// HttpEngine

HttpEngine::HttpEngine(const EngineConfig& cfg) : impl_(std::make_unique<Impl>(cfg)) {}

HttpEngine::~HttpEngine() = default;

void HttpEngine::reconfigure(const EngineConfig& cfg) {
    Impl& s = *impl_;
    s.cfg = cfg;
    s.allow = HostAllowList(cfg.allowed_hosts);
    s.bucket.configure(cfg.requests_per_second, cfg.burst);
    s.backoff.configure(cfg.backoff_base_s, cfg.backoff_cap_s);
    s.apply_multi_options();
}

void HttpEngine::submit(HttpRequest req) {
    Impl& s = *impl_;
    ++s.counters.requests;
    auto t = std::make_unique<Transfer>();
    t->submitted_at = now_s();
    t->url = req.url;
    t->method = req.method.empty() ? std::string("POST") : req.method;
    t->send_body = t->method != "GET" && t->method != "HEAD";
    t->req = std::move(req);
    if (auto why = s.refusal_reason(t->url)) {
        s.complete(std::move(t), ErrorClass::refused_host, 0, std::move(*why));
        return;
    }
    if (!method_is_valid(t->method)) {
        s.complete(std::move(t), ErrorClass::refused_host, 0, "malformed request method");
        return;
    }
    if (!headers_are_valid(t->req.headers)) {
        s.complete(std::move(t), ErrorClass::refused_host, 0, "malformed request header");
        return;
    }
    s.ready.push_back(std::move(t));
}

int HttpEngine::wait_fd() const { return impl_->epoll_fd.get(); }

long HttpEngine::next_timeout_ms() const {
    const Impl& s = *impl_;
    if (!s.completed.empty()) return 0;
    const double now = now_s();
    double deadline = kInfinity;
    if (s.timer_deadline >= 0) deadline = s.timer_deadline;
    const std::size_t cap = static_cast<std::size_t>(std::max(1, s.cfg.max_inflight));
    if (!s.ready.empty() && s.active.size() < cap) {
        deadline = std::min(deadline, s.bucket.next_available(now));
    }
    if (!s.delayed.empty()) deadline = std::min(deadline, s.delayed.begin()->first);
    if (deadline == kInfinity) return -1;
    const double ms = std::ceil((deadline - now) * 1000.0);
    if (ms <= 0) return 0;
    if (ms >= static_cast<double>(INT_MAX)) return INT_MAX;
    return static_cast<long>(ms);
}

void HttpEngine::perform() {
    Impl& s = *impl_;
    s.drive_sockets();
    for (int round = 0; round < kMaxPerformRounds; ++round) {
        const double now = now_s();
        s.fire_timer_if_due(now);
        s.collect_finished(now);
        s.promote_due_retries(now);
        s.admit(now);
        // Adding handles makes curl ask for an immediate timer call; honour it now rather than
        // after another trip through the owner's wait.
        if (s.timer_deadline < 0 || s.timer_deadline > now_s()) break;
    }
}

std::vector<HttpResponse> HttpEngine::take_completed() {
    std::vector<HttpResponse> out;
    out.swap(impl_->completed);
    return out;
}

std::size_t HttpEngine::in_flight() const { return impl_->active.size(); }

std::size_t HttpEngine::queued() const { return impl_->ready.size() + impl_->delayed.size(); }

void HttpEngine::cancel_all() {
    Impl& s = *impl_;
    std::vector<TransferPtr> victims;
    for (auto& [easy, t] : s.active) {
        curl_multi_remove_handle(s.multi.get(), easy);
        t->easy.reset();
        t->header_list.reset();
        victims.push_back(std::move(t));
    }
    s.active.clear();
    for (auto& t : s.ready) victims.push_back(std::move(t));
    s.ready.clear();
    for (auto& [at, t] : s.delayed) victims.push_back(std::move(t));
    s.delayed.clear();
    for (auto& t : victims) s.complete(std::move(t), ErrorClass::canceled, 0, "canceled");
}

const EngineCounters& HttpEngine::counters() const { return impl_->counters; }

}  // namespace demper::core
