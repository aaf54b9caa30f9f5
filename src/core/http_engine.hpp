// http_engine: the fetch step's HTTP client, libcurl multi driven by the worker's event loop.
//
// Vocabulary: a *request* is what the worker submits (one check or one push); an *attempt* is one
// time it is sent (retries and redirect hops are further attempts); *admission* is the moment a
// queued attempt is handed to curl, which happens only when the rate limiter has a token and an
// in-flight slot is free, so that curl's timeout measures the request itself and never time spent
// waiting in our queue.
//
// Redirects: the engine follows them itself (curl's FOLLOWLOCATION is off), at most kMaxRedirects
// hops, each checked like a new request (allow-list, address class, admission). A hop that leaves
// the origin (scheme, host or port changes) drops the Cookie and Authorization headers and the
// request's sensitive_headers for the rest of the request, even if a later hop comes back. A hop
// from https to http is refused (refused_host): nothing is sent over plain http.
//
// Addresses: unless EngineConfig::allow_private_addresses, a target whose address is not global
// (AddressClass in url.hpp: loopback, link-local, private, ...) is refused with refused_host, the
// detail naming the address and its class:
//   - an IP literal in the URL (any form the resolver accepts), at submit or at the redirect,
//     before the request is admitted;
//   - a host name once curl has resolved it, before the socket is opened
//     (CURLOPT_OPENSOCKETFUNCTION): not one packet reaches the address;
//   - every request on a reused connection (CURLOPT_PREREQFUNCTION), so a connection opened while
//     private addresses were allowed serves nothing after they no longer are.
// Through a proxy the proxy resolves the target's name and opens the connection: the proxy's own
// address is the operator's explicit choice and is not checked; the target's IP literal is
// checked as above; the address a target name resolves to cannot be seen here, so a proxy that
// can reach private networks must refuse them itself.
//
// Threading: an HttpEngine belongs to one thread (the worker's main loop). It never blocks and
// never sleeps: the owner waits on wait_fd() (readable when a curl socket is ready) with the
// timeout next_timeout_ms(), then calls perform() and take_completed().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/rate_limit.hpp"

namespace demper::core {

// ErrorClass is how a request ended. Retried classes: timeout, connect, dns, ban, http_5xx.
//   timeout       curl's whole-request timeout (from admission) or connect timeout expired
//   connect       could not connect, or the connection broke mid-answer (reset, empty reply)
//   dns           the host (or proxy) name did not resolve
//   tls           TLS handshake or certificate verification failed (never retried)
//   http_4xx      a 4xx other than the ban signals (400, 404, ...: final, never retried)
//   http_5xx      a 5xx other than 526
//   ban           403, 429 or Cloudflare 526: the marketplace's "slow down" answers
//   too_large     the body exceeded max_body_bytes; the transfer was aborted
//   bad_body      2xx with an HTML body (anti-bot page), or a 1xx/3xx that cannot be used
//                 (redirect without Location, more than kMaxRedirects hops)
//   refused_host  refused before anything was sent: host not in the allow-list (also for a
//                 redirect target), a target address that is not global, a redirect from https
//                 to http, a malformed URL, or a malformed request (method, header line)
//   canceled      cancel_all() or the engine's destruction
enum class ErrorClass {
    none,
    timeout,
    connect,
    dns,
    tls,
    http_4xx,
    http_5xx,
    ban,
    too_large,
    bad_body,
    refused_host,
    canceled
};

// error_class_name gives the stable lower-case name used in stats and SQL ("http_5xx", ...).
const char* error_class_name(ErrorClass);

// kMaxRedirects is how many redirect hops one request may follow (each hop is re-checked
// against the allow-list and goes through admission again).
constexpr int kMaxRedirects = 3;

struct HttpRequest {
    std::uint64_t id = 0;  // the caller's correlation id, echoed in HttpResponse
    std::string url;
    std::string method = "POST";       // "POST", "GET", "PUT", ... (upper-case letters only)
    std::string body;                  // sent for every method but GET/HEAD
    std::vector<std::string> headers;  // "Name: value"; never copied into logs or errors
    int max_attempts = 0;              // 0 = EngineConfig::max_attempts; 1 = never retried here
                                       // (price pushes: the caller owns their retry policy)
    // Names (case-insensitive) of further headers that are credentials, such as a push's
    // "x-auth-version": like Cookie and Authorization, dropped when a redirect leaves the origin.
    std::vector<std::string> sensitive_headers;
    // A 403, 429 or 526 answer to this request limits an account (a merchant's price pushes), not
    // the egress or the host: it rests no egress, opens no breaker and slows no host, so a pushing
    // merchant's limit never stops the checks. The answer still comes back as a ban; the caller
    // holds that account back.
    bool account_limited = false;
    // Admitted before every queued request that is not urgent (after the urgent ones queued
    // earlier). A price push: the seller's new price should not wait behind the seconds of offers
    // requests the checks keep queued when the budget is spent in full. It still takes its tokens
    // (egress and host), so the egress never sends more than its rate.
    bool urgent = false;
};

struct HttpResponse {
    std::uint64_t id = 0;
    ErrorClass error = ErrorClass::none;
    long status = 0;           // last HTTP status seen (0 when none arrived)
    std::string body;          // the final attempt's body (kept for errors too, for diagnostics)
    std::string error_detail;  // short reason; never holds request headers or proxy credentials
    double elapsed_ms = 0;     // from submit() to completion, queueing and retries included
    double request_ms = 0;     // the final attempt alone, from its admission (0 if never sent)
    int attempts = 0;          // attempts handed to curl (retries and redirect hops included;
                               // one stopped by the resolved-address check counts, unsent)
    std::string content_type;
};

// HttpVersion is the HTTP version of every request. HTTP/1.1 is what a browser's request to the
// marketplace looks like to its WAF; http2 negotiates h2 by ALPN over https (HTTP/1.1 when the
// server does not offer it) and speaks h2 with prior knowledge over plain http (a test mock), or
// HTTP/1.1 through an http(s) proxy, which forwards plain-http requests in HTTP/1.1.
enum class HttpVersion { http1_1, http2 };

// parse_http_version reads a setting's spelling: "1.1" or "2"; nullopt for anything else.
std::optional<HttpVersion> parse_http_version(std::string_view text);

struct EngineConfig {
    double requests_per_second = 8;  // per egress (token bucket for admissions)
    double burst = 4;
    int max_inflight = 64;  // requests inside curl at once
    long timeout_ms = 10000;
    long connect_timeout_ms = 5000;
    std::size_t max_body_bytes = 4 << 20;  // larger body -> too_large, transfer aborted
    std::string allowed_hosts;  // comma separated, see HostAllowList; others -> refused_host
    bool verify_tls = true;
    std::string ca_file;  // CURLOPT_CAINFO when non-empty
    std::string user_agent = "demper/0.1";
    int max_attempts = 3;  // attempts in total for retried classes (redirect hops not counted)
    double backoff_base_s = 0.5;
    double backoff_cap_s = 30;       // also caps a Retry-After
    std::uint64_t backoff_seed = 0;  // 0 = seed from std::random_device
    long dns_cache_timeout_s = 60;
    // true lets targets resolve to loopback, link-local, private and other non-global addresses
    // (tests and demos run the mock marketplace on 127.0.0.1); see "Addresses" above.
    bool allow_private_addresses = false;
    // After a change to http1_1 no request goes over an open h2 connection; after a change to
    // http2, open HTTP/1.1 connections may carry requests until they close.
    HttpVersion http_version = HttpVersion::http1_1;

    // --- per target host ("host:port"): bucket, in-flight cap, AIMD, circuit breaker ---
    // The host bucket's rate is the AdaptiveRate's current rate, which starts at (and never
    // exceeds) host_requests_per_second; 0 = requests_per_second x number of egresses, since the
    // marketplace's limits are per client IP.
    double host_requests_per_second = 0;
    double host_burst = 0;  // 0 = burst x number of egresses
    int max_inflight_per_host = 32;
    double aimd_floor_rps = 0.5;
    double aimd_decrease_interval_s = 5;  // one halving per burst of ban signals
    double aimd_clean_period_s = 10;      // ban-free period that earns one increase_step
    double aimd_increase_step = 1;
    // Breaker failures: ban signals, 5xx, timeouts, connect errors. While open, the host's
    // requests wait in the queue; they are not failed.
    int breaker_failure_threshold = 5;
    double breaker_window_s = 10;
    double breaker_cooldown_s = 10;

    // --- egress pool ---
    // Proxy URLs ("http://host:port", "http://user:password@host:port", "socks5h://..."); empty
    // = one direct egress. Each egress has its own bucket (requests_per_second, burst) and rests
    // egress_cooldown_s after a ban signal (a proxy also after a connect error) while the others
    // carry on. A request goes to the egress that can send it soonest.
    std::vector<std::string> proxies;
    double egress_cooldown_s = 10;
};

struct EngineCounters {
    std::uint64_t requests = 0;          // submitted
    std::uint64_t retries = 0;           // retry attempts scheduled
    std::uint64_t rate_limit_waits = 0;  // attempts that had to wait for a token
    std::uint64_t refused = 0;           // completed with refused_host
    std::uint64_t completed_ok = 0;
    std::uint64_t completed_failed = 0;  // any other ErrorClass, canceled included
    std::uint64_t bans = 0;              // ban signals seen (per attempt)
    std::uint64_t breaker_opens = 0;     // all hosts together
    std::uint64_t egress_cooldowns = 0;  // times an egress was rested
};

// HostSnapshot describes one target host ("host:port") the engine has talked to.
struct HostSnapshot {
    std::string host;
    double effective_rate = 0;  // AIMD's current rate, requests per second
    BreakerState breaker = BreakerState::closed;
    std::uint64_t bans = 0;
    std::uint64_t breaker_opens = 0;
    std::size_t in_flight = 0;
    std::size_t queued = 0;
};

// EgressSnapshot describes one egress: "direct" or a proxy URL with its credentials removed.
struct EgressSnapshot {
    std::string name;
    double rate = 0;
    bool cooling_down = false;
    double cooldown_left_s = 0;
    std::uint64_t attempts = 0;
    std::uint64_t bans = 0;
    std::size_t in_flight = 0;
};

struct EngineSnapshot {
    EngineCounters counters;
    std::vector<HostSnapshot> hosts;       // sorted by name
    std::vector<EgressSnapshot> egresses;  // in configuration order
};

// redact_proxy_url removes "user:password@" from a proxy URL (for logs, stats and errors).
std::string redact_proxy_url(const std::string& proxy);

class HttpEngine {
  public:
    // HttpEngine initialises libcurl once per process (thread-safely) and creates its multi
    // handle and epoll set; throws std::runtime_error when any of that fails.
    explicit HttpEngine(const EngineConfig&);
    // ~HttpEngine aborts everything without completing it and frees every handle and fd.
    ~HttpEngine();
    HttpEngine(const HttpEngine&) = delete;
    HttpEngine& operator=(const HttpEngine&) = delete;

    // reconfigure applies to admissions from now on (rates, limits, allow-list, address check,
    // timeouts); in-flight requests keep the options they were sent with. Queued requests that the
    // new allow-list or address check refuses complete at once with refused_host.
    void reconfigure(const EngineConfig&);
    // submit queues a request (FIFO). It never blocks and performs no I/O; a request whose URL is
    // malformed or whose host is not allowed completes at once with refused_host.
    void submit(HttpRequest req);
    // wait_fd is an epoll fd owned by the engine, readable when any curl socket is ready.
    int wait_fd() const;
    // next_timeout_ms is how long the owner may sleep at most: the earliest of curl's timer, the
    // next admission when requests are queued, the next retry; 0 when responses are waiting to
    // be taken; -1 when nothing is pending at all.
    long next_timeout_ms() const;
    // perform does all due work without blocking: socket events, curl's timer, admissions,
    // finished transfers (retry, redirect or complete).
    void perform();
    // take_completed moves out the finished responses.
    std::vector<HttpResponse> take_completed();
    std::size_t in_flight() const;
    std::size_t queued() const;  // waiting for admission, retries waiting for their time included
    // cancel completes one request (queued, waiting for a retry, or in flight) with
    // ErrorClass::canceled and `detail`; false when no such request is pending. O(pending).
    bool cancel(std::uint64_t id, const std::string& detail);
    // cancel_all completes every queued and in-flight request with ErrorClass::canceled.
    void cancel_all();
    const EngineCounters& counters() const;
    // snapshot gives counters plus per-host and per-egress state, for stats and tests.
    EngineSnapshot snapshot() const;
    // egress_count is how many egresses requests go out through (1 without proxies).
    std::size_t egress_count() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace demper::core
