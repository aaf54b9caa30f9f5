// rate_limit: token bucket, backoff and Retry-After (see rate_limit.hpp).
#include "core/rate_limit.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace demper::core {
namespace {

// A token counts as present when within this of 1: waiting exactly until next_available() must
// succeed despite rounding.
constexpr double kTokenEpsilon = 1e-9;
// Retry-After delta-seconds larger than this are clipped (the caller caps far lower anyway).
constexpr double kMaxRetryAfterS = 1e9;
// Backoff exponents beyond this already exceed any sane cap; avoids overflow to inf.
constexpr int kMaxBackoffExponent = 60;

double sane_rate(double rate) { return (std::isfinite(rate) && rate > 0) ? rate : 0.0; }
double sane_burst(double burst) { return (std::isfinite(burst) && burst >= 1) ? burst : 1.0; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// TokenBucket

TokenBucket::TokenBucket(double rate_per_s, double burst)
    : rate_(sane_rate(rate_per_s)), burst_(sane_burst(burst)), tokens_(burst_) {}

void TokenBucket::configure(double rate, double burst) {
    rate_ = sane_rate(rate);
    burst_ = sane_burst(burst);
    tokens_ = started_ ? std::min(tokens_, burst_) : burst_;
}

double TokenBucket::tokens_at(double now) const {
    if (!started_ || now <= last_) return tokens_;
    return std::min(burst_, tokens_ + (now - last_) * rate_);
}

void TokenBucket::refill(double now) {
    if (!started_) {
        started_ = true;
        last_ = now;
        return;
    }
    if (now <= last_) return;  // a clock that steps back never mints tokens
    tokens_ = tokens_at(now);
    last_ = now;
}

bool TokenBucket::try_take(double now) {
    refill(now);
    if (tokens_ + kTokenEpsilon < 1.0) return false;
    tokens_ = std::max(0.0, tokens_ - 1.0);
    return true;
}

double TokenBucket::tokens(double now) const { return tokens_at(now); }

double TokenBucket::next_available(double now) const {
    const double have = tokens_at(now);
    if (have + kTokenEpsilon >= 1.0) return now;
    if (rate_ <= 0) return std::numeric_limits<double>::infinity();
    const double from = (started_ && last_ > now) ? last_ : now;
    return from + (1.0 - have) / rate_;
}

// ---------------------------------------------------------------------------------------------
// Backoff

Backoff::Backoff(double base_s, double cap_s, std::uint64_t seed) : rng_(seed) {
    configure(base_s, cap_s);
}

void Backoff::configure(double base_s, double cap_s) {
    base_ = (std::isfinite(base_s) && base_s > 0) ? base_s : 0.0;
    cap_ = (std::isfinite(cap_s) && cap_s > 0) ? cap_s : 0.0;
}

double Backoff::ceiling(int attempt) const {
    const int exponent = std::clamp(attempt, 0, kMaxBackoffExponent);
    return std::min(cap_, std::ldexp(base_, exponent));
}

double Backoff::delay(int attempt) {
    // 53 random bits -> uniform in [0, 1); written out so results do not depend on the standard
    // library's distribution implementation.
    const double unit = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    return unit * ceiling(attempt);
}

// ---------------------------------------------------------------------------------------------
// CircuitBreaker

const char* breaker_state_name(BreakerState s) {
    switch (s) {
        case BreakerState::closed:
            return "closed";
        case BreakerState::open:
            return "open";
        case BreakerState::half_open:
            return "half_open";
    }
    return "unknown";
}

CircuitBreaker::CircuitBreaker(int failure_threshold, double window_s, double cooldown_s) {
    configure(failure_threshold, window_s, cooldown_s);
}

void CircuitBreaker::configure(int failure_threshold, double window_s, double cooldown_s) {
    threshold_ = std::max(1, failure_threshold);
    window_s_ = (std::isfinite(window_s) && window_s > 0) ? window_s : 0.0;
    cooldown_s_ = (std::isfinite(cooldown_s) && cooldown_s > 0) ? cooldown_s : 0.0;
}

BreakerState CircuitBreaker::state(double now) const {
    if (state_ == BreakerState::open && now >= opened_at_ + cooldown_s_) {
        return BreakerState::half_open;
    }
    return state_;
}

void CircuitBreaker::open(double now) {
    state_ = BreakerState::open;
    opened_at_ = now;
    probe_out_ = false;
    failures_ = 0;
    ++opens_;
}

bool CircuitBreaker::allow(double now, bool* is_probe) {
    if (is_probe != nullptr) *is_probe = false;
    switch (state(now)) {
        case BreakerState::closed:
            return true;
        case BreakerState::open:
            return false;
        case BreakerState::half_open:
            state_ = BreakerState::half_open;
            if (probe_out_) return false;
            probe_out_ = true;
            if (is_probe != nullptr) *is_probe = true;
            return true;
    }
    return false;
}

double CircuitBreaker::next_allowed(double now) const {
    switch (state(now)) {
        case BreakerState::closed:
            return now;
        case BreakerState::open:
            return opened_at_ + cooldown_s_;
        case BreakerState::half_open:
            return probe_out_ ? std::numeric_limits<double>::infinity() : now;
    }
    return now;
}

void CircuitBreaker::on_success(double now, bool probe) {
    const BreakerState s = state(now);
    if (s == BreakerState::closed) {
        failures_ = 0;
    } else if (s == BreakerState::half_open && probe) {
        state_ = BreakerState::closed;
        failures_ = 0;
        probe_out_ = false;
    }
}

void CircuitBreaker::on_failure(double now, bool probe) {
    const BreakerState s = state(now);
    if (s == BreakerState::closed) {
        if (failures_ == 0 || now - first_failure_at_ > window_s_) {
            failures_ = 0;
            first_failure_at_ = now;
        }
        if (++failures_ >= threshold_) open(now);
    } else if (s == BreakerState::half_open && probe) {
        open(now);
    }
}

void CircuitBreaker::on_probe_abandoned() { probe_out_ = false; }

// ---------------------------------------------------------------------------------------------
// AdaptiveRate

AdaptiveRate::AdaptiveRate(double configured_rate, double floor, double decrease_interval_s,
                           double clean_period_s, double increase_step) {
    configure(configured_rate, floor, decrease_interval_s, clean_period_s, increase_step);
    base_ = configured_;
}

void AdaptiveRate::configure(double configured_rate, double floor, double decrease_interval_s,
                             double clean_period_s, double increase_step) {
    auto non_negative = [](double v) { return (std::isfinite(v) && v > 0) ? v : 0.0; };
    configured_ = non_negative(configured_rate);
    floor_ = non_negative(floor);
    decrease_interval_s_ = non_negative(decrease_interval_s);
    clean_period_s_ = non_negative(clean_period_s);
    step_ = non_negative(increase_step);
    base_ = std::min(base_, configured_);
}

double AdaptiveRate::effective_floor() const { return std::min(floor_, configured_); }

double AdaptiveRate::rate(double now) const {
    if (!banned_) return configured_;
    double r = base_;
    if (clean_period_s_ > 0 && now > anchor_) {
        r += std::floor((now - anchor_) / clean_period_s_) * step_;
    } else if (clean_period_s_ <= 0) {
        r = configured_;  // no clean period configured: recover at once
    }
    double ceiling = configured_;
    if (now < ceiling_until_) ceiling = std::min(ceiling, std::max(ban_ceiling_, effective_floor()));
    return std::clamp(r, effective_floor(), ceiling);
}

bool AdaptiveRate::on_ban(double now) {
    const double current = rate(now);
    bool lowered = false;
    if (!decreased_ || now - last_decrease_ >= decrease_interval_s_) {
        // Remember the rate that was banned (a share of it) as the recovery ceiling.
        const double remembered = current * kBanMemoryShare;
        ban_ceiling_ = now < ceiling_until_ ? std::min(ban_ceiling_, remembered) : remembered;
        base_ = std::max(effective_floor(), current * 0.5);
        lowered = base_ < current;
        decreased_ = true;
        last_decrease_ = now;
        if (lowered) ++decreases_;
    } else {
        base_ = current;
    }
    ceiling_until_ = now + kBanMemorySeconds;
    banned_ = true;
    anchor_ = now;  // the clean period starts again
    return lowered;
}

// ---------------------------------------------------------------------------------------------
// Retry-After

namespace {

std::string_view trim_blanks(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

std::vector<std::string_view> split_blanks(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') ++i;
        std::size_t j = i;
        while (j < s.size() && s[j] != ' ') ++j;
        if (j > i) out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

std::optional<int> parse_int(std::string_view s, std::size_t min_digits, std::size_t max_digits) {
    if (s.size() < min_digits || s.size() > max_digits) return std::nullopt;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

std::optional<int> parse_month(std::string_view s) {
    static constexpr std::array<std::string_view, 12> kMonths = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (std::size_t i = 0; i < kMonths.size(); ++i) {
        if (s == kMonths[i]) return static_cast<int>(i) + 1;
    }
    return std::nullopt;
}

// days_from_civil counts days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<long long>(doe) - 719468;
}

// parse_clock reads "HH:MM:SS" into seconds of the day.
std::optional<int> parse_clock(std::string_view s) {
    if (s.size() != 8 || s[2] != ':' || s[5] != ':') return std::nullopt;
    auto h = parse_int(s.substr(0, 2), 2, 2);
    auto m = parse_int(s.substr(3, 2), 2, 2);
    auto sec = parse_int(s.substr(6, 2), 2, 2);
    if (!h || !m || !sec || *h > 23 || *m > 59 || *sec > 60) return std::nullopt;
    return *h * 3600 + *m * 60 + *sec;
}

std::optional<double> to_unix(int year, int month, int day, int seconds_of_day) {
    static constexpr std::array<int, 12> kDays = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (day < 1 || day > kDays[static_cast<std::size_t>(month - 1)]) return std::nullopt;
    const long long days =
        days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    return static_cast<double>(days) * 86400.0 + seconds_of_day;
}

std::optional<double> parse_http_date(std::string_view s) {
    const std::vector<std::string_view> f = split_blanks(s);
    const std::size_t comma = s.find(',');
    if (comma != std::string_view::npos) {
        // IMF-fixdate: "Sun," "06" "Nov" "1994" "08:49:37" "GMT"
        if (f.size() == 6 && f[5] == "GMT") {
            auto day = parse_int(f[1], 2, 2);
            auto month = parse_month(f[2]);
            auto year = parse_int(f[3], 4, 4);
            auto clock = parse_clock(f[4]);
            if (!day || !month || !year || !clock) return std::nullopt;
            return to_unix(*year, *month, *day, *clock);
        }
        // RFC 850: "Sunday," "06-Nov-94" "08:49:37" "GMT"
        if (f.size() == 4 && f[3] == "GMT" && f[1].size() == 9 && f[1][2] == '-' &&
            f[1][6] == '-') {
            auto day = parse_int(f[1].substr(0, 2), 2, 2);
            auto month = parse_month(f[1].substr(3, 3));
            auto yy = parse_int(f[1].substr(7, 2), 2, 2);
            auto clock = parse_clock(f[2]);
            if (!day || !month || !yy || !clock) return std::nullopt;
            const int year =
                *yy < 70 ? 2000 + *yy : 1900 + *yy;  // RFC 7231 sliding window, simplified
            return to_unix(year, *month, *day, *clock);
        }
        return std::nullopt;
    }
    // asctime: "Sun" "Nov" "6" "08:49:37" "1994"
    if (f.size() == 5) {
        auto month = parse_month(f[1]);
        auto day = parse_int(f[2], 1, 2);
        auto clock = parse_clock(f[3]);
        auto year = parse_int(f[4], 4, 4);
        if (!day || !month || !year || !clock) return std::nullopt;
        return to_unix(*year, *month, *day, *clock);
    }
    return std::nullopt;
}

}  // namespace

std::optional<double> parse_retry_after(std::string_view value, double now_unix) {
    value = trim_blanks(value);
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        double seconds = 0;
        for (char c : value) {
            seconds = seconds * 10 + (c - '0');
            if (seconds > kMaxRetryAfterS) return kMaxRetryAfterS;
        }
        return seconds;
    }
    auto when = parse_http_date(value);
    if (!when) return std::nullopt;
    return std::max(0.0, *when - now_unix);
}

}  // namespace demper::core
