// Unit tests for core/rate_limit with an injected clock.
#include "core/rate_limit.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace demper::core {
namespace {

TEST(RateLimitBucket, StartsFullAndSpendsTheBurst) {
    TokenBucket b(2.0, 3.0);
    EXPECT_TRUE(b.try_take(100.0));
    EXPECT_TRUE(b.try_take(100.0));
    EXPECT_TRUE(b.try_take(100.0));
    EXPECT_FALSE(b.try_take(100.0));
    EXPECT_DOUBLE_EQ(b.next_available(100.0), 100.5);
}

TEST(RateLimitBucket, RefillsAtRateAndNeverAboveBurst) {
    TokenBucket b(10.0, 2.0);
    EXPECT_TRUE(b.try_take(0.0));
    EXPECT_TRUE(b.try_take(0.0));
    EXPECT_FALSE(b.try_take(0.05));
    EXPECT_TRUE(b.try_take(0.1));
    EXPECT_FALSE(b.try_take(0.1));
    // a long idle period saves at most `burst` tokens
    int taken = 0;
    while (b.try_take(1000.0)) ++taken;
    EXPECT_EQ(taken, 2);
}

TEST(RateLimitBucket, WaitingUntilNextAvailableAlwaysSucceeds) {
    TokenBucket b(3.0, 1.0);  // 1/3 s is not exact in binary
    double now = 5.0;
    for (int i = 0; i < 1000; ++i) {
        const double t = b.next_available(now);
        ASSERT_GE(t, now);
        ASSERT_TRUE(b.try_take(t)) << i;
        now = t;
    }
    EXPECT_NEAR(now, 5.0 + 999.0 / 3.0, 1e-6);
}

TEST(RateLimitBucket, FractionalRate) {
    TokenBucket b(0.5, 1.0);  // one request every 2 s
    EXPECT_TRUE(b.try_take(0.0));
    EXPECT_FALSE(b.try_take(1.0));
    EXPECT_DOUBLE_EQ(b.next_available(1.0), 2.0);
    EXPECT_FALSE(b.try_take(1.99));
    EXPECT_TRUE(b.try_take(2.0));
}

TEST(RateLimitBucket, LongRunAverageMatchesRate) {
    TokenBucket b(50.0, 5.0);
    int taken = 0;
    for (int ms = 0; ms <= 10000; ++ms) {
        while (b.try_take(ms / 1000.0)) ++taken;
    }
    EXPECT_EQ(taken, 5 + 500);  // the burst plus 10 s at 50/s
}

TEST(RateLimitBucket, BurstBelowOneIsOneAndZeroRateNeverRefills) {
    TokenBucket b(0.0, 0.2);
    EXPECT_DOUBLE_EQ(b.burst(), 1.0);
    EXPECT_TRUE(b.try_take(0.0));
    EXPECT_FALSE(b.try_take(1e6));
    EXPECT_TRUE(std::isinf(b.next_available(1.0)));
}

TEST(RateLimitBucket, ClockSteppingBackDoesNotMintTokens) {
    TokenBucket b(1.0, 1.0);
    EXPECT_TRUE(b.try_take(10.0));
    EXPECT_FALSE(b.try_take(5.0));
    EXPECT_FALSE(b.try_take(10.5));
    EXPECT_TRUE(b.try_take(11.0));
}

TEST(RateLimitBucket, ReconfigureKeepsSavedTokensClippedToNewBurst) {
    TokenBucket b(1.0, 10.0);
    EXPECT_TRUE(b.try_take(0.0));  // 9 left
    b.configure(100.0, 2.0);
    EXPECT_DOUBLE_EQ(b.rate(), 100.0);
    EXPECT_TRUE(b.try_take(0.0));
    EXPECT_TRUE(b.try_take(0.0));
    EXPECT_FALSE(b.try_take(0.0));
    EXPECT_TRUE(b.try_take(0.01));  // refills at the new rate
    b.configure(0.1, 1.0);
    EXPECT_FALSE(b.try_take(0.02));
    EXPECT_NEAR(b.next_available(0.02), 0.02 + 9.9, 0.2);
}

TEST(RateLimitBackoff, DelaysStayWithinExponentialCeilingAndCap) {
    Backoff b(0.5, 30.0, 42);
    for (int attempt = 0; attempt < 20; ++attempt) {
        const double ceiling = std::min(30.0, 0.5 * std::pow(2.0, attempt));
        EXPECT_DOUBLE_EQ(b.ceiling(attempt), ceiling);
        for (int i = 0; i < 200; ++i) {
            const double d = b.delay(attempt);
            ASSERT_GE(d, 0.0);
            ASSERT_LT(d, ceiling);
        }
    }
    EXPECT_DOUBLE_EQ(b.ceiling(10000), 30.0);
    EXPECT_DOUBLE_EQ(b.ceiling(-3), 0.5);
}

TEST(RateLimitBackoff, FullJitterIsRoughlyUniform) {
    Backoff b(1.0, 100.0, 7);
    constexpr int kSamples = 40000;
    const double ceiling = b.ceiling(3);  // 8 s
    std::vector<int> bins(8, 0);
    double sum = 0;
    for (int i = 0; i < kSamples; ++i) {
        const double d = b.delay(3);
        sum += d;
        ++bins[static_cast<std::size_t>(d / ceiling * 8)];
    }
    EXPECT_NEAR(sum / kSamples, ceiling / 2, 0.1);
    for (int n : bins) EXPECT_NEAR(n, kSamples / 8, kSamples / 8 / 10);  // within 10 %
}

TEST(RateLimitBackoff, SameSeedSameSequence) {
    Backoff a(0.5, 30.0, 123), b(0.5, 30.0, 123), c(0.5, 30.0, 124);
    bool differs = false;
    for (int i = 0; i < 50; ++i) {
        const double x = a.delay(i % 6);
        EXPECT_EQ(x, b.delay(i % 6));
        differs = differs || x != c.delay(i % 6);
    }
    EXPECT_TRUE(differs);
}

TEST(RateLimitRetryAfter, DeltaSeconds) {
    EXPECT_EQ(parse_retry_after("120", 0), 120.0);
    EXPECT_EQ(parse_retry_after(" 0 ", 0), 0.0);
    EXPECT_EQ(parse_retry_after("99999999999999999999", 0), 1e9);
    EXPECT_FALSE(parse_retry_after("", 0));
    EXPECT_FALSE(parse_retry_after("-5", 0));
    EXPECT_FALSE(parse_retry_after("1.5", 0));
    EXPECT_FALSE(parse_retry_after("soon", 0));
}

TEST(RateLimitRetryAfter, HttpDates) {
    const double t = 784111777.0;  // Sun, 06 Nov 1994 08:49:37 GMT
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t - 30), 30.0);
    EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t - 30), 30.0);
    EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", t - 30), 30.0);
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t + 100), 0.0);  // past
    EXPECT_EQ(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", 0), 0.0);
    EXPECT_EQ(parse_retry_after("Sat, 29 Feb 2020 12:00:00 GMT", 1582977600.0 - 5), 5.0);
    EXPECT_EQ(parse_retry_after("Wed, 22 Nov 2034 10:00:05 GMT", 2047802400.0), 5.0);
}

TEST(RateLimitRetryAfter, MalformedDates) {
    EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 08:49:37 UTC", 0));
    EXPECT_FALSE(parse_retry_after("Sun, 6 Nov 1994 08:49:37 GMT", 0));
    EXPECT_FALSE(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", 0));
    EXPECT_FALSE(parse_retry_after("Sun, 31 Apr 1994 08:49:37 GMT", 0));
    EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 24:49:37 GMT", 0));
    EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 08:49 GMT", 0));
    EXPECT_FALSE(parse_retry_after("Sun Nov 6 08:49:37", 0));
}

TEST(RateLimitBreaker, OpensAfterConsecutiveFailuresWithinWindow) {
    CircuitBreaker b(3, 10.0, 5.0);
    EXPECT_EQ(b.state(0), BreakerState::closed);
    b.on_failure(0.0, false);
    b.on_failure(1.0, false);
    EXPECT_TRUE(b.allow(1.5));
    b.on_failure(2.0, false);
    EXPECT_EQ(b.state(2.0), BreakerState::open);
    EXPECT_EQ(b.opens(), 1u);
    EXPECT_FALSE(b.allow(2.1));
    EXPECT_DOUBLE_EQ(b.next_allowed(2.1), 7.0);
    EXPECT_STREQ(breaker_state_name(b.state(2.1)), "open");
}

TEST(RateLimitBreaker, SuccessOrSlowFailuresDoNotOpen) {
    CircuitBreaker b(3, 10.0, 5.0);
    b.on_failure(0.0, false);
    b.on_failure(1.0, false);
    b.on_success(1.5, false);  // breaks the streak
    b.on_failure(2.0, false);
    b.on_failure(3.0, false);
    EXPECT_EQ(b.state(3.0), BreakerState::closed);
    // failures spread wider than the window restart the count
    CircuitBreaker w(3, 10.0, 5.0);
    w.on_failure(0.0, false);
    w.on_failure(6.0, false);
    w.on_failure(12.0, false);  // 12 s after the first: a new streak of 1
    EXPECT_EQ(w.state(12.0), BreakerState::closed);
    w.on_failure(13.0, false);
    w.on_failure(14.0, false);
    EXPECT_EQ(w.state(14.0), BreakerState::open);
}

TEST(RateLimitBreaker, HalfOpenAdmitsExactlyOneProbe) {
    CircuitBreaker b(1, 10.0, 5.0);
    b.on_failure(0.0, false);
    EXPECT_FALSE(b.allow(4.9));
    EXPECT_EQ(b.state(5.0), BreakerState::half_open);
    bool probe = false;
    EXPECT_TRUE(b.allow(5.0, &probe));
    EXPECT_TRUE(probe);
    EXPECT_FALSE(b.allow(5.1, &probe));
    EXPECT_FALSE(probe);
    EXPECT_TRUE(std::isinf(b.next_allowed(5.1)));
    // a stale result (admitted before the breaker opened) does not decide anything
    b.on_success(5.2, false);
    EXPECT_EQ(b.state(5.2), BreakerState::half_open);
    b.on_success(5.3, true);
    EXPECT_EQ(b.state(5.3), BreakerState::closed);
    EXPECT_TRUE(b.allow(5.3));
    EXPECT_TRUE(b.allow(5.3));
}

TEST(RateLimitBreaker, FailedProbeReopens) {
    CircuitBreaker b(2, 10.0, 5.0);
    b.on_failure(0.0, false);
    b.on_failure(0.1, false);
    bool probe = false;
    ASSERT_TRUE(b.allow(5.1, &probe));
    b.on_failure(5.5, true);
    EXPECT_EQ(b.state(5.5), BreakerState::open);
    EXPECT_EQ(b.opens(), 2u);
    EXPECT_FALSE(b.allow(10.4));
    EXPECT_TRUE(b.allow(10.5, &probe));
    EXPECT_TRUE(probe);
}

TEST(RateLimitBreaker, AbandonedProbeAllowsAnother) {
    CircuitBreaker b(1, 10.0, 1.0);
    b.on_failure(0.0, false);
    bool probe = false;
    ASSERT_TRUE(b.allow(1.0, &probe));
    EXPECT_FALSE(b.allow(1.0));
    b.on_probe_abandoned();
    EXPECT_TRUE(b.allow(1.0, &probe));
    EXPECT_TRUE(probe);
}

TEST(RateLimitAimd, HalvesOnBanAtMostOncePerInterval) {
    AdaptiveRate a(10.0, 0.5, 5.0, 30.0, 1.0);
    EXPECT_DOUBLE_EQ(a.rate(0), 10.0);
    EXPECT_TRUE(a.on_ban(100.0));
    EXPECT_DOUBLE_EQ(a.rate(100.0), 5.0);
    EXPECT_FALSE(a.on_ban(101.0));  // same burst of bans
    EXPECT_FALSE(a.on_ban(104.9));
    EXPECT_DOUBLE_EQ(a.rate(104.9), 5.0);
    EXPECT_TRUE(a.on_ban(105.0));
    EXPECT_DOUBLE_EQ(a.rate(105.0), 2.5);
    EXPECT_EQ(a.decreases(), 2u);
}

TEST(RateLimitAimd, NeverBelowFloor) {
    AdaptiveRate a(8.0, 0.5, 1.0, 30.0, 1.0);
    for (int i = 0; i < 20; ++i) a.on_ban(i * 2.0);
    EXPECT_DOUBLE_EQ(a.rate(40.0), 0.5);
    AdaptiveRate low(0.2, 0.5, 1.0, 30.0, 1.0);  // configured below the floor: the floor yields
    low.on_ban(0);
    EXPECT_DOUBLE_EQ(low.rate(0), 0.2);
}

TEST(RateLimitAimd, AdditiveIncreaseAfterCleanPeriodsUpToConfigured) {
    AdaptiveRate a(10.0, 0.5, 5.0, 30.0, 1.0);
    a.on_ban(0.0);  // 5
    EXPECT_DOUBLE_EQ(a.rate(29.9), 5.0);
    EXPECT_DOUBLE_EQ(a.rate(30.0), 6.0);
    EXPECT_DOUBLE_EQ(a.rate(95.0), 8.0);
    EXPECT_DOUBLE_EQ(a.rate(1000.0), 10.0);
    // a ban signal restarts the clean period, even one that does not lower the rate
    a.on_ban(61.0);  // from 7 to 3.5
    EXPECT_DOUBLE_EQ(a.rate(61.0), 3.5);
    a.on_ban(62.0);  // within decrease interval: no decrease, clock restarts
    EXPECT_DOUBLE_EQ(a.rate(91.5), 3.5);
    EXPECT_DOUBLE_EQ(a.rate(92.0), 4.5);
}

TEST(RateLimitAimd, RecoveryStopsBelowTheRateThatWasBanned) {
    // Configured 30 against a marketplace that bans above 15: the first ban halves to 15 and
    // remembers 0.8 x 30 = 24; a second ban at 16 halves to 8 and remembers 12.8. Recovery then
    // stops at 12.8 (below the ban threshold) for kBanMemorySeconds, instead of climbing back.
    AdaptiveRate a(30.0, 0.5, 5.0, 10.0, 1.0);
    a.on_ban(0.0);
    EXPECT_DOUBLE_EQ(a.rate(0.0), 15.0);
    EXPECT_DOUBLE_EQ(a.rate(10.0), 16.0);
    a.on_ban(10.0);
    EXPECT_DOUBLE_EQ(a.rate(10.0), 8.0);
    EXPECT_DOUBLE_EQ(a.rate(60.0), 12.8);
    EXPECT_DOUBLE_EQ(a.rate(10.0 + kBanMemorySeconds - 1), 12.8);
    // Once the memory lapses without a ban, recovery resumes toward the configured rate.
    EXPECT_DOUBLE_EQ(a.rate(10.0 + kBanMemorySeconds + 1), 30.0);
}

TEST(RateLimitAimd, ReconfigureClipsToNewRate) {
    AdaptiveRate a(10.0, 0.5, 5.0, 30.0, 1.0);
    a.configure(4.0, 0.5, 5.0, 30.0, 1.0);
    EXPECT_DOUBLE_EQ(a.rate(0), 4.0);
    a.on_ban(0);
    EXPECT_DOUBLE_EQ(a.rate(0), 2.0);
    a.configure(20.0, 0.5, 5.0, 30.0, 1.0);
    EXPECT_DOUBLE_EQ(a.rate(30.0), 3.0);  // climbs back, not jumps
}

}  // namespace
}  // namespace demper::core
