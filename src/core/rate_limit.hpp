// rate_limit: the pacing primitives of the fetch step, all driven by an injected clock.
//
// Every method that depends on time takes `now`: seconds from any monotonic origin the caller
// picks (the engine uses steady_clock; tests pass plain numbers). Nothing here reads a clock,
// sleeps, or locks: one owner (the engine, the worker's single thread) calls them.
//
// Vocabulary: a *token* is the permission to send one request; a *ban signal* is an answer the
// marketplace gives when it thinks it is being hammered (403, 429, Cloudflare 526); a *probe* is
// the single request a half-open circuit breaker lets through to see whether the endpoint
// recovered.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string_view>

namespace demper::core {

// TokenBucket admits on average `rate` requests per second with bursts of up to `burst`.
// It starts full. A rate <= 0 never refills (only the initial burst can be spent); a burst below 1
// is treated as 1, so the bucket can always eventually admit.
class TokenBucket {
  public:
    TokenBucket(double rate_per_s, double burst);
    // configure changes rate and burst and keeps the tokens already saved (clipped to the new
    // burst). Time since the last call is credited at the new rate on the next call.
    void configure(double rate, double burst);
    // try_take spends one token if one exists at `now`.
    bool try_take(double now);
    // next_available is the earliest time >= now at which a token will exist (+inf if never).
    double next_available(double now) const;
    double tokens(double now) const;
    double rate() const { return rate_; }
    double burst() const { return burst_; }

  private:
    double tokens_at(double now) const;
    void refill(double now);
    double rate_;
    double burst_;
    double tokens_;
    double last_ = 0;
    bool started_ = false;
};

// Backoff computes retry delays: exponential growth with "full jitter", i.e.
// delay(attempt) = uniform(0, min(cap, base * 2^attempt)), attempt counted from 0 for the first
// retry. The generator is seeded so tests (and incident replays) are reproducible.
class Backoff {
  public:
    Backoff(double base_s, double cap_s, std::uint64_t seed);
    void configure(double base_s, double cap_s);
    double delay(int attempt);
    // ceiling is the upper bound of delay(attempt).
    double ceiling(int attempt) const;

  private:
    double base_;
    double cap_;
    std::mt19937_64 rng_;
};

// BreakerState: closed (requests flow), open (nothing goes until the cool-down ends), half_open
// (exactly one probe may go; its result closes or reopens the breaker).
enum class BreakerState { closed, open, half_open };
const char* breaker_state_name(BreakerState);  // "closed", "open", "half_open"

// CircuitBreaker pauses an endpoint after a burst of failures. The caller decides what a failure is
// (the engine counts ban signals, 5xx, timeouts and connect errors) and reports every result.
// Closed: `failure_threshold` consecutive failures, the first and last at most `window_s` apart,
// open it. Open: allow() is false for `cooldown_s`, then the breaker is half-open. Half-open: the
// first allow() is the probe (reported via *is_probe); until the probe's result arrives nothing
// else is allowed. A probe success closes, a probe failure reopens for another cool-down. Results
// of requests that were admitted before the breaker opened (probe == false) are ignored while it is
// open or half-open: they say nothing about the endpoint after the pause.
class CircuitBreaker {
  public:
    CircuitBreaker(int failure_threshold, double window_s, double cooldown_s);
    void configure(int failure_threshold, double window_s, double cooldown_s);
    // allow reports whether a request may go now; in half-open it hands out the single probe.
    bool allow(double now, bool* is_probe = nullptr);
    // next_allowed is the earliest time allow() can be true (+inf while a probe is out).
    double next_allowed(double now) const;
    void on_success(double now, bool probe);
    void on_failure(double now, bool probe);
    // on_probe_abandoned: the probe ended without a verdict (canceled): allow another one.
    void on_probe_abandoned();
    BreakerState state(double now) const;
    std::uint64_t opens() const { return opens_; }
    int consecutive_failures() const { return failures_; }

  private:
    void open(double now);
    int threshold_;
    double window_s_;
    double cooldown_s_;
    BreakerState state_ = BreakerState::closed;  // open turns half-open lazily, by time
    int failures_ = 0;
    double first_failure_at_ = 0;
    double opened_at_ = 0;
    bool probe_out_ = false;
    std::uint64_t opens_ = 0;
};

// AdaptiveRate is AIMD over a configured request rate. A ban signal halves the current rate (not
// below `floor`, and at most once per `decrease_interval_s`: one burst of 403s is one signal);
// every `clean_period_s` without a ban signal adds `increase_step`, never above the configured
// rate. The rate is computed from the last ban, so reading it never changes it.
constexpr double kBanMemoryShare = 0.8;
constexpr double kBanMemorySeconds = 600;

class AdaptiveRate {
  public:
    AdaptiveRate(double configured_rate, double floor, double decrease_interval_s,
                 double clean_period_s, double increase_step);
    void configure(double configured_rate, double floor, double decrease_interval_s,
                   double clean_period_s, double increase_step);
    // on_ban records a ban signal; true when it lowered the rate.
    bool on_ban(double now);
    double rate(double now) const;
    double configured() const { return configured_; }
    std::uint64_t decreases() const { return decreases_; }

  private:
    double effective_floor() const;
    double configured_;
    double floor_;
    double decrease_interval_s_;
    double clean_period_s_;
    double step_;
    double base_;          // rate right after the last ban signal
    // Ban memory: after a ban, recovery stops below the rate that was banned
    // (kBanMemoryShare of it) until kBanMemorySeconds pass without a ban, so AIMD does not climb
    // straight back into the next ban.
    double ban_ceiling_ = 0;
    double ceiling_until_ = 0;
    double anchor_ = 0;    // time of the last ban signal
    bool banned_ = false;  // any ban signal yet
    double last_decrease_ = 0;
    bool decreased_ = false;  // any decrease yet
    std::uint64_t decreases_ = 0;
};

// parse_retry_after reads an HTTP Retry-After value: delta-seconds ("120") or an HTTP-date in any
// of the three forms (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850
// "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994"). It returns the wait in
// seconds from `now_unix` (a date in the past gives 0), or nullopt when the value is malformed.
std::optional<double> parse_retry_after(std::string_view value, double now_unix);

}  // namespace demper::core
