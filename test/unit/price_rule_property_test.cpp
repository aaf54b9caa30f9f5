// Property tests of decide_price: a million random offer books and rules (fixed seed, printed on
// failure; override with the environment variable DEMPER_PROPERTY_SEED, and the iteration count
// with DEMPER_PROPERTY_ITERATIONS).
//
// The properties are checked by check_decision(), which recomputes the floor, the ceiling and the
// change cap independently of the implementation. PriceRuleProperty.CheckerCatchesBrokenDecisions
// shows that every property it checks can fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/offers.hpp"
#include "core/price_rule.hpp"

namespace {

using namespace demper::core;
using i128 = __int128;

constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();
constexpr std::uint64_t kDefaultSeed = 0x6465'6d70'6572'0001ULL;  // "demper" 1

std::int64_t sat(i128 v) {
    if (v > kI64Max) return kI64Max;
    if (v < kI64Min) return kI64Min;
    return static_cast<std::int64_t>(v);
}

i128 ceil_div_pos(i128 a, i128 b) {  // b > 0
    i128 q = a / b;
    if (a % b != 0 && a > 0) ++q;
    return q;
}

// The generator draws percentages as multiples of 0.5 (or special values), so that the expected
// floor and cap can be computed exactly with "half-percent" integers: pct = h / 2.
std::optional<i128> half_percent(double pct) {
    if (std::isnan(pct)) return std::nullopt;
    return static_cast<i128>(std::llround(pct * 2));
}

std::int64_t expected_floor(const PricingRule& rule) {
    i128 floor = rule.min_price;
    if (rule.cost_price) {
        i128 h = 0;
        if (rule.min_margin_percent) {
            if (std::isinf(*rule.min_margin_percent)) {
                h = *rule.min_margin_percent > 0 ? i128(2'000'000'000) : i128(-2'000'000'000);
            } else {
                h = half_percent(*rule.min_margin_percent).value_or(0);
            }
        }
        floor = std::max(
            floor, static_cast<i128>(sat(ceil_div_pos(i128(*rule.cost_price) * (200 + h), 200))));
    }
    return std::max<std::int64_t>(sat(floor), kMarketplaceMinPrice);
}

// expected_cap: nullopt = no cap.
std::optional<i128> expected_cap(const PricingRule& rule, std::int64_t current) {
    if (!rule.max_change_percent) return std::nullopt;
    const double pct = *rule.max_change_percent;
    if (std::isinf(pct) && pct > 0) return std::nullopt;
    if (std::isnan(pct) || pct <= 0) return i128(0);
    const i128 base = current < 0 ? -i128(current) : i128(current);
    const i128 cap = base * *half_percent(pct) / 200;
    return cap < 1 ? i128(1) : cap;
}

bool is_excluded(const PricingRule& rule, const std::string& id) {
    return std::find(rule.excluded_merchants.begin(), rule.excluded_merchants.end(), id) !=
           rule.excluded_merchants.end();
}

// model_target: an independent model of the strategy target for rules without outlier filtering
// and without step_percent. nullopt when there is no competitor.
std::optional<i128> model_target(const PricingRule& rule, const OfferBook& book) {
    std::vector<std::int64_t> prices;
    for (const Offer& o : book.offers) {
        if (is_excluded(rule, o.merchant_id)) continue;
        if (rule.max_delivery_rank && delivery_rank(o.delivery_duration) > *rule.max_delivery_rank)
            continue;
        prices.push_back(o.price);
    }
    if (prices.empty()) return std::nullopt;
    std::sort(prices.begin(), prices.end());
    const i128 step = std::max<std::int64_t>(1, rule.step);
    switch (rule.strategy) {
        case Strategy::undercut:
            return i128(prices.front()) - step;
        case Strategy::match:
            return i128(prices.front());
        case Strategy::follow_second:
            return i128(prices.front()) + step;
        case Strategy::position: {
            const std::size_t n = static_cast<std::size_t>(std::max(1, rule.position));
            if (n <= prices.size()) return i128(prices[n - 1]) - step;
            if (rule.max_price) return i128(*rule.max_price);
            return i128(prices.back()) - step;
        }
    }
    return std::nullopt;
}

// check_decision returns the first violated property, or "" when the decision is fine.
// `again` and `shuffled` are the decisions for the same input, recomputed and with the offers
// in another order.
std::string check_decision(std::int64_t current, const PricingRule& rule, const OfferBook& book,
                           const PriceDecision& d, const PriceDecision& again,
                           const PriceDecision& shuffled) {
    const std::int64_t floor = expected_floor(rule);
    if (d.floor != floor)
        return "effective floor is " + std::to_string(d.floor) + ", expected " +
               std::to_string(floor);
    if (d.new_price < floor) return "new price below the floor";
    if (d.new_price < kMarketplaceMinPrice) return "new price below the marketplace minimum";
    const bool has_ceiling = rule.max_price.has_value();
    const bool inverted = has_ceiling && *rule.max_price < floor;
    if (has_ceiling && !inverted && d.new_price > *rule.max_price)
        return "new price above the ceiling";
    if (inverted && d.new_price != floor)
        return "floor above ceiling, but new price is not the floor";
    if (d.floor_above_ceiling != inverted) return "floor_above_ceiling flag is wrong";
    if (d.changed != (d.new_price != current)) return "changed != (new_price != current_price)";
    if (d.current_price != current) return "current_price not echoed";

    if (const std::optional<i128> cap = expected_cap(rule, current)) {
        const i128 move = i128(d.new_price) - i128(current);
        const i128 dist = move < 0 ? -move : move;
        if (dist > *cap) {
            const bool floor_forced = d.new_price == floor && i128(current) + *cap < floor;
            // The effective ceiling is the floor when the floor is above max_price.
            const std::int64_t eff_ceiling = has_ceiling ? (inverted ? floor : *rule.max_price) : 0;
            const bool ceiling_forced =
                has_ceiling && d.new_price == eff_ceiling && i128(current) - *cap > eff_ceiling;
            if (!floor_forced && !ceiling_forced)
                return "moved more than the max_change cap without being forced";
        }
        if (d.reason == Reason::max_change_capped && dist != *cap) {
            return "reason max_change_capped, but the price is not at the edge of the cap";
        }
    } else if (d.reason == Reason::max_change_capped) {
        return "reason max_change_capped without a cap";
    }

    if (d != again) return "not deterministic: a second call gave another decision";
    if (d != shuffled) return "depends on the order of the offers";

    if (static_cast<std::size_t>(d.competitors) + d.excluded.size() != book.offers.size()) {
        return "competitors + excluded != number of offers";
    }
    if (d.competitor_merchant && is_excluded(rule, *d.competitor_merchant))
        return "reacted to an excluded merchant";
    if ((d.competitors == 0) != !d.competitor_price.has_value())
        return "reference offer present iff competitors";

    switch (d.reason) {
        case Reason::at_floor:
            if (d.new_price != floor) return "reason at_floor, but the price is not the floor";
            break;
        case Reason::ceiling:
            if (!has_ceiling || d.new_price != *rule.max_price)
                return "reason ceiling, but not at max_price";
            break;
        case Reason::floor_hold:
            if (d.new_price != current) return "reason floor_hold, but the price moved";
            if (!d.floor_hit) return "floor_hold without floor_hit";
            break;
        case Reason::unchanged:
            if (d.changed) return "reason unchanged, but the price changed";
            break;
        case Reason::raised_to_competitor:
            if (d.new_price <= current)
                return "reason raised_to_competitor, but the price did not go up";
            break;
        case Reason::no_competitors_to_max:
        case Reason::no_competitors_hold:
            if (d.competitors != 0) return "reason no_competitors_*, but there are competitors";
            break;
        default:
            break;
    }
    if (d.competitors == 0 && d.clamps.empty() && d.reason != Reason::no_competitors_to_max &&
        d.reason != Reason::no_competitors_hold) {
        return "no competitors and no clamp, but the reason is not no_competitors_*";
    }

    // Independent model of the whole decision for the simple rules.
    if (!rule.outlier_share && !(rule.step_percent > 0) && !rule.max_change_percent &&
        rule.floor_action == FloorAction::go_to_floor) {
        const std::optional<i128> target = model_target(rule, book);
        i128 want = current;
        if (target) {
            want = *target;
        } else if (rule.no_competitor_action == NoCompetitorAction::to_max && rule.max_price) {
            want = *rule.max_price;
        }
        want = std::max<i128>(sat(want), floor);
        if (has_ceiling) want = std::min<i128>(want, inverted ? floor : *rule.max_price);
        if (i128(d.new_price) != want)
            return "differs from the model: expected " + std::to_string(sat(want));
    }
    return "";
}

// ─── the generator ────────────────────────────────────────────────────────────────────────────

class Gen {
  public:
    explicit Gen(std::uint64_t seed) : rng_(seed) {}

    std::int64_t uniform(std::int64_t lo, std::int64_t hi) {
        return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_);
    }
    bool chance(int percent) { return uniform(0, 99) < percent; }
    template <typename T>
    const T& pick(const std::vector<T>& v) {
        return v[static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(v.size()) - 1))];
    }

    std::int64_t price(std::int64_t scale) {
        if (chance(2))
            return pick(
                std::vector<std::int64_t>{1, 9, 10, 11, kMaxOfferPrice, kI64Max, 0, -5, kI64Min});
        return uniform(1, scale);
    }

    void make(std::int64_t* current, PricingRule* rule, OfferBook* book) {
        const std::int64_t scale =
            pick(std::vector<std::int64_t>{20, 1000, 200000, kMaxOfferPrice});
        static const std::vector<std::string> kDelivery = {
            "EXPRESS",     "TODAY",       "TOMORROW", "TILL_2_DAYS", "TILL_3_DAYS",
            "TILL_5_DAYS", "TILL_7_DAYS", "",         "SOON"};
        book->offers.clear();
        const int n = static_cast<int>(uniform(0, 8));
        for (int i = 0; i < n; ++i) {
            Offer o;
            o.merchant_id = "m" + std::to_string(uniform(0, 9));
            if (chance(30) && !book->offers.empty()) {
                o.price = book->offers.back().price;  // ties
            } else {
                o.price = price(scale);
            }
            o.delivery_duration = pick(kDelivery);
            book->offers.push_back(std::move(o));
        }
        book->total = n;

        *current = chance(5) ? pick(std::vector<std::int64_t>{0, -1, kI64Min, kI64Max, 10})
                             : uniform(1, scale);

        PricingRule r;
        r.strategy = pick(std::vector<Strategy>{Strategy::undercut, Strategy::match,
                                                Strategy::position, Strategy::follow_second});
        r.step =
            chance(5) ? pick(std::vector<std::int64_t>{0, -3, kI64Max, kI64Min}) : uniform(1, 50);
        if (chance(20))
            r.step_percent = pick(std::vector<double>{0.5, 1, 2.5, 10, 1e300, NAN, -1, INFINITY});
        r.position = static_cast<int>(uniform(-1, 6));
        r.min_price = chance(5) ? pick(std::vector<std::int64_t>{kI64Min, -10, 0, kI64Max})
                                : uniform(0, scale);
        if (chance(50))
            r.max_price = chance(5) ? pick(std::vector<std::int64_t>{kI64Min, 0, 5, kI64Max})
                                    : uniform(1, 2 * scale);
        if (chance(30)) {
            r.cost_price = chance(5) ? pick(std::vector<std::int64_t>{kI64Min, -100, 0, kI64Max})
                                     : uniform(1, scale);
        }
        if (chance(30))
            r.min_margin_percent =
                pick(std::vector<double>{0, 5, 10, 12.5, 33.5, -20, -150, NAN, INFINITY});
        r.floor_action = chance(50) ? FloorAction::go_to_floor : FloorAction::hold;
        r.no_competitor_action = chance(50) ? NoCompetitorAction::to_max : NoCompetitorAction::hold;
        if (chance(40)) {
            r.max_change_percent = pick(std::vector<double>{0.5, 1, 5, 10, 25, 50, 100, 250, 0, -5,
                                                            NAN, INFINITY, -INFINITY});
        }
        if (chance(25))
            r.outlier_share = pick(std::vector<double>{0.1, 0.3, 0.5, 0.9, 1.0, 2.0, 0, NAN});
        if (chance(25)) r.max_delivery_rank = static_cast<int>(uniform(-1, 8));
        const int excluded = static_cast<int>(uniform(0, 3));
        for (int i = 0; i < excluded; ++i)
            r.excluded_merchants.push_back("m" + std::to_string(uniform(0, 9)));
        *rule = std::move(r);
    }

    std::mt19937_64& rng() { return rng_; }

  private:
    std::mt19937_64 rng_;
};

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    return std::strtoull(v, nullptr, 0);
}

std::string describe_input(std::int64_t current, const PricingRule& rule, const OfferBook& book,
                           const PriceDecision& d) {
    std::ostringstream out;
    out << "current=" << current << " offers=[";
    for (const Offer& o : book.offers)
        out << o.merchant_id << ":" << o.price << ":" << o.delivery_duration << " ";
    out << "]\ndecision=" << decision_to_json(d, rule, book);
    return out.str();
}

TEST(PriceRuleProperty, RandomBooksAndRules) {
    const std::uint64_t seed = env_u64("DEMPER_PROPERTY_SEED", kDefaultSeed);
    const std::uint64_t iterations = env_u64("DEMPER_PROPERTY_ITERATIONS", 1'000'000);
    Gen gen(seed);
    std::int64_t current = 0;
    PricingRule rule;
    OfferBook book;
    OfferBook shuffled;
    std::uint64_t changed = 0, at_floor = 0, with_competitors = 0;
    for (std::uint64_t i = 0; i < iterations; ++i) {
        gen.make(&current, &rule, &book);
        const PriceDecision d = decide_price(current, rule, book);
        const PriceDecision again = decide_price(current, rule, book);
        shuffled = book;
        std::shuffle(shuffled.offers.begin(), shuffled.offers.end(), gen.rng());
        const PriceDecision other_order = decide_price(current, rule, shuffled);
        const std::string problem = check_decision(current, rule, book, d, again, other_order);
        if (!problem.empty()) {
            ADD_FAILURE() << problem << "\nseed=" << seed
                          << " (DEMPER_PROPERTY_SEED) iteration=" << i << "\n"
                          << describe_input(current, rule, book, d);
            return;
        }
        changed += d.changed;
        at_floor += d.reason == Reason::at_floor;
        with_competitors += d.competitors > 0;
    }
    // The generator must reach the interesting cases, or the properties prove little.
    if (iterations >= 100'000) {
        EXPECT_GT(changed, iterations / 10) << "seed=" << seed;
        EXPECT_GT(at_floor, iterations / 100) << "seed=" << seed;
        EXPECT_GT(with_competitors, iterations / 2) << "seed=" << seed;
    }
}

// Every property in check_decision can fail: break a real decision in each way and expect a
// complaint.
TEST(PriceRuleProperty, CheckerCatchesBrokenDecisions) {
    PricingRule rule;
    rule.min_price = 100;
    rule.max_price = 1000;
    rule.max_change_percent = 10;
    rule.excluded_merchants = {"ME"};
    OfferBook book;
    book.offers = {{"ME", "me", 150, "TODAY"}, {"A", "a", 500, "TODAY"}, {"B", "b", 600, "TODAY"}};
    const std::int64_t current = 520;
    // decide_clean decides for (r, b) and requires the checker to accept the real decision.
    auto decide_clean = [current](const PricingRule& r, const OfferBook& b,
                                  PriceDecision* out) -> ::testing::AssertionResult {
        *out = decide_price(current, r, b);
        const std::string problem = check_decision(current, r, b, *out, *out, *out);
        if (problem.empty()) return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << "the real decision fails the checker: " << problem;
    };
    auto expect_caught = [current](const char* what, const PricingRule& r, const OfferBook& b,
                                   const PriceDecision& bad) {
        EXPECT_NE(check_decision(current, r, b, bad, bad, bad), "") << what;
    };
    PriceDecision good;
    ASSERT_TRUE(decide_clean(rule, book, &good));
    ASSERT_EQ(good.new_price, 499);

    // Each way of breaking the good decision, one property each.
    const std::vector<std::pair<const char*, std::function<void(PriceDecision&)>>> breakages = {
        {"below the floor",
         [](PriceDecision& b) {
             b.new_price = 99;
             b.changed = true;
         }},
        {"wrong floor", [](PriceDecision& b) { b.floor = 10; }},
        {"above the ceiling", [](PriceDecision& b) { b.new_price = 1001; }},
        {"beyond the cap", [](PriceDecision& b) { b.new_price = 400; }},  // > 10 % (52) from 520
        {"changed flag", [](PriceDecision& b) { b.changed = false; }},
        {"inverted flag", [](PriceDecision& b) { b.floor_above_ceiling = true; }},
        {"at_floor not at floor", [](PriceDecision& b) { b.reason = Reason::at_floor; }},
        {"ceiling not at ceiling", [](PriceDecision& b) { b.reason = Reason::ceiling; }},
        {"floor_hold but moved", [](PriceDecision& b) { b.reason = Reason::floor_hold; }},
        {"unchanged but moved", [](PriceDecision& b) { b.reason = Reason::unchanged; }},
        {"raised but went down", [](PriceDecision& b) { b.reason = Reason::raised_to_competitor; }},
        {"no competitors but there are",
         [](PriceDecision& b) { b.reason = Reason::no_competitors_hold; }},
        {"capped but not at the cap edge",
         [](PriceDecision& b) { b.reason = Reason::max_change_capped; }},
        {"reacted to own store", [](PriceDecision& b) { b.competitor_merchant = "ME"; }},
        {"count", [](PriceDecision& b) { b.competitors = 3; }},
        {"reference missing", [](PriceDecision& b) { b.competitor_price.reset(); }},
        {"current not echoed", [](PriceDecision& b) { b.current_price = 1; }},
    };
    for (const auto& [what, breaking] : breakages) {
        PriceDecision b = good;
        breaking(b);
        expect_caught(what, rule, book, b);
    }
    {
        PriceDecision other = good;
        other.step = 99;
        EXPECT_NE(check_decision(current, rule, book, good, other, good), "") << "non-determinism";
        EXPECT_NE(check_decision(current, rule, book, good, good, other), "") << "order dependence";
    }
    {
        // Model check: a rule without a cap, where the decision is off by one.
        PricingRule simple = rule;
        simple.max_change_percent.reset();
        PriceDecision off;
        ASSERT_TRUE(decide_clean(simple, book, &off));
        off.new_price -= 1;
        off.changed = off.new_price != current;
        expect_caught("model", simple, book, off);
    }
    {
        // Floor above ceiling: the price must be the floor.
        PricingRule inv = rule;
        inv.min_price = 2000;
        PriceDecision d;
        ASSERT_TRUE(decide_clean(inv, book, &d));
        d.new_price = 2001;
        expect_caught("inverted but not at floor", inv, book, d);
    }
    {
        // No competitors and no clamp: the reason must say so.
        OfferBook empty;
        PricingRule hold = rule;
        hold.no_competitor_action = NoCompetitorAction::hold;
        PriceDecision d;
        ASSERT_TRUE(decide_clean(hold, empty, &d));
        d.reason = Reason::undercut;
        expect_caught("no competitors, reason undercut", hold, empty, d);
        d.reason = Reason::no_competitors_hold;
        d.clamps.clear();
        d.floor_hit = false;
        d.reason = Reason::floor_hold;
        expect_caught("floor_hold without floor_hit", hold, empty, d);
    }
}

}  // namespace
