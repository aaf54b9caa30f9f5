// http_engine: libcurl multi in "socket action" mode behind an epoll fd (see http_engine.hpp).
//
// Life of a request: submit() -> ready_ queue -> admission (allow-list, token, in-flight slot)
// -> an easy handle inside the multi -> finished: complete, or retry (delayed_ until its time,
// then ready_ again), or follow a redirect (ready_ front, re-checked against the allow-list).
#include "core/http_engine.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <ctime>
#include <limits>
#include <list>
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
        case ErrorClass::none:
            return "none";
        case ErrorClass::timeout:
            return "timeout";
        case ErrorClass::connect:
            return "connect";
        case ErrorClass::dns:
            return "dns";
        case ErrorClass::tls:
            return "tls";
        case ErrorClass::http_4xx:
            return "http_4xx";
        case ErrorClass::http_5xx:
            return "http_5xx";
        case ErrorClass::ban:
            return "ban";
        case ErrorClass::too_large:
            return "too_large";
        case ErrorClass::bad_body:
            return "bad_body";
        case ErrorClass::refused_host:
            return "refused_host";
        case ErrorClass::canceled:
            return "canceled";
    }
    return "unknown";
}

std::optional<HttpVersion> parse_http_version(std::string_view text) {
    if (text == "1.1") return HttpVersion::http1_1;
    if (text == "2") return HttpVersion::http2;
    return std::nullopt;
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
    while (!v.empty() &&
           (v.back() == ' ' || v.back() == '\t' || v.back() == '\r' || v.back() == '\n')) {
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
        case CURLE_OPERATION_TIMEDOUT:
            return ErrorClass::timeout;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            return ErrorClass::dns;
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
        case CURLE_USE_SSL_FAILED:
            return ErrorClass::tls;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            return ErrorClass::refused_host;
        case CURLE_FILESIZE_EXCEEDED:
            return ErrorClass::too_large;
        default:
            return ErrorClass::connect;  // refused, reset, empty reply, broken stream
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

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && iequals_prefix(a, b);
}

// header_name is the name of a "Name: value" line, without surrounding blanks.
std::string_view header_name(std::string_view line) {
    std::string_view name = line.substr(0, line.find(':'));
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
    return name;
}

// drop_credentials removes Cookie, Authorization and the caller's sensitive headers.
void drop_credentials(std::vector<std::string>& headers, const std::vector<std::string>& sensitive) {
    auto is_credential = [&sensitive](const std::string& line) {
        std::string lower(header_name(line));
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (lower == "cookie" || lower == "authorization") return true;
        return std::any_of(sensitive.begin(), sensitive.end(),
                           [&lower](const std::string& name) { return iequals(name, lower); });
    };
    headers.erase(std::remove_if(headers.begin(), headers.end(), is_credential), headers.end());
}

// host_key is the per-host state's key, "host:port" ("[v6]:port").
std::string host_key(const UrlParts& parts) {
    const bool v6 = parts.host.find(':') != std::string::npos;
    return (v6 ? "[" + parts.host + "]" : parts.host) + ":" + std::to_string(parts.port);
}

// address_refusal says why `host`, at `address` of class `c` (not global), is not contacted.
std::string address_refusal(const std::string& host, const std::string& address, AddressClass c) {
    const std::string what = host == address ? address + " is " : host + " resolves to " + address +
                                                                      ", which is ";
    return what + address_class_name(c) + "; private addresses are not allowed";
}

// sockaddr_class classifies the address curl is about to connect to (not an IP: reserved).
AddressClass sockaddr_class(const sockaddr* sa, std::string* text) {
    char buf[INET6_ADDRSTRLEN] = "";
    AddressClass c = AddressClass::reserved;
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        std::array<std::uint8_t, 4> bytes{};
        std::memcpy(bytes.data(), &in->sin_addr, bytes.size());
        c = classify_ipv4(bytes);
        ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    } else if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        std::array<std::uint8_t, 16> bytes{};
        std::memcpy(bytes.data(), &in6->sin6_addr, bytes.size());
        c = classify_ipv6(bytes);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    }
    *text = buf[0] != '\0' ? buf : "a non-IP address";
    return c;
}

// scrub removes a proxy's credentials from a text that might quote the proxy URL.
std::string scrub(std::string text, const std::string& proxy) {
    const std::size_t sep = proxy.find("://");
    const std::size_t start = sep == std::string::npos ? 0 : sep + 3;
    const std::size_t at = proxy.find('@', start);
    if (at == std::string::npos) return text;
    const std::string userinfo = proxy.substr(start, at - start);
    for (std::size_t pos; !userinfo.empty() && (pos = text.find(userinfo)) != std::string::npos;) {
        text.replace(pos, userinfo.size(), "***");
    }
    return text;
}

// Egress is one way out to the network: direct, or through one proxy.
struct Egress {
    std::string proxy;  // "" = direct
    std::string name;   // "direct" or the proxy URL without credentials
    TokenBucket bucket;
    double cooldown_until = 0;
    std::uint64_t attempts = 0;
    std::uint64_t bans = 0;
    std::size_t in_flight = 0;
};
using EgressPtr = std::shared_ptr<Egress>;

// HostState is what the engine knows about one target "host:port".
struct HostState {
    HostState(const EngineConfig& c, double rate, double burst)
        : bucket(rate, burst),
          aimd(rate, c.aimd_floor_rps, c.aimd_decrease_interval_s, c.aimd_clean_period_s,
               c.aimd_increase_step),
          breaker(c.breaker_failure_threshold, c.breaker_window_s, c.breaker_cooldown_s) {}
    TokenBucket bucket;  // its rate follows aimd
    AdaptiveRate aimd;
    CircuitBreaker breaker;
    std::size_t in_flight = 0;
    std::uint64_t bans = 0;
};

// Transfer is one request over its whole life; the per-attempt part is reset by each admission.
struct Transfer {
    HttpRequest req;
    std::string url;  // current URL (changes with redirects)
    UrlParts target;  // url, parsed
    HostState* host = nullptr;  // owned by Impl::hosts, never erased
    std::string method;
    bool send_body = true;
    int attempts = 0;  // attempts sent
    int retries = 0;   // retries scheduled (bounded by max_attempts - 1)
    int hops = 0;      // redirects followed
    double submitted_at = 0;
    bool waited_for_token = false;
    double admitted_at = 0;  // of the latest attempt

    // per attempt
    EasyPtr easy;
    SlistPtr header_list;
    EgressPtr egress;
    bool probe = false;  // the half-open breaker's single probe
    bool check_address = false;   // direct, and private addresses not allowed
    std::string refused_address;  // why curl was kept from an address ("" = it was not)
    std::string body;
    std::optional<std::string> retry_after;
    bool too_large = false;
    std::size_t max_body = 0;
    std::array<char, CURL_ERROR_SIZE> errbuf{};
};

using TransferPtr = std::unique_ptr<Transfer>;

// At most this many idle easy handles are kept for reuse.
constexpr std::size_t kMaxSpareHandles = 1024;

}  // namespace

struct HttpEngine::Impl {
    EngineConfig cfg;
    HostAllowList allow;
    Backoff backoff;
    EngineCounters counters;
    std::vector<EgressPtr> egresses;
    std::unordered_map<std::string, std::unique_ptr<HostState>> hosts;

    OwnedFd epoll_fd;
    MultiPtr multi;
    double timer_deadline = -1;  // curl's requested wake-up (seconds, steady clock), -1 = none

    std::list<TransferPtr> ready;                   // waiting for admission, FIFO
    std::multimap<double, TransferPtr> delayed;     // retries waiting for their time
    std::unordered_map<CURL*, TransferPtr> active;  // inside curl
    // Easy handles of finished attempts, reset and reused: a new handle per request costs a
    // large calloc, a 16 KB buffer and their frees (about a tenth of curl's share per request).
    std::vector<EasyPtr> spare_easy;
    std::vector<HttpResponse> completed;

    explicit Impl(const EngineConfig& c);
    ~Impl();

    void configure(const EngineConfig& c);
    void apply_multi_options();
    double host_rate() const;
    double host_burst() const;
    std::size_t inflight_cap() const {
        return static_cast<std::size_t>(std::max(1, cfg.max_inflight));
    }
    std::size_t host_inflight_cap() const {
        return static_cast<std::size_t>(std::max(1, cfg.max_inflight_per_host));
    }
    HostState* host_state(const std::string& key);
    void sync_host_rate(HostState& h, double now);
    Egress* pick_egress(double now) const;
    double egress_ready_at(double now) const;
    void rest_egress(Egress& e, double now);
    void complete(TransferPtr t, ErrorClass error, long status, std::string detail,
                  std::string content_type = {});
    void drive_sockets();
    void fire_timer_if_due(double now);
    void collect_finished(double now);
    void release_attempt(Transfer& t);
    void record_attempt(Transfer& t, ErrorClass error, double now);
    void finish_transfer(TransferPtr t, CURLcode code, double now);
    void schedule_retry(TransferPtr t, double now);
    void promote_due_retries(double now);
    void admit(double now);
    double next_admission_at(double now) const;
    bool start_attempt(Transfer& t, std::string* why);
    long curl_http_version(const Transfer& t) const;
    std::optional<std::string> refusal_reason(const std::string& url, UrlParts* parts) const;

    static int on_socket(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp);
    static int on_timer(CURLM* multi, long timeout_ms, void* userp);
    static size_t on_body(char* data, size_t size, size_t nmemb, void* userp);
    static size_t on_header(char* data, size_t size, size_t nmemb, void* userp);
    static curl_socket_t on_open_socket(void* userp, curlsocktype purpose,
                                        curl_sockaddr* address) noexcept;
    static int on_prereq(void* userp, char* primary_ip, char* local_ip, int primary_port,
                         int local_port) noexcept;
};

static std::uint64_t pick_seed(std::uint64_t configured) {
    if (configured != 0) return configured;
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

HttpEngine::Impl::Impl(const EngineConfig& c)
    : cfg(c),
      allow(c.allowed_hosts),
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
    configure(c);
}

HttpEngine::Impl::~Impl() {
    for (auto& [easy, t] : active) curl_multi_remove_handle(multi.get(), easy);
    active.clear();  // frees the easy handles (after their removal from the multi)
    ready.clear();
    delayed.clear();
    multi.reset();  // closes cached connections; may call on_socket, epoll_fd is still open
}

// configure applies a configuration to everything admitted from now on.
void HttpEngine::Impl::configure(const EngineConfig& c) {
    cfg = c;
    allow = HostAllowList(c.allowed_hosts);
    backoff.configure(c.backoff_base_s, c.backoff_cap_s);

    std::vector<std::string> wanted = c.proxies;
    if (wanted.empty()) wanted.emplace_back();  // one direct egress
    std::vector<EgressPtr> next;
    for (const std::string& proxy : wanted) {
        auto same = std::find_if(egresses.begin(), egresses.end(),
                                 [&proxy](const EgressPtr& e) { return e->proxy == proxy; });
        if (same != egresses.end()) {
            (*same)->bucket.configure(c.requests_per_second, c.burst);
            next.push_back(*same);
        } else {
            auto e = std::make_shared<Egress>(
                Egress{proxy, proxy.empty() ? std::string("direct") : redact_proxy_url(proxy),
                       TokenBucket(c.requests_per_second, c.burst)});
            next.push_back(std::move(e));
        }
    }
    egresses = std::move(next);  // in-flight attempts keep their egress alive

    for (auto& [key, h] : hosts) {
        h->aimd.configure(host_rate(), c.aimd_floor_rps, c.aimd_decrease_interval_s,
                          c.aimd_clean_period_s, c.aimd_increase_step);
        h->breaker.configure(c.breaker_failure_threshold, c.breaker_window_s, c.breaker_cooldown_s);
        h->bucket.configure(h->bucket.rate(), host_burst());  // rate synced at admission
    }
    apply_multi_options();
}

void HttpEngine::Impl::apply_multi_options() {
    // Our own in-flight caps are never above curl's connection caps, so curl never parks an
    // admitted handle in its internal pending queue (where the timeout would run unseen).
    // Through proxies curl counts connections per proxy, so only the global cap applies there.
    const long cap = static_cast<long>(inflight_cap());
    const long per_host =
        cfg.proxies.empty() ? std::min(cap, static_cast<long>(host_inflight_cap())) : cap;
    curl_multi_setopt(multi.get(), CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
    curl_multi_setopt(multi.get(), CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    curl_multi_setopt(multi.get(), CURLMOPT_MAXCONNECTS, std::max(cap, 16L));
}

double HttpEngine::Impl::host_rate() const {
    if (cfg.host_requests_per_second > 0) return cfg.host_requests_per_second;
    return cfg.requests_per_second * static_cast<double>(egresses.size());
}

double HttpEngine::Impl::host_burst() const {
    if (cfg.host_burst > 0) return cfg.host_burst;
    return cfg.burst * static_cast<double>(egresses.size());
}

HostState* HttpEngine::Impl::host_state(const std::string& key) {
    auto it = hosts.find(key);
    if (it == hosts.end()) {
        it = hosts.emplace(key, std::make_unique<HostState>(cfg, host_rate(), host_burst())).first;
    }
    return it->second.get();
}

void HttpEngine::Impl::sync_host_rate(HostState& h, double now) {
    const double rate = h.aimd.rate(now);
    if (rate != h.bucket.rate()) h.bucket.configure(rate, host_burst());
}

// pick_egress returns the egress that can send now with the most saved tokens, or null.
Egress* HttpEngine::Impl::pick_egress(double now) const {
    Egress* best = nullptr;
    double best_tokens = -1;
    for (const EgressPtr& e : egresses) {
        if (now < e->cooldown_until || e->bucket.next_available(now) > now) continue;
        const double tokens = e->bucket.tokens(now);
        if (best == nullptr || tokens > best_tokens ||
            (tokens == best_tokens && e->in_flight < best->in_flight)) {
            best = e.get();
            best_tokens = tokens;
        }
    }
    return best;
}

double HttpEngine::Impl::egress_ready_at(double now) const {
    double at = kInfinity;
    for (const EgressPtr& e : egresses) {
        at = std::min(at, std::max(e->cooldown_until, e->bucket.next_available(now)));
    }
    return at;
}

void HttpEngine::Impl::rest_egress(Egress& e, double now) {
    const double until = now + std::max(0.0, cfg.egress_cooldown_s);
    if (e.cooldown_until <= now) ++counters.egress_cooldowns;
    e.cooldown_until = std::max(e.cooldown_until, until);
}

int HttpEngine::Impl::on_socket(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
    auto* self = static_cast<Impl*>(userp);
    const int epfd = self->epoll_fd.get();
    if (what == CURL_POLL_REMOVE) {
        // curl forgets the socket's assignment with this call: the next use of it is an ADD again.
        ::epoll_ctl(epfd, EPOLL_CTL_DEL, s, nullptr);  // ENOENT/EBADF are harmless here
        return 0;
    }
    epoll_event ev{};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.fd = s;
    // A socket curl tells about for the first time (no assignment yet) is added, a known one is
    // modified: one epoll_ctl per change, not a failed MOD and an ADD for every reused connection.
    if (socketp == nullptr) {
        if (::epoll_ctl(epfd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST) {
            ::epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev);
        }
        curl_multi_assign(self->multi.get(), s, self);
    } else if (::epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT) {
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

// on_open_socket stands in for curl's socket() call on a direct connection: the address is known
// here and nothing has been sent to it yet. (No exception may cross into curl: on any, refuse.)
curl_socket_t HttpEngine::Impl::on_open_socket(void* userp, curlsocktype,
                                               curl_sockaddr* address) noexcept {
    auto* t = static_cast<Transfer*>(userp);
    if (t->check_address) {
        try {
            std::string text;
            const AddressClass c = sockaddr_class(&address->addr, &text);
            if (c != AddressClass::global) {
                t->refused_address = address_refusal(t->target.host, text, c);
                return CURL_SOCKET_BAD;
            }
        } catch (...) {
            return CURL_SOCKET_BAD;
        }
    }
    return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// on_prereq runs before every request, on new and reused connections alike: a connection opened
// while private addresses were allowed must not carry a request once they are not.
int HttpEngine::Impl::on_prereq(void* userp, char* primary_ip, char*, int, int) noexcept {
    auto* t = static_cast<Transfer*>(userp);
    if (!t->check_address) return CURL_PREREQFUNC_OK;
    try {
        const std::string address = primary_ip != nullptr ? primary_ip : "";
        const AddressClass c = classify_ip_literal(address).value_or(AddressClass::reserved);
        if (c == AddressClass::global) return CURL_PREREQFUNC_OK;
        t->refused_address =
            address_refusal(t->target.host, address.empty() ? "an unknown address" : address, c);
    } catch (...) {
    }
    return CURL_PREREQFUNC_ABORT;
}

std::optional<std::string> HttpEngine::Impl::refusal_reason(const std::string& url,
                                                            UrlParts* parts_out) const {
    auto parts = parse_url(url);
    if (!parts) return std::string("malformed or non-http(s) URL");
    if (!allow.allows(parts->host, parts->port)) {
        return "host not in the allow-list: " + parts->host;
    }
    if (!cfg.allow_private_addresses) {
        if (auto c = classify_ip_literal(parts->host); c && *c != AddressClass::global) {
            return address_refusal(parts->host, parts->host, *c);
        }
    }
    if (parts_out != nullptr) *parts_out = std::move(*parts);
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
    const double now = now_s();
    r.elapsed_ms = (now - t->submitted_at) * 1000.0;
    r.request_ms = t->attempts > 0 ? (now - t->admitted_at) * 1000.0 : 0.0;
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

long HttpEngine::Impl::curl_http_version(const Transfer& t) const {
    if (cfg.http_version == HttpVersion::http1_1) return CURL_HTTP_VERSION_1_1;
    if (t.target.scheme == "https") return CURL_HTTP_VERSION_2TLS;
    const std::string& proxy = t.egress->proxy;
    const bool http_proxy = iequals_prefix(proxy, "http://") || iequals_prefix(proxy, "https://");
    return http_proxy ? CURL_HTTP_VERSION_1_1 : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
}

bool HttpEngine::Impl::start_attempt(Transfer& t, std::string* why) {
    EasyPtr easy;
    if (!spare_easy.empty()) {
        easy = std::move(spare_easy.back());
        spare_easy.pop_back();
        curl_easy_reset(easy.get());  // every option back to its default; connections stay cached
    } else {
        easy.reset(curl_easy_init());
    }
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
    t.check_address = !cfg.allow_private_addresses && t.egress->proxy.empty();
    t.refused_address.clear();

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
    // Always explicit, so that http_proxy/no_proxy in the environment never change the egress.
    set(curl_easy_setopt(h, CURLOPT_PROXY, t.egress->proxy.c_str()));
    set(curl_easy_setopt(h, CURLOPT_NOPROXY, ""));
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
    set(curl_easy_setopt(h, CURLOPT_HTTP_VERSION, curl_http_version(t)));
    if (t.check_address) {
        set(curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &Impl::on_open_socket));
        set(curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &t));
        set(curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, &Impl::on_prereq));
        set(curl_easy_setopt(h, CURLOPT_PREREQDATA, &t));
    }
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
    t.header_list = std::move(list);
    t.easy = std::move(easy);
    ++t.attempts;
    return true;
}

// admit hands queued requests to curl, oldest first, while slots and tokens allow. A request whose
// host cannot go now (breaker open, host cap, host bucket) is skipped, so one slow host does not
// hold up the others; when no egress can send, nothing can go and the pass ends.
void HttpEngine::Impl::admit(double now) {
    for (auto& [key, h] : hosts) sync_host_rate(*h, now);
    std::vector<const HostState*> blocked;
    auto is_blocked = [&blocked](const HostState* h) {
        return std::find(blocked.begin(), blocked.end(), h) != blocked.end();
    };
    auto note_wait = [this](Transfer& t) {
        if (!t.waited_for_token) {
            t.waited_for_token = true;
            ++counters.rate_limit_waits;
        }
    };
    for (auto it = ready.begin(); it != ready.end() && active.size() < inflight_cap();) {
        Transfer& t = **it;
        HostState& h = *t.host;
        if (is_blocked(&h)) {
            ++it;
            continue;
        }
        if (h.in_flight >= host_inflight_cap() || h.breaker.next_allowed(now) > now) {
            blocked.push_back(&h);
            ++it;
            continue;
        }
        if (h.bucket.next_available(now) > now) {
            note_wait(t);
            blocked.push_back(&h);
            ++it;
            continue;
        }
        Egress* egress = pick_egress(now);
        if (egress == nullptr) {
            note_wait(t);
            return;
        }
        TransferPtr owned = std::move(*it);
        it = ready.erase(it);
        bool probe = false;
        h.breaker.allow(now, &probe);
        h.bucket.try_take(now);
        egress->bucket.try_take(now);
        owned->waited_for_token = false;
        owned->admitted_at = now;
        owned->probe = probe;
        for (const EgressPtr& e : egresses) {
            if (e.get() == egress) owned->egress = e;
        }
        std::string why;
        if (!start_attempt(*owned, &why)) {
            if (probe) h.breaker.on_probe_abandoned();
            owned->egress.reset();
            complete(std::move(owned), ErrorClass::connect, 0, std::move(why));
            continue;
        }
        ++h.in_flight;
        ++egress->in_flight;
        ++egress->attempts;
        CURL* easy = owned->easy.get();
        active.emplace(easy, std::move(owned));
    }
}

// next_admission_at is the earliest time admit() could start a queued request, assuming nothing
// else happens meanwhile (+inf when only a completion can unblock the queue).
double HttpEngine::Impl::next_admission_at(double now) const {
    if (ready.empty() || active.size() >= inflight_cap()) return kInfinity;
    double host_at = kInfinity;
    std::vector<const HostState*> seen;
    for (const TransferPtr& t : ready) {
        const HostState* h = t->host;
        if (std::find(seen.begin(), seen.end(), h) != seen.end()) continue;
        seen.push_back(h);
        if (h->in_flight >= host_inflight_cap()) continue;
        host_at = std::min(host_at,
                           std::max(h->breaker.next_allowed(now), h->bucket.next_available(now)));
        if (host_at <= now) break;
    }
    return std::max(host_at, egress_ready_at(now));
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

// release_attempt frees an attempt's handle and slots (connections stay cached in the multi).
void HttpEngine::Impl::release_attempt(Transfer& t) {
    // The handle is out of the multi here (every caller removes it first).
    if (t.easy && spare_easy.size() < kMaxSpareHandles) {
        spare_easy.push_back(std::move(t.easy));
    } else {
        t.easy.reset();
    }
    t.header_list.reset();
    if (t.host != nullptr && t.host->in_flight > 0) --t.host->in_flight;
    if (t.egress && t.egress->in_flight > 0) --t.egress->in_flight;
}

// record_attempt feeds one attempt's outcome to the host's breaker and AIMD and to the egress.
void HttpEngine::Impl::record_attempt(Transfer& t, ErrorClass error, double now) {
    HostState& h = *t.host;
    // An account's limit says nothing of the egress or the host: the endpoint answered.
    if (error == ErrorClass::ban && t.req.account_limited) error = ErrorClass::none;
    const std::uint64_t opens_before = h.breaker.opens();
    switch (error) {
        case ErrorClass::ban:
        case ErrorClass::http_5xx:
        case ErrorClass::timeout:
        case ErrorClass::connect:
            h.breaker.on_failure(now, t.probe);
            break;
        case ErrorClass::canceled:
            if (t.probe) h.breaker.on_probe_abandoned();
            break;
        default:
            h.breaker.on_success(now, t.probe);
            break;  // the endpoint answered
    }
    counters.breaker_opens += h.breaker.opens() - opens_before;
    if (error == ErrorClass::ban) {
        ++counters.bans;
        ++h.bans;
        h.aimd.on_ban(now);
        sync_host_rate(h, now);
    }
    if (t.egress) {
        if (error == ErrorClass::ban) {
            ++t.egress->bans;
            rest_egress(*t.egress, now);
        } else if (!t.egress->proxy.empty() &&
                   (error == ErrorClass::connect || error == ErrorClass::dns)) {
            rest_egress(*t.egress, now);  // a dead proxy rests like a banned one
        }
    }
    t.probe = false;
    t.egress.reset();
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
    if (t->egress && !t->egress->proxy.empty()) curl_detail = scrub(curl_detail, t->egress->proxy);
    release_attempt(*t);

    ErrorClass error = ErrorClass::none;
    std::string detail;
    if (code != CURLE_OK) {
        if (!t->refused_address.empty() &&
            (code == CURLE_COULDNT_CONNECT || code == CURLE_ABORTED_BY_CALLBACK)) {
            error = ErrorClass::refused_host;
            detail = std::move(t->refused_address);
        } else if (t->too_large || code == CURLE_FILESIZE_EXCEEDED) {
            error = ErrorClass::too_large;
            detail = "body larger than " + std::to_string(cfg.max_body_bytes) + " bytes";
        } else {
            error = classify_curl_code(code);
            detail = std::move(curl_detail);
        }
    } else if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
        record_attempt(*t, ErrorClass::none, now);
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
        UrlParts next;
        if (auto why = refusal_reason(redirect_url, &next)) {
            complete(std::move(t), ErrorClass::refused_host, status, "redirect refused: " + *why,
                     std::move(content_type));
            return;
        }
        switch (classify_redirect(t->target, next)) {
            case RedirectKind::downgrade:
                complete(std::move(t), ErrorClass::refused_host, status,
                         "redirect refused: from https to http", std::move(content_type));
                return;
            case RedirectKind::cross_origin:
                drop_credentials(t->req.headers, t->req.sensitive_headers);
                break;
            case RedirectKind::same_origin:
                break;
        }
        ++t->hops;
        t->url = std::move(redirect_url);
        t->target = std::move(next);
        t->host = host_state(host_key(t->target));
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
    record_attempt(*t, error, now);

    const int attempts_allowed = t->req.max_attempts > 0 ? t->req.max_attempts : cfg.max_attempts;
    if (is_retried(error) && t->retries + 1 < attempts_allowed) {
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
    delayed.emplace(now + wait, std::move(t));
}

void HttpEngine::Impl::promote_due_retries(double now) {
    while (!delayed.empty() && delayed.begin()->first <= now) {
        ready.push_back(std::move(delayed.begin()->second));
        delayed.erase(delayed.begin());
    }
}

// ---------------------------------------------------------------------------------------------
// HttpEngine

std::string redact_proxy_url(const std::string& proxy) {
    const std::size_t sep = proxy.find("://");
    const std::size_t start = sep == std::string::npos ? 0 : sep + 3;
    std::size_t end = proxy.find_first_of("/?#", start);
    if (end == std::string::npos) end = proxy.size();
    const std::size_t at = proxy.rfind('@', end == 0 ? 0 : end - 1);
    if (at == std::string::npos || at < start) return proxy;
    return proxy.substr(0, start) + proxy.substr(at + 1);
}

HttpEngine::HttpEngine(const EngineConfig& cfg) : impl_(std::make_unique<Impl>(cfg)) {}

HttpEngine::~HttpEngine() = default;

void HttpEngine::reconfigure(const EngineConfig& cfg) {
    Impl& s = *impl_;
    s.configure(cfg);
    // Queued requests to hosts that are no longer allowed end now, not at their admission.
    std::vector<TransferPtr> refused;
    for (auto it = s.ready.begin(); it != s.ready.end();) {
        if (s.refusal_reason((*it)->url, nullptr)) {
            refused.push_back(std::move(*it));
            it = s.ready.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = s.delayed.begin(); it != s.delayed.end();) {
        if (s.refusal_reason(it->second->url, nullptr)) {
            refused.push_back(std::move(it->second));
            it = s.delayed.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& t : refused) {
        auto why = s.refusal_reason(t->url, nullptr);
        s.complete(std::move(t), ErrorClass::refused_host, 0, why.value_or("refused"));
    }
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
    if (auto why = s.refusal_reason(t->url, &t->target)) {
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
    t->host = s.host_state(host_key(t->target));
    if (t->req.urgent) {
        auto at = s.ready.begin();
        while (at != s.ready.end() && (*at)->req.urgent) ++at;
        s.ready.insert(at, std::move(t));
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
    deadline = std::min(deadline, s.next_admission_at(now));
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

bool HttpEngine::cancel(std::uint64_t id, const std::string& detail) {
    Impl& s = *impl_;
    const double now = now_s();
    TransferPtr victim;
    for (auto it = s.active.begin(); it != s.active.end(); ++it) {
        if (it->second->req.id != id) continue;
        curl_multi_remove_handle(s.multi.get(), it->first);
        s.release_attempt(*it->second);
        s.record_attempt(*it->second, ErrorClass::canceled, now);
        victim = std::move(it->second);
        s.active.erase(it);
        break;
    }
    if (!victim) {
        for (auto it = s.ready.begin(); it != s.ready.end(); ++it) {
            if ((*it)->req.id != id) continue;
            victim = std::move(*it);
            s.ready.erase(it);
            break;
        }
    }
    if (!victim) {
        for (auto it = s.delayed.begin(); it != s.delayed.end(); ++it) {
            if (it->second->req.id != id) continue;
            victim = std::move(it->second);
            s.delayed.erase(it);
            break;
        }
    }
    if (!victim) return false;
    s.complete(std::move(victim), ErrorClass::canceled, 0, detail);
    return true;
}

void HttpEngine::cancel_all() {
    Impl& s = *impl_;
    const double now = now_s();
    std::vector<TransferPtr> victims;
    for (auto& [easy, t] : s.active) {
        curl_multi_remove_handle(s.multi.get(), easy);
        s.release_attempt(*t);
        s.record_attempt(*t, ErrorClass::canceled, now);
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

std::size_t HttpEngine::egress_count() const { return impl_->egresses.size(); }

EngineSnapshot HttpEngine::snapshot() const {
    const Impl& s = *impl_;
    const double now = now_s();
    EngineSnapshot snap;
    snap.counters = s.counters;
    std::map<const HostState*, std::size_t> queued;
    for (const TransferPtr& t : s.ready) ++queued[t->host];
    for (const auto& [at, t] : s.delayed) ++queued[t->host];
    for (const auto& [key, h] : s.hosts) {
        HostSnapshot hs;
        hs.host = key;
        hs.effective_rate = h->aimd.rate(now);
        hs.breaker = h->breaker.state(now);
        hs.bans = h->bans;
        hs.breaker_opens = h->breaker.opens();
        hs.in_flight = h->in_flight;
        auto q = queued.find(h.get());
        hs.queued = q == queued.end() ? 0 : q->second;
        snap.hosts.push_back(std::move(hs));
    }
    std::sort(snap.hosts.begin(), snap.hosts.end(),
              [](const HostSnapshot& a, const HostSnapshot& b) { return a.host < b.host; });
    for (const EgressPtr& e : s.egresses) {
        EgressSnapshot es;
        es.name = e->name;
        es.rate = e->bucket.rate();
        es.cooling_down = now < e->cooldown_until;
        es.cooldown_left_s = es.cooling_down ? e->cooldown_until - now : 0;
        es.attempts = e->attempts;
        es.bans = e->bans;
        es.in_flight = e->in_flight;
        snap.egresses.push_back(std::move(es));
    }
    return snap;
}

}  // namespace demper::core
