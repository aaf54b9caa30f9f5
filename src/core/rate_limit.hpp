// rate_limit: the pacing primitives of the fetch step, all driven by an injected clock.
//
// Every method that depends on time takes `now`: seconds from any monotonic origin the caller
// picks (the engine uses steady_clock; tests pass plain numbers). Nothing here reads a clock,
// sleeps, or locks: one owner (the engine, the worker's single thread) calls them.
//
// Vocabulary: a *token* is the permission to send one request; a *ban signal* is an answer the
// marketplace gives when it thinks it is being hammered (403, 429, Cloudflare 526); a *probe* is the
// single request a half-open circuit breaker lets through to see whether the endpoint recovered.
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

// parse_retry_after reads an HTTP Retry-After value: delta-seconds ("120") or an HTTP-date in any
// of the three forms (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850
// "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994"). It returns the wait in
// seconds from `now_unix` (a date in the past gives 0), or nullopt when the value is malformed.
std::optional<double> parse_retry_after(std::string_view value, double now_unix);

}  // namespace demper::core
