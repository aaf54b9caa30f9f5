// Unit tests of the pricing decision (src/core/price_rule.hpp).
#include "core/price_rule.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "core/offers.hpp"

namespace {

using namespace demper::core;

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

Offer offer(std::string id, std::int64_t price, std::string delivery = "") {
    Offer o;
    o.merchant_id = std::move(id);
    o.merchant_name = "name-" + o.merchant_id;
    o.price = price;
    o.delivery_duration = std::move(delivery);
    return o;
}

OfferBook book(std::vector<Offer> offers) {
    OfferBook b;
    b.total = static_cast<std::int64_t>(offers.size());
    b.offers = std::move(offers);
    return b;
}

// RuleBuilder keeps the table below readable without C++20 designated initializers.
struct R {
    PricingRule r;
    R& strategy(Strategy s) {
        r.strategy = s;
        return *this;
    }
    R& step(std::int64_t v) {
        r.step = v;
        return *this;
    }
    R& step_percent(double v) {
        r.step_percent = v;
        return *this;
    }
    R& position(int v) {
        r.strategy = Strategy::position;
        r.position = v;
        return *this;
    }
    R& min(std::int64_t v) {
        r.min_price = v;
        return *this;
    }
    R& max(std::int64_t v) {
        r.max_price = v;
        return *this;
    }
    R& cost(std::int64_t v) {
        r.cost_price = v;
        return *this;
    }
    R& margin(double v) {
        r.min_margin_percent = v;
        return *this;
    }
    R& hold_at_floor() {
        r.floor_action = FloorAction::hold;
        return *this;
    }
    R& hold_without_competitors() {
        r.no_competitor_action = NoCompetitorAction::hold;
        return *this;
    }
    R& max_change(double v) {
        r.max_change_percent = v;
        return *this;
    }
    R& outliers(double v) {
        r.outlier_share = v;
        return *this;
    }
    R& max_delivery(int v) {
        r.max_delivery_rank = v;
        return *this;
    }
    R& exclude(std::string id) {
        r.excluded_merchants.push_back(std::move(id));
        return *this;
    }
    operator PricingRule() const { return r; }  // NOLINT: implicit on purpose
};

struct Case {
    const char* name;
    std::int64_t current;
    PricingRule rule;
    std::vector<Offer> offers;
    std::int64_t want_price;
    Reason want_reason;
    bool want_floor_hit;
};

std::string describe(const PriceDecision& d, const PricingRule& rule, const OfferBook& b) {
    return decision_to_json(d, rule, b);
}

void run(const Case& c) {
    const OfferBook b = book(c.offers);
    const PriceDecision d = decide_price(c.current, c.rule, b);
    SCOPED_TRACE(std::string(c.name) + ": " + describe(d, c.rule, b));
    EXPECT_EQ(d.new_price, c.want_price);
    EXPECT_STREQ(reason_name(d.reason), reason_name(c.want_reason));
    EXPECT_EQ(d.floor_hit, c.want_floor_hit);
    EXPECT_EQ(d.changed, d.new_price != c.current);
    EXPECT_EQ(d.current_price, c.current);
    EXPECT_GE(d.new_price, d.floor);
    // Order of the offers must not matter.
    std::vector<Offer> reversed(c.offers.rbegin(), c.offers.rend());
    EXPECT_EQ(decide_price(c.current, c.rule, book(reversed)), d);
}

// ─── strategies ───────────────────────────────────────────────────────────────────────────────

TEST(PriceRuleStrategy, Table) {
    const std::vector<Case> cases = {
        {"undercut by 1",
         200,
         R(),
         {offer("A", 150), offer("B", 180)},
         149,
         Reason::undercut,
         false},
        {"undercut by 5",
         200,
         R().step(5),
         {offer("A", 150), offer("B", 180)},
         145,
         Reason::undercut,
         false},
        {"match",
         200,
         R().strategy(Strategy::match),
         {offer("A", 150), offer("B", 180)},
         150,
         Reason::match,
         false},
        {"follow_second",
         200,
         R().strategy(Strategy::follow_second),
         {offer("A", 150), offer("B", 180)},
         151,
         Reason::follow_second,
         false},
        {"follow_second step 10",
         200,
         R().strategy(Strategy::follow_second).step(10),
         {offer("A", 150), offer("B", 180)},
         160,
         Reason::follow_second,
         false},
        {"position 2",
         200,
         R().position(2),
         {offer("A", 100), offer("B", 150), offer("C", 180)},
         149,
         Reason::position,
         false},
        {"position 3",
         200,
         R().position(3),
         {offer("A", 100), offer("B", 150), offer("C", 180)},
         179,
         Reason::position,
         false},
        {"position 1 is undercut",
         200,
         R().position(1),
         {offer("A", 100), offer("B", 150)},
         99,
         Reason::position,
         false},
        {"position 0 counts as 1",
         200,
         R().position(0),
         {offer("A", 100), offer("B", 150)},
         99,
         Reason::position,
         false},
        {"position beyond the list: just below the last",
         200,
         R().position(5),
         {offer("A", 100), offer("B", 150)},
         149,
         Reason::position,
         false},
        {"position beyond the list with max_price: take the max",
         140,
         R().position(5).max(400),
         {offer("A", 100), offer("B", 150)},
         400,
         Reason::raised_to_competitor,
         false},
        {"one competitor", 500, R(), {offer("A", 300)}, 299, Reason::undercut, false},
        {"already just below: unchanged",
         149,
         R(),
         {offer("A", 150), offer("B", 180)},
         149,
         Reason::unchanged,
         false},
        {"matching already: unchanged",
         150,
         R().strategy(Strategy::match),
         {offer("A", 150)},
         150,
         Reason::unchanged,
         false},
        {"raise back when competitors went up",
         100,
         R(),
         {offer("A", 150), offer("B", 180)},
         149,
         Reason::raised_to_competitor,
         false},
        {"raise back by match",
         100,
         R().strategy(Strategy::match),
         {offer("A", 150)},
         150,
         Reason::raised_to_competitor,
         false},
    };
    for (const Case& c : cases) run(c);
}

TEST(PriceRuleStrategy, TiesAreBrokenByMerchantId) {
    const PricingRule rule = R().position(2);
    const OfferBook b = book({offer("Z", 150), offer("B", 150), offer("M", 150)});
    const PriceDecision d = decide_price(200, rule, b);
    EXPECT_EQ(d.new_price, 149);
    ASSERT_TRUE(d.competitor_merchant);
    EXPECT_EQ(*d.competitor_merchant, "M") << "sorted B, M, Z: the 2nd is M";
    const PriceDecision u = decide_price(200, R(), b);
    ASSERT_TRUE(u.competitor_merchant);
    EXPECT_EQ(*u.competitor_merchant, "B");
    EXPECT_EQ(u.competitors, 3);
}

TEST(PriceRuleStrategy, EqualPricesEverywhere) {
    const OfferBook b = book({offer("A", 150), offer("B", 150)});
    EXPECT_EQ(decide_price(150, R(), b).new_price, 149);
    EXPECT_EQ(decide_price(150, R().position(2), b).new_price, 149);
    EXPECT_EQ(decide_price(150, R().strategy(Strategy::match), b).reason, Reason::unchanged);
    const PriceDecision f = decide_price(150, R().strategy(Strategy::follow_second), b);
    EXPECT_EQ(f.new_price, 151);
    EXPECT_EQ(f.reason, Reason::raised_to_competitor);
}

TEST(PriceRuleStrategy, ReportsTheReferenceOffer) {
    const PriceDecision d =
        decide_price(200, R().position(2), book({offer("A", 100), offer("B", 150)}));
    ASSERT_TRUE(d.target && d.competitor_price && d.competitor_merchant);
    EXPECT_EQ(*d.target, 149);
    EXPECT_EQ(*d.competitor_price, 150);
    EXPECT_EQ(*d.competitor_merchant, "B");
    EXPECT_EQ(d.step, 1);
    EXPECT_EQ(d.competitors, 2);
    EXPECT_TRUE(d.clamps.empty());
    EXPECT_TRUE(d.excluded.empty());
}

// ─── exclusions ───────────────────────────────────────────────────────────────────────────────

TEST(PriceRuleExclusion, Table) {
    const std::vector<Case> cases = {
        {"own store cheapest is ignored",
         200,
         R().exclude("ME"),
         {offer("ME", 100), offer("A", 150)},
         149,
         Reason::undercut,
         false},
        {"all own stores ignored",
         200,
         R().exclude("ME1").exclude("ME2"),
         {offer("ME1", 100), offer("ME2", 120), offer("A", 150)},
         149,
         Reason::undercut,
         false},
        {"ignore list",
         200,
         R().exclude("DUMPER"),
         {offer("DUMPER", 50), offer("A", 150)},
         149,
         Reason::undercut,
         false},
        {"all excluded, to_max",
         200,
         R().exclude("ME").max(300),
         {offer("ME", 200)},
         300,
         Reason::no_competitors_to_max,
         false},
        {"all excluded, to_max without max_price",
         200,
         R().exclude("ME"),
         {offer("ME", 200)},
         200,
         Reason::no_competitors_to_max,
         false},
        {"all excluded, hold",
         200,
         R().exclude("ME").max(300).hold_without_competitors(),
         {offer("ME", 200)},
         200,
         Reason::no_competitors_hold,
         false},
        {"empty book, to_max", 200, R().max(250), {}, 250, Reason::no_competitors_to_max, false},
        {"empty book, hold",
         200,
         R().hold_without_competitors(),
         {},
         200,
         Reason::no_competitors_hold,
         false},
        {"slow delivery ignored",
         200,
         R().max_delivery(2),
         {offer("SLOW", 100, "TILL_5_DAYS"), offer("A", 150, "TODAY"), offer("B", 160, "TOMORROW")},
         149,
         Reason::undercut,
         false},
        {"unknown delivery counts as slowest",
         200,
         R().max_delivery(6),
         {offer("X", 100, ""), offer("Y", 110, "SOMEDAY"), offer("A", 150, "TILL_7_DAYS")},
         149,
         Reason::undercut,
         false},
        {"rank 7 keeps unknown",
         200,
         R().max_delivery(7),
         {offer("X", 100, ""), offer("A", 150, "TODAY")},
         99,
         Reason::undercut,
         false},
        {"outlier bait ignored",
         2000,
         R().outliers(0.5),
         {offer("BAIT", 10), offer("A", 1000), offer("B", 1010), offer("C", 1020),
          offer("D", 1030)},
         999,
         Reason::outlier_ignored,
         false},
        {"no outlier when prices are close",
         2000,
         R().outliers(0.5),
         {offer("A", 600), offer("B", 1000), offer("C", 1010)},
         599,
         Reason::undercut,
         false},
        {"outlier dropped but reference unchanged",
         2000,
         R().position(5).outliers(0.5),
         {offer("BAIT", 10), offer("A", 1000), offer("B", 1010)},
         1009,
         Reason::position,
         false},
    };
    for (const Case& c : cases) run(c);
}

TEST(PriceRuleExclusion, ExcludedListSaysWhy) {
    const PricingRule rule = R().exclude("ME").max_delivery(2).outliers(0.5);
    const OfferBook b = book({offer("A", 1000, "TODAY"), offer("ME", 900, "TODAY"),
                              offer("SLOW", 950, "TILL_3_DAYS"), offer("BAIT", 10, "EXPRESS"),
                              offer("B", 1010, "TODAY"), offer("C", 1020, "TODAY")});
    const PriceDecision d = decide_price(1500, rule, b);
    ASSERT_EQ(d.excluded.size(), 3u);
    EXPECT_EQ(d.excluded[0].merchant_id, "BAIT");
    EXPECT_EQ(d.excluded[0].why, ExcludeWhy::outlier);
    EXPECT_EQ(d.excluded[0].price, 10);
    EXPECT_EQ(d.excluded[1].merchant_id, "ME");
    EXPECT_EQ(d.excluded[1].why, ExcludeWhy::excluded_merchant);
    EXPECT_EQ(d.excluded[2].merchant_id, "SLOW");
    EXPECT_EQ(d.excluded[2].why, ExcludeWhy::slow_delivery);
    EXPECT_EQ(d.competitors, 3);
    EXPECT_EQ(d.new_price, 999);
    EXPECT_EQ(d.reason, Reason::outlier_ignored);
    EXPECT_STREQ(exclude_why_name(ExcludeWhy::excluded_merchant), "excluded_merchant");
    EXPECT_STREQ(exclude_why_name(ExcludeWhy::slow_delivery), "slow_delivery");
    EXPECT_STREQ(exclude_why_name(ExcludeWhy::outlier), "outlier");
}

TEST(PriceRuleExclusion, OutlierShareAboveOneCannotEmptyTheList) {
    const OfferBook b = book({offer("A", 100), offer("B", 200), offer("C", 300)});
    const PriceDecision d = decide_price(500, R().outliers(50.0).max(1000), b);
    EXPECT_GE(d.competitors, 1);
    EXPECT_NE(d.reason, Reason::no_competitors_to_max);
    EXPECT_EQ(d.new_price, 199) << "share 50 counts as 1: only offers below the median (200) go";
    const PriceDecision nan = decide_price(500, R().outliers(std::nan("")), b);
    EXPECT_EQ(nan.competitors, 3);
}

TEST(PriceRuleExclusion, OutlierMedianOfEvenSample) {
    // Sample of 2: median (100 + 10000) / 2 = 5050; share 0.5 → threshold 2525.
    const PriceDecision d =
        decide_price(20000, R().outliers(0.5), book({offer("A", 100), offer("B", 10000)}));
    EXPECT_EQ(d.new_price, 9999);
    EXPECT_EQ(d.reason, Reason::outlier_ignored);
    // Only the 5 cheapest form the sample (median 800, threshold 400: 400 stays); over all 8 offers
    // the median would be 950 and 400 would go.
    const PriceDecision e = decide_price(
        20000, R().outliers(0.5),
        book({offer("A", 400), offer("B", 700), offer("C", 800), offer("D", 900), offer("E", 1000),
              offer("F", 100000), offer("G", 100000), offer("H", 100000)}));
    EXPECT_EQ(e.new_price, 399);
}

// ─── floor, ceiling, guard ────────────────────────────────────────────────────────────────────

TEST(PriceRuleBounds, Table) {
    const std::vector<Case> cases = {
        {"go_to_floor", 200, R().min(145), {offer("A", 140)}, 145, Reason::at_floor, true},
        {"hold at floor keeps the price",
         160,
         R().min(145).hold_at_floor(),
         {offer("A", 140)},
         160,
         Reason::floor_hold,
         true},
        {"hold, but current below a raised floor",
         130,
         R().min(145).hold_at_floor(),
         {offer("A", 140)},
         145,
         Reason::at_floor,
         true},
        {"target exactly the floor",
         200,
         R().min(149),
         {offer("A", 150)},
         149,
         Reason::at_floor,
         false},
        {"at floor, unchanged next time",
         145,
         R().min(145),
         {offer("A", 140)},
         145,
         Reason::at_floor,
         true},
        {"marketplace minimum", 50, R().min(0), {offer("A", 10)}, 10, Reason::at_floor, true},
        {"marketplace minimum with negative min_price",
         50,
         R().min(-100),
         {offer("A", 5)},
         10,
         Reason::at_floor,
         true},
        {"ceiling", 200, R().max(300), {offer("A", 500)}, 300, Reason::ceiling, false},
        {"ceiling not hit",
         200,
         R().max(300),
         {offer("A", 250)},
         249,
         Reason::raised_to_competitor,
         false},
        {"current above a lowered ceiling, hold",
         500,
         R().max(300).min(200).hold_at_floor(),
         {offer("A", 150)},
         300,
         Reason::ceiling,
         true},
        {"no competitors, current above ceiling, hold",
         500,
         R().max(300).hold_without_competitors(),
         {},
         300,
         Reason::ceiling,
         false},
        {"no competitors, current below floor",
         100,
         R().min(150).hold_without_competitors(),
         {},
         150,
         Reason::at_floor,
         true},
        {"no competitors, max below floor",
         100,
         R().min(150).max(120),
         {},
         150,
         Reason::at_floor,
         true},
        {"min > max: the floor wins",
         200,
         R().min(500).max(300),
         {offer("A", 1000)},
         500,
         Reason::at_floor,
         true},
        {"min > max, competitor low",
         200,
         R().min(500).max(300),
         {offer("A", 100)},
         500,
         Reason::at_floor,
         true},
        {"max_change caps a drop",
         1000,
         R().max_change(10),
         {offer("A", 500)},
         900,
         Reason::max_change_capped,
         false},
        {"max_change caps a raise",
         1000,
         R().max_change(10),
         {offer("A", 2000)},
         1100,
         Reason::max_change_capped,
         false},
        {"max_change within the cap",
         1000,
         R().max_change(10),
         {offer("A", 951)},
         950,
         Reason::undercut,
         false},
        {"max_change cap is at least 1",
         50,
         R().max_change(0.5),
         {offer("A", 20)},
         49,
         Reason::max_change_capped,
         false},
        {"max_change 0 freezes",
         1000,
         R().max_change(0),
         {offer("A", 500)},
         1000,
         Reason::max_change_capped,
         false},
        {"max_change NaN freezes",
         1000,
         R().max_change(std::nan("")),
         {offer("A", 500)},
         1000,
         Reason::max_change_capped,
         false},
        {"max_change inf is no cap",
         1000,
         R().max_change(INFINITY),
         {offer("A", 500)},
         499,
         Reason::undercut,
         false},
        {"the floor beats max_change (raised floor)",
         100,
         R().min(150).max_change(10),
         {offer("A", 200)},
         150,
         Reason::at_floor,
         true},
        {"the ceiling beats max_change (lowered ceiling)",
         1000,
         R().max(500).max_change(10),
         {offer("A", 2000)},
         500,
         Reason::ceiling,
         false},
        {"max_change then floor",
         1000,
         R().min(950).max_change(10),
         {offer("A", 500)},
         950,
         Reason::at_floor,
         true},
        {"to_max capped by max_change",
         100,
         R().max(1000).max_change(10),
         {},
         110,
         Reason::max_change_capped,
         false},
        {"current 0 moves to the floor",
         0,
         R().hold_without_competitors(),
         {},
         10,
         Reason::at_floor,
         true},
        {"negative current moves to the floor",
         -5,
         R().min(20).max_change(10),
         {offer("A", 100)},
         20,
         Reason::at_floor,
         true},
        {"huge step saturates to the floor",
         200,
         R().step(kMax),
         {offer("A", 100)},
         10,
         Reason::at_floor,
         true},
        {"huge follow step saturates to the ceiling",
         200,
         R().strategy(Strategy::follow_second).step(kMax).max(5000),
         {offer("A", 100)},
         5000,
         Reason::ceiling,
         false},
        {"huge follow step without ceiling saturates",
         200,
         R().strategy(Strategy::follow_second).step(kMax),
         {offer("A", 100)},
         kMax,
         Reason::raised_to_competitor,
         false},
        {"step 0 counts as 1", 200, R().step(0), {offer("A", 100)}, 99, Reason::undercut, false},
        {"negative step counts as 1",
         200,
         R().step(-50),
         {offer("A", 100)},
         99,
         Reason::undercut,
         false},
        {"extreme current and min",
         kMin,
         R().min(kMax),
         {offer("A", 100)},
         kMax,
         Reason::at_floor,
         true},
        {"extreme current, max_change",
         kMax,
         R().max_change(50),
         {offer("A", 100)},
         kMax / 2 + 1,
         Reason::max_change_capped,
         false},
    };
    for (const Case& c : cases) run(c);
}

TEST(PriceRuleBounds, FloorClampIsNamed) {
    const PriceDecision d = decide_price(200, R().min(145), book({offer("A", 140)}));
    ASSERT_EQ(d.clamps.size(), 1u);
    EXPECT_EQ(d.clamps[0].bound, Bound::floor);
    EXPECT_EQ(d.clamps[0].before, 139);
    EXPECT_EQ(d.clamps[0].after, 145);
    ASSERT_TRUE(d.target);
    EXPECT_EQ(*d.target, 139) << "the raw target is reported before clamps";

    const PriceDecision m = decide_price(50, R().min(0), book({offer("A", 10)}));
    ASSERT_EQ(m.clamps.size(), 1u);
    EXPECT_EQ(m.clamps[0].bound, Bound::marketplace_min);
    EXPECT_EQ(m.floor, kMarketplaceMinPrice);
}

TEST(PriceRuleBounds, MinAboveMaxSaysSo) {
    const PriceDecision d = decide_price(200, R().min(500).max(300), book({offer("A", 1000)}));
    EXPECT_TRUE(d.floor_above_ceiling);
    EXPECT_EQ(d.floor, 500);
    ASSERT_TRUE(d.ceiling);
    EXPECT_EQ(*d.ceiling, 500) << "the effective ceiling is lifted to the floor";
    ASSERT_EQ(d.clamps.size(), 1u);
    EXPECT_EQ(d.clamps[0].bound, Bound::floor);
    EXPECT_EQ(
        decide_price(200, R().min(100).max(300), book({offer("A", 1000)})).floor_above_ceiling,
        false);
}

TEST(PriceRuleBounds, MaxChangeClampThenFloor) {
    // current 100 below a raised floor 150; target 199; the guard allows [90, 110]; the floor wins.
    const PriceDecision d = decide_price(100, R().min(150).max_change(10), book({offer("A", 200)}));
    ASSERT_EQ(d.clamps.size(), 2u);
    EXPECT_EQ(d.clamps[0], (Clamp{Bound::max_change, 199, 110}));
    EXPECT_EQ(d.clamps[1], (Clamp{Bound::floor, 110, 150}));
    EXPECT_EQ(d.new_price, 150);
    EXPECT_EQ(d.reason, Reason::at_floor);
}

TEST(PriceRuleBounds, GuardPushedBelowTheFloorIsLifted) {
    // current 1000, floor 950, cap 10 % = 100 → the guard would allow 900, but the floor wins.
    const PriceDecision d =
        decide_price(1000, R().min(950).max_change(10), book({offer("A", 500)}));
    EXPECT_EQ(d.new_price, 950);
    EXPECT_TRUE(d.floor_hit);
}

TEST(PriceRuleBounds, CostFloor) {
    // 1000 × 1.15 = 1150.
    const PriceDecision a = decide_price(2000, R().cost(1000).margin(15), book({offer("A", 1100)}));
    EXPECT_EQ(a.floor, 1150);
    EXPECT_EQ(a.new_price, 1150);
    EXPECT_EQ(a.reason, Reason::at_floor);
    EXPECT_TRUE(a.floor_hit);
    // 999 × 1.1 = 1098.9 → 1099 (rounded up).
    EXPECT_EQ(effective_floor(R().cost(999).margin(10)), 1099);
    // 1000 × 1.1 is exactly 1100, not 1101 (no floating-point drift).
    EXPECT_EQ(effective_floor(R().cost(1000).margin(10)), 1100);
    EXPECT_EQ(effective_floor(R().cost(100).margin(0.1)), 101);  // 100.1 → 101
    // Cost without margin: the cost itself.
    EXPECT_EQ(effective_floor(R().cost(777)), 777);
    // Margin without cost is ignored.
    EXPECT_EQ(effective_floor(R().margin(50).min(300)), 300);
    // min_price above the cost floor wins.
    EXPECT_EQ(effective_floor(R().cost(100).margin(10).min(500)), 500);
    // Never below the marketplace minimum.
    EXPECT_EQ(effective_floor(R().cost(1).margin(10).min(0)), kMarketplaceMinPrice);
    EXPECT_EQ(effective_floor(R().cost(1000).margin(-200)), kMarketplaceMinPrice);
    // Absurd values saturate instead of overflowing.
    EXPECT_EQ(effective_floor(R().cost(kMax).margin(1e300)), kMax);
    EXPECT_EQ(effective_floor(R().cost(kMax).margin(INFINITY)), kMax);
    EXPECT_EQ(effective_floor(R().cost(1000).margin(std::nan(""))), 1000);
}

TEST(PriceRuleBounds, CostFloorAboveMaxPrice) {
    const PriceDecision d =
        decide_price(500, R().cost(1000).margin(10).max(900), book({offer("A", 800)}));
    EXPECT_EQ(d.new_price, 1100);
    EXPECT_TRUE(d.floor_above_ceiling);
    EXPECT_TRUE(d.floor_hit);
}

// ─── steps ────────────────────────────────────────────────────────────────────────────────────

TEST(PriceRuleStep, Percentage) {
    // 1.1 % of 1000 = 11 exactly (not 12 from floating-point drift).
    const PriceDecision a = decide_price(2000, R().step_percent(1.1), book({offer("A", 1000)}));
    EXPECT_EQ(a.step, 11);
    EXPECT_EQ(a.new_price, 989);
    // 1 % of 50 = 0.5 → 1.
    EXPECT_EQ(decide_price(2000, R().step_percent(1), book({offer("A", 50)})).new_price, 49);
    // 0.001 % of 1000 = 0.01 → at least 1.
    EXPECT_EQ(decide_price(2000, R().step_percent(0.001), book({offer("A", 1000)})).step, 1);
    // 2.5 % of 151990 = 3799.75 → 3800.
    EXPECT_EQ(decide_price(200000, R().step_percent(2.5), book({offer("A", 151990)})).new_price,
              148190);
    // The percentage is taken of the reference (the 2nd for position 2).
    EXPECT_EQ(decide_price(5000, R().position(2).step_percent(10),
                           book({offer("A", 1000), offer("B", 2000)}))
                  .new_price,
              1800);
    // follow_second adds it.
    EXPECT_EQ(decide_price(5000, R().strategy(Strategy::follow_second).step_percent(10),
                           book({offer("A", 1000)}))
                  .new_price,
              1100);
    // The fixed step is ignored when a percentage is set; a NaN or negative percentage is ignored.
    EXPECT_EQ(decide_price(2000, R().step(50).step_percent(1), book({offer("A", 1000)})).step, 10);
    EXPECT_EQ(
        decide_price(2000, R().step(50).step_percent(std::nan("")), book({offer("A", 1000)})).step,
        50);
    EXPECT_EQ(decide_price(2000, R().step(50).step_percent(-3), book({offer("A", 1000)})).step, 50);
    // Absurd percentages saturate and land on the floor.
    const PriceDecision huge =
        decide_price(2000, R().step_percent(1e300), book({offer("A", 1000)}));
    EXPECT_EQ(huge.new_price, kMarketplaceMinPrice);
    EXPECT_EQ(decide_price(2000, R().step_percent(INFINITY), book({offer("A", 1000)})).new_price,
              kMarketplaceMinPrice);
}

// ─── determinism, names, JSON, validation ─────────────────────────────────────────────────────

TEST(PriceRuleDeterminism, SameInputSameDecisionWhateverTheOrder) {
    const PricingRule rule = R().exclude("ME").outliers(0.3).max_delivery(5).min(100).max(5000);
    std::vector<Offer> offers = {offer("C", 900, "TODAY"),  offer("A", 900, "TODAY"),
                                 offer("ME", 10, "TODAY"),  offer("B", 950, "TILL_7_DAYS"),
                                 offer("D", 20, "EXPRESS"), offer("E", 1200, "TODAY")};
    const PriceDecision first = decide_price(1000, rule, book(offers));
    std::sort(offers.begin(), offers.end(),
              [](const Offer& a, const Offer& b) { return a.merchant_id < b.merchant_id; });
    do {
        ASSERT_EQ(decide_price(1000, rule, book(offers)), first);
    } while (std::next_permutation(
        offers.begin(), offers.end(),
        [](const Offer& a, const Offer& b) { return a.merchant_id < b.merchant_id; }));
}

TEST(PriceRuleNames, ReasonNamesAreDistinctSnakeCase) {
    const std::vector<Reason> all = {Reason::undercut,
                                     Reason::match,
                                     Reason::position,
                                     Reason::follow_second,
                                     Reason::raised_to_competitor,
                                     Reason::floor_hold,
                                     Reason::at_floor,
                                     Reason::ceiling,
                                     Reason::no_competitors_to_max,
                                     Reason::no_competitors_hold,
                                     Reason::max_change_capped,
                                     Reason::outlier_ignored,
                                     Reason::unchanged};
    std::set<std::string> names;
    for (Reason r : all) {
        const std::string n = reason_name(r);
        EXPECT_TRUE(std::all_of(n.begin(), n.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || c == '_';
        })) << n;
        names.insert(n);
    }
    EXPECT_EQ(names.size(), all.size());
    EXPECT_STREQ(reason_name(Reason::floor_hold), "floor_hold");
    EXPECT_STREQ(bound_name(Bound::marketplace_min), "marketplace_min");
    EXPECT_STREQ(bound_name(Bound::max_change), "max_change");
}

TEST(PriceRuleNames, ParseRoundTrip) {
    for (Strategy s :
         {Strategy::undercut, Strategy::match, Strategy::position, Strategy::follow_second}) {
        EXPECT_EQ(parse_strategy(strategy_name(s)), s);
    }
    EXPECT_FALSE(parse_strategy("Undercut"));
    EXPECT_FALSE(parse_strategy(""));
    EXPECT_EQ(parse_floor_action("hold"), FloorAction::hold);
    EXPECT_EQ(parse_floor_action("go_to_floor"), FloorAction::go_to_floor);
    EXPECT_FALSE(parse_floor_action("floor"));
    EXPECT_EQ(parse_no_competitor_action("to_max"), NoCompetitorAction::to_max);
    EXPECT_EQ(parse_no_competitor_action("hold"), NoCompetitorAction::hold);
    EXPECT_FALSE(parse_no_competitor_action("max"));
}

TEST(PriceRuleJson, ExplainsTheDecision) {
    const PricingRule rule = R().exclude("ME").min(145).max(1000).max_change(50);
    const OfferBook b = book({offer("ME", 100), offer("A", 140, "TODAY"), offer("B", 160)});
    const PriceDecision d = decide_price(200, rule, b);
    const std::string json = decision_to_json(d, rule, b);
    rapidjson::Document doc;
    doc.Parse(json.c_str());
    ASSERT_FALSE(doc.HasParseError()) << json;
    ASSERT_TRUE(doc.IsObject());
    EXPECT_EQ(doc["current_price"].GetInt64(), 200);
    EXPECT_EQ(doc["new_price"].GetInt64(), 145);
    EXPECT_TRUE(doc["changed"].GetBool());
    EXPECT_STREQ(doc["reason"].GetString(), "at_floor");
    EXPECT_EQ(doc["target"].GetInt64(), 139);
    EXPECT_EQ(doc["competitor_price"].GetInt64(), 140);
    EXPECT_STREQ(doc["competitor_merchant"].GetString(), "A");
    EXPECT_EQ(doc["floor"].GetInt64(), 145);
    EXPECT_EQ(doc["ceiling"].GetInt64(), 1000);
    EXPECT_TRUE(doc["floor_hit"].GetBool());
    ASSERT_EQ(doc["clamps"].Size(), 1u);
    EXPECT_STREQ(doc["clamps"][0]["bound"].GetString(), "floor");
    EXPECT_EQ(doc["clamps"][0]["before"].GetInt64(), 139);
    EXPECT_EQ(doc["clamps"][0]["after"].GetInt64(), 145);
    ASSERT_EQ(doc["competitors"].Size(), 2u);
    EXPECT_STREQ(doc["competitors"][0]["merchant_id"].GetString(), "A");
    EXPECT_STREQ(doc["competitors"][0]["delivery"].GetString(), "TODAY");
    ASSERT_EQ(doc["excluded"].Size(), 1u);
    EXPECT_STREQ(doc["excluded"][0]["merchant_id"].GetString(), "ME");
    EXPECT_STREQ(doc["excluded"][0]["why"].GetString(), "excluded_merchant");
    EXPECT_STREQ(doc["rule"]["strategy"].GetString(), "undercut");
    EXPECT_EQ(doc["rule"]["min_price"].GetInt64(), 145);
    EXPECT_TRUE(doc["rule"]["cost_price"].IsNull());
    EXPECT_DOUBLE_EQ(doc["rule"]["max_change_percent"].GetDouble(), 50.0);
    EXPECT_STREQ(doc["rule"]["excluded_merchants"][0].GetString(), "ME");
}

TEST(PriceRuleJson, AlwaysValidJson) {
    PricingRule rule = R().max_change(std::nan("")).outliers(INFINITY);
    rule.step_percent = -INFINITY;
    rule.excluded_merchants.push_back("bad\xFF\xC3utf8\"\\");
    const OfferBook b = book({offer("\xED\xA0\x80", 100), offer("ok\n", 200)});
    const PriceDecision d = decide_price(kMin, rule, b);
    const std::string json = decision_to_json(d, rule, b);
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(json.c_str());
    ASSERT_FALSE(doc.HasParseError()) << json;
    EXPECT_TRUE(doc["rule"]["max_change_percent"].IsNull());
    EXPECT_TRUE(doc["rule"]["step_percent"].IsNull());
    EXPECT_STREQ(doc["rule"]["excluded_merchants"][0].GetString(), "bad??utf8\"\\");
}

TEST(PriceRuleValidate, Messages) {
    EXPECT_EQ(validate_rule(R()), "");
    EXPECT_EQ(
        validate_rule(
            R().min(100).max(200).max_change(10).outliers(0.3).max_delivery(3).cost(50).margin(10)),
        "");
    EXPECT_NE(validate_rule(R().step(0)), "");
    EXPECT_NE(validate_rule(R().position(0)), "");
    EXPECT_NE(validate_rule(R().min(5)), "");
    EXPECT_EQ(validate_rule(R().min(500).max(300)), "min_price is above max_price");
    EXPECT_EQ(validate_rule(R().min(100).max(300).cost(300).margin(10)),
              "the cost floor is above max_price");
    EXPECT_NE(validate_rule(R().max_change(0)), "");
    EXPECT_NE(validate_rule(R().max_change(std::nan(""))), "");
    EXPECT_NE(validate_rule(R().outliers(1.5)), "");
    EXPECT_NE(validate_rule(R().outliers(0)), "");
    EXPECT_NE(validate_rule(R().max_delivery(8)), "");
    EXPECT_NE(validate_rule(R().step_percent(std::nan(""))), "");
    EXPECT_NE(validate_rule(R().cost(-1)), "");
    EXPECT_NE(validate_rule(R().cost(10).margin(INFINITY)), "");
}

}  // namespace
