// Unit tests for core/schedule: the adaptive interval, the pressure solver, price-war detection and
// policies, and the state's text form.
#include "core/schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace demper::core {
namespace {

constexpr const char* kOwn = "OWN";

OfferBook book_of(std::vector<std::pair<std::string, std::int64_t>> offers) {
    OfferBook book;
    for (auto& [merchant, price] : offers)
        book.offers.push_back({merchant, "Shop " + merchant, price, "TOMORROW"});
    book.total = static_cast<std::int64_t>(book.offers.size());
    return book;
}

PricingRule undercut_rule(std::int64_t floor, std::int64_t ceiling) {
    PricingRule rule;
    rule.min_price = floor;
    rule.max_price = ceiling;
    rule.excluded_merchants = {kOwn};
    return rule;
}

// A product checked by decide_and_schedule, with the market in the test's hands.
struct Product {
    ScheduleState state;
    std::int64_t price;
    PricingRule rule;
    CheckSchedule how;
    ScheduledDecision last;

    ScheduledDecision check(double at, const OfferBook& book) {
        how.at_s = at;
        last = decide_and_schedule(state, price, rule, book, how);
        state = last.state;
        price = last.decision.new_price;
        return last;
    }
};

Product product(std::int64_t price, std::int64_t floor, std::int64_t ceiling) {
    Product p{ScheduleState{}, price, undercut_rule(floor, ceiling), CheckSchedule{}, {}};
    p.how.bounds = ScheduleBounds{30, 7200, 900};
    return p;
}

ScheduleTuning no_jitter() {
    ScheduleTuning tuning;
    tuning.jitter_share = 0;
    return tuning;
}

TEST(Schedule, NoInformationMeansTheDefaultIntervalWithinTheBounds) {
    ScheduleState fresh;
    const ScheduleTuning exact = no_jitter();
    EXPECT_DOUBLE_EQ(next_interval_s(fresh, {30, 7200, 900}, 1, exact), 900);
    EXPECT_DOUBLE_EQ(next_interval_s(fresh, {30, 7200, 900}, 2, exact), 1800);
    // At most 5 % short of the longest: the room for waiting in the due queue.
    EXPECT_DOUBLE_EQ(next_interval_s(fresh, {30, 600, 900}, 1, exact), 570);
    EXPECT_DOUBLE_EQ(next_interval_s(fresh, {1000, 7200, 900}, 1, exact), 1000);
    // A pressure that is not a positive number counts as 1.
    EXPECT_DOUBLE_EQ(next_interval_s(fresh, {30, 7200, 900}, std::nan(""), exact), 900);
    EXPECT_DOUBLE_EQ(next_interval_s(fresh, {30, 7200, 900}, -3, exact), 900);
    // One check is not information yet (min_observations = 2); the jitter spreads it by ±5 %.
    Product p = product(1000, 900, 1200);
    p.check(0, book_of({{"A", 1001}}));
    EXPECT_GE(p.last.interval_s, 855);
    EXPECT_LT(p.last.interval_s, 945);
    EXPECT_DOUBLE_EQ(p.last.base_interval_s, 900);
}

TEST(Schedule, TheJitterSpreadsProductsThatShareAnInterval) {
    // Products at the same stage with the same interval come due at different times, spread
    // over the jitter's whole range, and the same state always gets the same interval.
    std::vector<double> intervals;
    for (int i = 0; i < 1000; ++i) {
        ScheduleState s;
        s.observations = 1;
        s.last_at_s = 1795392173.0 + i * 0.37;
        intervals.push_back(next_interval_s(s, {30, 7200, 900}, 1));
        ASSERT_DOUBLE_EQ(intervals.back(), next_interval_s(s, {30, 7200, 900}, 1));
    }
    const auto [low, high] = std::minmax_element(intervals.begin(), intervals.end());
    EXPECT_GE(*low, 855);
    EXPECT_LT(*high, 945);
    EXPECT_LT(*low, 860);
    EXPECT_GT(*high, 940);
}

TEST(Schedule, MovingOffersAreCheckedMoreOftenThanQuietOnes) {
    Product busy = product(1000, 800, 1500);
    Product quiet = product(1000, 800, 1500);
    std::int64_t rival = 1100;
    for (int i = 0; i < 60; ++i) {
        const double at = i * 900.0;
        rival += (i % 2 == 0) ? 7 : -5;  // the busy product's rival moves between every two checks
        busy.check(at, book_of({{"A", rival}, {"B", 1300}}));
        quiet.check(at, book_of({{"A", 1100}, {"B", 1300}}));
    }
    EXPECT_LT(3 * busy.last.interval_s, quiet.last.interval_s);
    EXPECT_GT(change_rate_per_s(busy.state) * 3600, 2.0);    // about 4 changes an hour
    EXPECT_LT(change_rate_per_s(quiet.state) * 3600, 0.05);  // the prior has faded
    EXPECT_EQ(busy.state.position, Position::first_thin);
}

TEST(Schedule, AnUndercutWeighsMoreThanAMoveBehindTheSeller) {
    // The same number of changes: one product's leader undercuts the seller between every two
    // checks, the other's third offer moves up and down behind it.
    Product undercut = product(10000, 5000, 12000);
    Product behind = product(10000, 5000, 12000);
    std::int64_t third = 10500;
    for (int i = 0; i < 40; ++i) {
        const double at = i * 900.0;
        undercut.check(at, book_of({{"A", undercut.price - 5}, {"B", 10300}, {"C", 10500}}));
        third += (i % 2 == 0) ? 50 : -50;
        behind.check(at, book_of({{"A", 10100}, {"B", 10300}, {"C", third}}));
    }
    const ScheduleTuning tuning;
    const double ratio = change_rate_per_s(undercut.state) / change_rate_per_s(behind.state);
    EXPECT_GT(ratio, 0.5 / tuning.other_change_weight);  // about 1 / other_change_weight
    EXPECT_LT(base_interval_s(undercut.state, undercut.how.bounds),
              base_interval_s(behind.state, behind.how.bounds) / 2);
}

TEST(Schedule, AFirstPlaceByAWideMarginWaitsLongerThanAThinOne) {
    ScheduleState thin;
    thin.observations = 10;
    thin.changes = 4;
    thin.exposure_s = 36000;
    thin.position = Position::first_thin;
    ScheduleState clear = thin;
    clear.position = Position::first_clear;
    ScheduleState at_floor = thin;
    at_floor.position = Position::behind_at_floor;
    const ScheduleBounds bounds{1, 1e9, 900};
    const double t = base_interval_s(thin, bounds);
    EXPECT_NEAR(base_interval_s(clear, bounds) / t, 2.0, 1e-9);  // stake 1/4: sqrt(4) longer
    EXPECT_GT(base_interval_s(at_floor, bounds), t);
    // The square-root rule: four times the change rate, half the interval.
    ScheduleState busier = thin;
    busier.changes = 4 * thin.changes + 3 * ScheduleTuning{}.prior_changes;
    EXPECT_NEAR(base_interval_s(busier, bounds) / t, 0.5, 1e-9);
    // The pressure scales the interval, the jitter spreads it by at most ±5 %.
    EXPECT_NEAR(next_interval_s(thin, bounds, 3, no_jitter()), 3 * t, 1e-6);
    EXPECT_NEAR(next_interval_s(thin, bounds, 3) / (3 * t), 1.0, 0.05);
}

TEST(Schedule, PositionAfterTheDecision) {
    Product p = product(1000, 950, 2000);
    p.check(0, book_of({{"A", 1100}}));
    EXPECT_EQ(p.price, 1099);
    EXPECT_EQ(p.state.position, Position::first_thin);
    p.check(900, book_of({{"A", 900}}));  // below the floor: go to the floor, behind
    EXPECT_EQ(p.price, 950);
    EXPECT_EQ(p.state.position, Position::behind_at_floor);
    p.check(1800, book_of({}));  // alone: to the ceiling
    EXPECT_EQ(p.state.position, Position::alone);
    Product capped = product(1000, 950, 1050);
    capped.check(0, book_of({{"A", 1400}}));  // the ceiling leaves a wide margin
    EXPECT_EQ(capped.price, 1050);
    EXPECT_EQ(capped.state.position, Position::first_clear);
}

TEST(Schedule, EveryIntervalStaysWithinItsBoundsWhateverThePressure) {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> unit(0, 1);
    for (int i = 0; i < 20000; ++i) {
        ScheduleState s;
        s.observations = static_cast<int>(unit(rng) * 5);
        s.changes = unit(rng) < 0.1 ? 0 : std::exp(unit(rng) * 12 - 6);
        s.exposure_s = unit(rng) < 0.1 ? 0 : std::exp(unit(rng) * 15);
        s.position = static_cast<Position>(static_cast<int>(unit(rng) * 6));
        const double shortest = std::exp(unit(rng) * 8);
        const double longest = shortest * (0.5 + unit(rng) * 100);  // may cross: longest wins
        const double pressure = unit(rng) < 0.05 ? std::nan("") : std::exp(unit(rng) * 12 - 6);
        const double interval = next_interval_s(s, {shortest, longest, 900}, pressure);
        const double low = std::min(std::max(1.0, shortest), std::max(1.0, longest));
        ASSERT_GE(interval, low - 1e-9) << i;
        ASSERT_LE(interval, std::max(1.0, longest) + 1e-9) << i;
        ASSERT_TRUE(std::isfinite(interval)) << i;
    }
}

TEST(Schedule, PressureMakesTheDemandFitTheBudget) {
    std::vector<DemandGroup> groups = {
        {60, 30, 7200, 500},      // busy products
        {900, 30, 7200, 3000},    // no information yet
        {20000, 30, 7200, 6500},  // quiet ones: at their longest already
    };
    for (double budget : {2.0, 5.0, 10.0, 20.0}) {
        const double p = solve_pressure(groups, budget);
        EXPECT_NEAR(demand_per_s(groups, p), budget, budget * 1e-9) << budget;
    }
    // Demand falls as the pressure rises.
    EXPECT_GT(demand_per_s(groups, 0.5), demand_per_s(groups, 1));
    // Out of reach: every product at its longest still asks for more, or at its shortest for less.
    EXPECT_EQ(solve_pressure(groups, 0.1), kMaxPressure);
    EXPECT_EQ(solve_pressure(groups, 1e6), kMinPressure);
    EXPECT_EQ(solve_pressure({}, 10), 1);
    EXPECT_EQ(solve_pressure(groups, std::nan("")), 1);
    // Under pressure the busy products keep the shortest intervals: low-value ones stretch first
    // (in seconds) and reach their longest first.
    const double p = solve_pressure(groups, 2);
    EXPECT_GT(p, 1);
    EXPECT_LT(60 * p, 900 * p);
}

// A bot that answers every undercut by cutting one step below the seller, down to its floor.
struct Bot {
    std::int64_t price;
    std::int64_t floor;
    void answer(std::int64_t seller) { price = std::max(floor, seller - 10); }
};

// fight_until_war checks p every ten minutes from `at`, the bot answering each undercut, until a
// war is declared (within ten checks); `at` is then the time of the next check.
void fight_until_war(Product& p, Bot& bot, double& at) {
    const double start = at;
    for (; !p.last.war.at_war; at += 600) {
        ASSERT_LT(at, start + 6000);
        p.check(at, book_of({{"BOT", bot.price}, {"C", 11000}}));
        bot.answer(p.price);
    }
}

TEST(ScheduleWar, ABotAnsweringEveryUndercutIsAWarAfterThreeRounds) {
    Product p = product(10000, 8000, 12000);
    Bot bot{9990, 7000};
    double at = 0;
    std::vector<bool> at_war;
    for (int i = 0; i < 6; ++i) {
        p.check(at, book_of({{"BOT", bot.price}, {"C", 11000}}));
        at_war.push_back(p.last.war.at_war);
        bot.answer(p.price);
        at += 600;
    }
    // check 0 undercuts; checks 1, 2, 3 find the bot's answers: rounds 1, 2, 3.
    EXPECT_EQ(at_war, (std::vector<bool>{false, false, false, true, true, true}));
    EXPECT_EQ(p.last.war.rival, "BOT");
    EXPECT_EQ(p.last.war.from_price, 10000);
    EXPECT_EQ(p.last.war.since_s, 1800);
    EXPECT_EQ(p.last.reason, "undercut");  // follow: today's behaviour
}

TEST(ScheduleWar, ACompetitorThatDoesNotAnswerIsNoWar) {
    Product p = product(10000, 8000, 12000);
    std::int64_t human = 9990;
    for (int i = 0; i < 20; ++i) {
        p.check(i * 600.0, book_of({{"H", human}, {"C", 11000}}));
        if (i % 2 == 1) human = p.price - 10;  // answers only every other undercut
        EXPECT_FALSE(p.last.war.at_war) << i;
    }
    // A cut far larger than a step is a price move, not a round.
    Product q = product(10000, 5000, 12000);
    std::int64_t deep = 9990;
    for (int i = 0; i < 10; ++i) {
        q.check(i * 600.0, book_of({{"D", deep}}));
        deep = q.price - q.price / 10;
        EXPECT_FALSE(q.last.war.at_war) << i;
    }
}

TEST(ScheduleWar, HoldKeepsThePriceWhileTheWarLasts) {
    Product p = product(10000, 8000, 12000);
    p.how.war_policy = WarPolicy::hold;
    Bot bot{9990, 7000};
    double at = 0;
    ASSERT_NO_FATAL_FAILURE(fight_until_war(p, bot, at));
    const std::int64_t held = p.last.decision.new_price;
    EXPECT_EQ(p.last.reason, kReasonWarHold);
    EXPECT_FALSE(p.last.decision.changed);
    EXPECT_EQ(held, p.last.decision.current_price);
    for (int i = 0; i < 2; ++i, at += 600) {
        p.check(at, book_of({{"BOT", bot.price}, {"C", 11000}}));
        EXPECT_EQ(p.price, held);
        EXPECT_EQ(p.last.reason, kReasonWarHold);
    }
    // A product held in a war is checked rarely: answering faster only feeds the loop.
    EXPECT_GT(p.last.interval_s, 1000);
    // The rival raising: the price follows the market up (hold only stops the descent).
    p.check(at, book_of({{"BOT", held + 500}, {"C", 11000}}));
    EXPECT_EQ(p.price, held + 499);
}

TEST(ScheduleWar, KeepMarginPricesAgainstTheRestAndEndsWhenTheLoopGoesQuiet) {
    Product p = product(10000, 8000, 12000);
    p.how.war_policy = WarPolicy::keep_margin;
    Bot bot{9990, 7000};
    double at = 0;
    ASSERT_NO_FATAL_FAILURE(fight_until_war(p, bot, at));
    // Declared on this check: the price goes back to one step under the next competitor.
    EXPECT_EQ(p.price, 10999);
    EXPECT_EQ(p.last.reason, kReasonWarKeepMargin);
    EXPECT_NE(p.last.decision.competitor_merchant.value_or(""), "BOT");
    const std::string explain = schedule_explain_json(p.last, 1);
    EXPECT_NE(explain.find("\"rival\":\"BOT\""), std::string::npos) << explain;
    EXPECT_NE(explain.find("\"policy\":\"keep_margin\""), std::string::npos) << explain;
    bot.answer(p.price);  // the bot follows up and then sits still
    const double quiet = ScheduleTuning{}.quiet_s;
    const double war_began = p.last.war.since_s;
    p.check(at, book_of({{"BOT", bot.price}, {"C", 11000}}));
    EXPECT_TRUE(p.last.war.at_war);
    EXPECT_EQ(p.price, 10999);
    p.check(at + quiet / 2, book_of({{"BOT", bot.price}, {"C", 11000}}));
    EXPECT_TRUE(p.last.war.at_war);
    // Quiet for quiet_s since its last move: the war is over and the seller undercuts again.
    at += quiet + 1;
    p.check(at, book_of({{"BOT", bot.price}, {"C", 11000}}));
    EXPECT_FALSE(p.last.war.at_war);
    EXPECT_EQ(p.price, bot.price - 1);
    EXPECT_GT(at, war_began);
    // The same bot answers again: a known rival is at war after two rounds, and its next quiet
    // period is twice as long.
    int checks = 0;
    while (!p.last.war.at_war) {
        ASSERT_LT(++checks, 10);
        bot.answer(p.price);
        at += 600;
        p.check(at, book_of({{"BOT", bot.price}, {"C", 11000}}));
    }
    EXPECT_EQ(checks, 2);
    EXPECT_EQ(p.last.war.wars_with_rival, 2);
    bot.answer(p.price);
    p.check(at + 1, book_of({{"BOT", bot.price}, {"C", 11000}}));
    p.check(at + 1 + quiet + 10, book_of({{"BOT", bot.price}, {"C", 11000}}));
    EXPECT_TRUE(p.last.war.at_war);
    p.check(at + 1 + 2 * quiet + 10, book_of({{"BOT", bot.price}, {"C", 11000}}));
    EXPECT_FALSE(p.last.war.at_war);
}

TEST(ScheduleWar, TheWarEndsWhenTheRivalLeaves) {
    Product p = product(10000, 8000, 12000);
    p.how.war_policy = WarPolicy::hold;
    Bot bot{9990, 7000};
    double at = 0;
    ASSERT_NO_FATAL_FAILURE(fight_until_war(p, bot, at));
    p.check(at, book_of({{"C", 11000}}));
    EXPECT_FALSE(p.last.war.at_war);
    EXPECT_EQ(p.price, 10999);
}

TEST(ScheduleWar, NoPolicyEverPricesBelowTheFloorOrAboveTheCeiling) {
    std::mt19937_64 rng(11);
    for (WarPolicy policy : {WarPolicy::follow, WarPolicy::hold, WarPolicy::keep_margin}) {
        for (int run = 0; run < 200; ++run) {
            const std::int64_t floor = 5000 + static_cast<std::int64_t>(rng() % 3000);
            Product p = product(9000, floor, 12000);
            p.how.war_policy = policy;
            Bot bot{8990, 4000 + static_cast<std::int64_t>(rng() % 4000)};
            for (int i = 0; i < 40; ++i) {
                const std::int64_t other = 6000 + static_cast<std::int64_t>(rng() % 8000);
                p.check(i * 300.0, book_of({{"BOT", bot.price}, {"C", other}}));
                ASSERT_GE(p.price, floor);
                ASSERT_LE(p.price, 12000);
                if (rng() % 4 != 0) bot.answer(p.price);
            }
        }
    }
}

TEST(ScheduleState, TextRoundTripsAndStaysSmall) {
    Product p = product(10000, 8000, 12000);
    p.how.war_policy = WarPolicy::keep_margin;
    Bot bot{9990, 7000};
    for (int i = 0; i < 5; ++i) {
        p.check(1795392173.25 + i * 600, book_of({{"BOT", bot.price}, {"C", 11000}}));
        bot.answer(p.price);
    }
    ASSERT_TRUE(p.state.war);
    const std::string text = to_text(p.state);
    EXPECT_LT(text.size(), 300u) << text;
    auto back = parse_schedule_state(text);
    ASSERT_TRUE(back) << text;
    EXPECT_EQ(to_text(*back), text);
    EXPECT_EQ(back->observations, p.state.observations);
    EXPECT_EQ(back->watched_print, p.state.watched_print);
    EXPECT_EQ(back->position, p.state.position);
    EXPECT_EQ(back->war->rival, "BOT");
    EXPECT_EQ(back->known_rival, "BOT");
    EXPECT_NEAR(back->last_at_s, p.state.last_at_s, 1e-3);
    const double interval = next_interval_s(p.state, p.how.bounds, 1);
    EXPECT_NEAR(next_interval_s(*back, p.how.bounds, 1), interval, interval * 1e-5);
    // The restored state goes on exactly as the original would.
    Product q = p;
    q.state = *back;
    p.check(1795392173.25 + 3600, book_of({{"BOT", bot.price}, {"C", 11000}}));
    q.check(1795392173.25 + 3600, book_of({{"BOT", bot.price}, {"C", 11000}}));
    EXPECT_EQ(p.price, q.price);
    EXPECT_EQ(p.last.reason, q.last.reason);
    EXPECT_NEAR(p.last.interval_s, q.last.interval_s, p.last.interval_s * 1e-5);
}

TEST(ScheduleState, AnythingElseReadsAsNoInformation) {
    for (const char* text :
         {"", "null", "[]", "{}", "{\"v\":2,\"n\":3}", "{\"v\":1,\"n\":-1}",
          "{\"v\":1,\"n\":\"3\"}", "{\"v\":1,\"w\":\"xyz\"}", "{\"v\":1,\"p\":\"sideways\"}",
          "{\"v\":1,\"war\":{\"since\":1}}", "{\"v\":1,\"c\":-1}", "{\"v\":1,", "garbage",
                             // values this code never writes: a time past the year 5000, more
                             // changes or exposure than its memory holds
                             "{\"v\":1,\"t\":1.8e55}", "{\"v\":1,\"c\":2e9}", "{\"v\":1,\"e\":1e11}",
                             "{\"v\":1,\"war\":{\"rival\":\"B\",\"since\":0,\"rm\":-1e12}}"}) {
        EXPECT_FALSE(parse_schedule_state(text)) << text;
    }
    EXPECT_FALSE(parse_schedule_state(std::string_view("{\"v\":1}\0x", 9)));
    auto minimal = parse_schedule_state("{\"v\":1}");
    ASSERT_TRUE(minimal);
    EXPECT_EQ(minimal->observations, 0);
    EXPECT_DOUBLE_EQ(base_interval_s(*minimal, {30, 7200, 900}), 900);
}

TEST(ScheduleState, AClockSteppingBackUndoesNothing) {
    Product p = product(1000, 800, 1500);
    for (int i = 0; i < 10; ++i) p.check(10000 + i * 900.0, book_of({{"A", 1100 + (i % 2)}}));
    const ScheduleState before = p.state;
    p.check(5000, book_of({{"A", 1100}}));  // earlier than the last check
    EXPECT_EQ(p.state.last_at_s, before.last_at_s);
    EXPECT_GE(p.state.exposure_s, 0);
    EXPECT_GT(p.last.interval_s, 0);
    p.check(std::nan(""), book_of({{"A", 1100}}));
    EXPECT_TRUE(std::isfinite(p.last.interval_s));
    EXPECT_TRUE(std::isfinite(p.state.last_at_s));
}

TEST(ScheduleState, AClockSteppingBackADayOrMoreMovesTheStateWithIt) {
    Product p = product(10000, 8000, 12000);
    p.how.war_policy = WarPolicy::hold;
    Bot bot{9990, 7000};
    double at = 1795392173;
    ASSERT_NO_FATAL_FAILURE(fight_until_war(p, bot, at));
    const ScheduleState before = p.state;
    // The clock is now a year earlier (a restored server): ten minutes later on that clock.
    const double year = 365 * 86400.0;
    p.check(at - year, book_of({{"BOT", bot.price}, {"C", 11000}}));
    EXPECT_EQ(p.state.last_at_s, at - year);
    EXPECT_TRUE(p.last.war.at_war);
    EXPECT_NEAR(p.state.war->since_s, before.war->since_s - (before.last_at_s - (at - year)), 1e-6);
    EXPECT_DOUBLE_EQ(p.state.exposure_s, before.exposure_s);  // the step teaches no time
    // The war's quiet period still runs on the new clock.
    const double quiet = ScheduleTuning{}.quiet_s;
    p.check(at - year + quiet + 1, book_of({{"BOT", bot.price}, {"C", 11000}}));
    EXPECT_FALSE(p.last.war.at_war);
}

TEST(ScheduleState, NamesParseBack) {
    for (WarPolicy p : {WarPolicy::follow, WarPolicy::hold, WarPolicy::keep_margin})
        EXPECT_EQ(parse_war_policy(war_policy_name(p)), p);
    EXPECT_FALSE(parse_war_policy("yield"));
    EXPECT_STREQ(position_name(Position::behind_at_floor), "behind_at_floor");
}

}  // namespace
}  // namespace demper::core
