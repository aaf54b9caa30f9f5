// Unit tests for core/schedule: the adaptive interval, the pressure solver, price-war detection and
// policies, and the state's text form.
#include "core/schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
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

// to_text_of lists every field of a tuning, to compare two tunings whole.
std::string to_text_of(const ScheduleTuning& t) {
    std::string out;
    for (double v : {t.request_worth_s, t.rate_memory_s, t.prior_changes, t.prior_rate_per_s,
                     double(t.min_observations), double(t.watched_offers), t.raise_weight, t.other_change_weight,
                     t.thin_margin_share, t.stake_first_thin, t.stake_behind, t.stake_first_clear,
                     t.stake_behind_at_floor, t.stake_alone, t.war_stake, t.war_follow_stake,
                     double(t.war_rounds_are_changes), double(t.war_rounds), double(t.war_rounds_known),
                     t.war_cut_share, t.round_gap_s, t.quiet_s, t.quiet_max_s, t.deadline_slack_share,
                     t.jitter_share})
    {
        char text[32];
        std::snprintf(text, sizeof text, "%.17g ", v);
        out += text;
    }
    return out;
}

// ── When the pressure falls ──────────────────────────────────────────────────────────────────

TEST(ScheduleBringForward, OnlyAFallBeyondTheRatioCounts) {
    EXPECT_TRUE(pressure_fell(4, 3.19));
    EXPECT_FALSE(pressure_fell(4, 3.2));  // 4 / 1.25: not beyond
    EXPECT_FALSE(pressure_fell(4, 3.5));
    EXPECT_FALSE(pressure_fell(1, 8));  // a rise
    EXPECT_TRUE(pressure_fell(1, 0.5));
    // A pressure that is not a positive finite number counts as 1.
    for (double odd : {std::nan(""), std::numeric_limits<double>::infinity(), 0.0, -2.0}) {
        EXPECT_TRUE(pressure_fell(2, odd)) << odd;
        EXPECT_FALSE(pressure_fell(odd, 0.9)) << odd;
        EXPECT_TRUE(pressure_fell(odd, 0.5)) << odd;
    }
    EXPECT_TRUE(pressure_moved(4, 3));
    EXPECT_TRUE(pressure_moved(3, 4));
    EXPECT_FALSE(pressure_moved(4, 3.5));
    EXPECT_FALSE(pressure_moved(3.5, 4));
    EXPECT_FALSE(pressure_moved(std::nan(""), 1.2));
    EXPECT_TRUE(pressure_moved(std::nan(""), 1.3));
}

TEST(ScheduleBringForward, TheSpreadIsTheProductIdsHashInItsRange) {
    // The values SQL computes with ((id & 2147483647) * 2654435761) % 1000 (TAP 024 reads them
    // back from the rows the worker moved).
    EXPECT_DOUBLE_EQ(bring_forward_spread(1), 0.5 + 0.5 * 0.761);
    EXPECT_DOUBLE_EQ(bring_forward_spread(2), 0.5 + 0.5 * 0.522);
    EXPECT_DOUBLE_EQ(bring_forward_spread(1000), 0.5);
    EXPECT_DOUBLE_EQ(bring_forward_spread((1ULL << 31) + 1), bring_forward_spread(1));
    EXPECT_DOUBLE_EQ(bring_forward_spread(static_cast<std::uint64_t>(std::int64_t{-1})), 0.5 + 0.5 * 0.367);
    // Any 1,000 consecutive ids take every one of the 1,000 steps once: no burst.
    std::vector<int> seen(1000, 0);
    for (std::uint64_t id = 123456; id < 123456 + 1000; ++id) {
        const double spread = bring_forward_spread(id);
        ASSERT_GE(spread, 0.5);
        ASSERT_LT(spread, 1.0);
        seen[static_cast<std::size_t>(std::lround((spread - 0.5) * 2000))]++;
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 1000);
}

TEST(ScheduleBringForward, TheLatestNextCheckIsTheBoundedIntervalSpread) {
    const ScheduleTuning tuning;
    const double now = 1.8e9;
    const double spread = bring_forward_spread(7);
    EXPECT_DOUBLE_EQ(latest_next_check_s(now, 100, 30, 7200, 2, 7, tuning), now + 200 * spread);
    EXPECT_DOUBLE_EQ(latest_next_check_s(now, 10000, 30, 7200, 2, 7, tuning), now + 6840 * spread);  // 95 % of the longest
    EXPECT_DOUBLE_EQ(latest_next_check_s(now, 1, 30, 7200, 2, 7, tuning), now + 30 * spread);        // the shortest
    EXPECT_DOUBLE_EQ(latest_next_check_s(now, 100, 300, 200, 2, 7, tuning), now + 200 * spread);     // longest wins
    // A pressure that is not a positive finite number counts as 1.
    for (double odd : {std::nan(""), std::numeric_limits<double>::infinity(), 0.0, -1.0})
        EXPECT_DOUBLE_EQ(latest_next_check_s(now, 100, 30, 7200, odd, 7, tuning), now + 100 * spread) << odd;
    // Monotone in the pressure, for every product.
    for (std::uint64_t id = 1; id < 50; ++id) {
        double last = 0;
        for (double p = kMinPressure; p <= kMaxPressure; p *= 1.1) {
            const double at = latest_next_check_s(now, 90, 30, 7200, p, id, tuning);
            ASSERT_GE(at, last) << id << " " << p;
            last = at;
        }
    }
}

TEST(ScheduleBringForward, NeverLaterNeverEarlierThanHalfTheBoundedInterval) {
    std::mt19937_64 rng(17);
    std::uniform_real_distribution<double> unit(0, 1);
    const ScheduleTuning tuning;
    const double now = 1.8e9;
    int moved = 0, kept = 0;
    for (int i = 0; i < 50000; ++i) {
        const double base = std::exp(unit(rng) * 12);
        const double shortest = std::exp(unit(rng) * 6);
        const double longest = shortest * (0.5 + unit(rng) * 300);
        const double pressure = unit(rng) < 0.05 ? std::nan("") : std::exp(unit(rng) * 8 - 4);
        const double next = now + (unit(rng) * 1.2 - 0.1) * longest;
        const std::uint64_t id = rng();
        const double interval = bounded_interval_s(base, shortest, longest, pressure, tuning);
        const double after = brought_forward_s(next, now, base, shortest, longest, pressure, id, tuning);
        ASSERT_LE(after, next) << i;
        if (after == next) {
            kept++;
            ASSERT_TRUE(next <= now + interval || next > now + std::max(1.0, longest)) << i;
            continue;
        }
        moved++;
        ASSERT_GE(after, now + 0.5 * interval - 1e-6) << i;
        ASSERT_LT(after, now + interval) << i;
        ASSERT_DOUBLE_EQ(after, latest_next_check_s(now, base, shortest, longest, pressure, id, tuning)) << i;
    }
    EXPECT_GT(moved, 5000);
    EXPECT_GT(kept, 5000);
    // Beyond now + longest no pressure put it: a store's closed hours or a user's postponement.
    EXPECT_EQ(brought_forward_s(now + 7201, now, 100, 30, 7200, 1, 3, tuning), now + 7201);
    EXPECT_LT(brought_forward_s(now + 7199, now, 100, 30, 7200, 1, 3, tuning), now + 100);
    EXPECT_EQ(brought_forward_s(now + 100, now, 100, 30, 7200, 1, 3, tuning), now + 100);
}

// ── A simulated market's faster clock ────────────────────────────────────────────────────────

TEST(ScheduleTimeScale, DividesTheTimeConstantsAndMultipliesThePriorRate) {
    const ScheduleTuning plain;
    const ScheduleTuning scaled = time_scaled(plain, 20);
    EXPECT_DOUBLE_EQ(scaled.request_worth_s, plain.request_worth_s / 20);
    EXPECT_DOUBLE_EQ(scaled.rate_memory_s, plain.rate_memory_s / 20);
    EXPECT_DOUBLE_EQ(scaled.round_gap_s, plain.round_gap_s / 20);
    EXPECT_DOUBLE_EQ(scaled.quiet_s, plain.quiet_s / 20);
    EXPECT_DOUBLE_EQ(scaled.quiet_max_s, plain.quiet_max_s / 20);
    EXPECT_DOUBLE_EQ(scaled.prior_rate_per_s, plain.prior_rate_per_s * 20);
    // Nothing else: counts, weights, stakes and shares have no unit of time.
    ScheduleTuning back = scaled;
    back.request_worth_s = plain.request_worth_s;
    back.rate_memory_s = plain.rate_memory_s;
    back.round_gap_s = plain.round_gap_s;
    back.quiet_s = plain.quiet_s;
    back.quiet_max_s = plain.quiet_max_s;
    back.prior_rate_per_s = plain.prior_rate_per_s;
    EXPECT_EQ(to_text_of(back), to_text_of(plain));
    // A scale that is not a finite number of at least 1 counts as 1.
    for (double odd : {std::nan(""), std::numeric_limits<double>::infinity(), 0.5, 0.0, -3.0})
        EXPECT_EQ(to_text_of(time_scaled(plain, odd)), to_text_of(plain)) << odd;
    EXPECT_EQ(to_text_of(time_scaled(plain, 1)), to_text_of(plain));
}

TEST(ScheduleTimeScale, AMarketRunningSTimesFasterGetsIntervalsSTimesShorter) {
    // The same market seen on a clock S times faster, with bounds S times shorter and the tuning
    // scaled by S: the same decisions, wars and base intervals, S times shorter.
    for (double scale : {1.0, 20.0, 240.0}) {
        const ScheduleTuning plain = no_jitter();
        const ScheduleTuning scaled = time_scaled(plain, scale);
        ScheduleState a, b;
        std::int64_t price_a = 10000, price_b = 10000;
        const PricingRule rule = undercut_rule(8000, 12000);
        Bot bot{9990, 8500};
        std::mt19937_64 rng(5);
        std::uniform_real_distribution<double> unit(0, 1);
        double at = 1.7e9;
        int at_war = 0;
        for (int k = 0; k < 60; ++k) {
            at += 300 + unit(rng) * 1800;
            const OfferBook book = book_of({{"BOT", bot.price}, {"C", 11000 + (k % 7 == 0 ? k : 0)}});
            CheckSchedule how_a, how_b;
            how_a.at_s = at;
            how_a.bounds = ScheduleBounds{30, 7200, 900};
            how_b.at_s = at / scale;
            how_b.bounds = ScheduleBounds{30 / scale, 7200 / scale, 900 / scale};
            const ScheduledDecision da = decide_and_schedule(a, price_a, rule, book, how_a, plain);
            const ScheduledDecision db = decide_and_schedule(b, price_b, rule, book, how_b, scaled);
            ASSERT_EQ(da.decision.new_price, db.decision.new_price) << scale << " " << k;
            ASSERT_EQ(da.war.at_war, db.war.at_war) << scale << " " << k;
            at_war += da.war.at_war ? 1 : 0;
            ASSERT_NEAR(db.base_interval_s * scale, da.base_interval_s, da.base_interval_s * 1e-9) << scale << " " << k;
            ASSERT_NEAR(db.interval_s * scale, da.interval_s, da.interval_s * 1e-9) << scale << " " << k;
            a = da.state;
            b = db.state;
            price_a = da.decision.new_price;
            price_b = db.decision.new_price;
            if (k % 6 != 5) bot.answer(price_a);  // five answers, then a pause that ends the war or its rounds
        }
        EXPECT_GT(at_war, 0) << scale;  // the bot's loop was a war at times: the war's clock scaled too
    }
}

}  // namespace
}  // namespace demper::core
