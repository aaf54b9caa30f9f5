// schedule: when to check a product next, and what to do when it is caught in a price war. Pure
// and deterministic: no clock (every time is passed in, seconds on any one clock the caller keeps,
// e.g. unix seconds), no randomness, no I/O.
//
// Vocabulary. A product's *schedule state* (ScheduleState) is what its past checks taught: how
// often its *watched offers* (the cheapest competitors, whose moves can change the seller's
// position) changed, where the seller stood after the last decision, and the price-war loop it may
// be in. A check's *observation* is what the check saw before deciding. *Pressure* is the one
// global number that stretches (above 1) or shrinks (below 1) every product's interval so that
// the whole catalogue's demand fits the request budget. A *round* is one turn of an undercutting
// loop: the seller undercut rival R, and by its next check R had undercut the seller back by about
// a step. A *price war* is several rounds in a row with the same rival.
//
// ── How the interval is chosen ──────────────────────────────────────────────────────────────────
// A rival's undercut costs the seller first place until its next check; with undercuts coming at
// rate λ (per second) and a check every I seconds, the seller loses about λ·I/2 of each second,
// and pays 1/I requests per second. Minimising the loss over the whole catalogue for a fixed
// number of requests gives the square-root rule (the Lagrange condition of that sum):
//     base     = sqrt(2 · request_worth_s / (λ · stake))
//     interval = clamp(base · pressure · jitter, shortest, longest · (1 − deadline_slack_share))
// - λ: the rate of changes of the watched offers (the `watched_offers` cheapest competitors, a
//   running war's rival left out), each change weighed by what it did: 1 when it undercut the
//   seller's first place, `raise_weight` when it raised the cheapest, `other_change_weight` for
//   any other move among them; a round counts 1 (`war_rounds_are_changes`). An exponentially
//   weighted average over the checks (memory `rate_memory_s`); a changed interval counts the
//   changes a long interval hides (λΔ / (1 − e^(−λΔ)), at most 3); a prior of `prior_rate_per_s`
//   with the weight of `prior_changes` changes.
// - stake: what a move would cost the seller where it stands after the decision (Position below):
//   1 when it is first by a thin margin or behind and able to answer; less when first by a wide
//   margin, alone, or behind at its floor (only a rival's raise can change that). At war: the
//   seller undercut the rival again (follow) `war_follow_stake`, each check buying the seconds the
//   rival takes to answer; it did not (hold, keep_margin) `war_stake`: answering the rival faster
//   only feeds the loop.
// - Until `min_observations` checks were seen there is no information: the base is
//   ScheduleBounds::default_s (demper.check_interval).
// - pressure: solve_pressure finds the one value that makes the catalogue's demand equal the
//   budget. Stretching every base by the same factor is the optimum of the square-root rule; in
//   seconds it stretches low-value products most, and they reach their longest interval first.
// - The longest bound is aimed `deadline_slack_share` short (5 %: the time a due product may wait
//   for its turn under the rate limit), so checks are never further apart than `longest` while the
//   budget can carry every product at its longest; and each interval is spread by ±jitter_share/2
//   from a hash of the state (deterministic), or the products that share an interval (all those at
//   their longest) would come due in the same bursts forever.
//
// ── Price war (DOMAIN.md §4: two repricers undercutting each other toward their floors) ──────────
// Round: the last decision moved the seller down below the cheapest competitor R, and this check
// finds R (still the cheapest) lower than it was and at most max(3 steps, war_cut_share of the
// seller's price) below the seller's price. A check where R did not answer, or where another
// merchant leads, ends the run of rounds; rounds more than `round_gap_s` apart do not add up.
// `war_rounds` rounds in a row (`war_rounds_known` with a rival already met in a war) declare the
// war. It ends when the rival is no longer among the competitors, or when the rival's price has
// not moved for its quiet period: quiet_s, doubled for every earlier war with the same rival (a
// bot that restarts the loop every time waits longer each time), at most quiet_max_s. The store's WarPolicy says what a war does to the decision:
//   follow       decide as always (today's behaviour); explain() still names the war.
//   hold         never lower the price below where it is while the war lasts (raises still
//                follow the market): reason price_war_hold when that held the price.
//   keep_margin  decide as if the rival were not there (it joins the excluded merchants for this
//                decision): the price follows the rest of the market, usually back up toward the
//                next competitor, and the rival is left to sit one step under it: reason
//                price_war_keep_margin when that changed the outcome.
//
// ── Storage ─────────────────────────────────────────────────────────────────────────────────────
// to_text writes a state as one compact JSON object (about 150-250 bytes); parse_schedule_state
// reads it back, and reads anything else (NULL's empty text, garbage, another version) as "no
// information yet". It is meant for one text column of the product row (not indexed: the apply's
// update stays HOT).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/offers.hpp"
#include "core/price_rule.hpp"

namespace demper::core {

// Where the seller stands after a decision, against the competitors that decision considered.
enum class Position {
    unknown,          // no decision seen yet
    alone,            // no competitor
    first_clear,      // cheapest by more than the thin margin
    first_thin,       // cheapest by at most the thin margin (what undercutting by a step leaves)
    behind,           // not the cheapest, and above its floor
    behind_at_floor,  // not the cheapest, at its floor: only a rival's raise can change that
};

enum class WarPolicy { follow, hold, keep_margin };

// Tuning of the policy. The defaults are what bench/market_sim chose (bench/README.md, "Adaptive
// schedule"); the worker uses them as they are.
struct ScheduleTuning {
    double request_worth_s = 112.5;         // product-seconds of first place one request is worth
    double rate_memory_s = 3 * 86400.0;     // how fast old observations fade (e-folding time)
    double prior_changes = 0.2;             // weight of the prior, in changes
    double prior_rate_per_s = 1 / 10800.0;  // the prior: one change of the watched offers per 3 h
    int min_observations = 2;               // fewer checks than this: no information yet
    int watched_offers = 3;                 // the cheapest competitors whose changes count
    double raise_weight = 0.3;              // a change that raised the cheapest counts this much,
    double other_change_weight = 0.1;       // any other change of the watched offers this much
                                            // (an undercut of a first place counts 1)
    double thin_margin_share = 0.01;        // first by at most max(2 steps, 1 % of the price): thin
    double stake_first_thin = 1.0;
    double stake_behind = 1.0;
    double stake_first_clear = 0.25;
    double stake_behind_at_floor = 0.15;
    double stake_alone = 0.25;
    double war_stake = 0.1;              // at war, the seller did not undercut the rival again
    double war_follow_stake = 0.5;       // at war, the seller undercut the rival again (follow)
    bool war_rounds_are_changes = true;  // under follow, a round counts as a change
    int war_rounds = 3;
    int war_rounds_known = 2;
    double war_cut_share = 0.05;  // a rival's cut of up to 5 % below the seller is a step
    double round_gap_s = 6 * 3600.0;
    double quiet_s = 1800.0;
    double quiet_max_s = 24 * 3600.0;
    double deadline_slack_share = 0.05;  // intervals aim at most at longest × (1 − this)
    double jitter_share = 0.1;           // each interval spread by ±jitter_share / 2
};

// Bounds of one product's interval, in seconds. default_s is the "no information yet" interval
// (demper.check_interval, or the product's own check_interval). longest wins over shortest when
// they cross; default_s is clamped into [shortest, longest].
struct ScheduleBounds {
    double shortest_s = 30;
    double longest_s = 7200;
    double default_s = 900;
};

// The price-war loop a product is in, if any.
struct PriceWar {
    std::string rival;             // merchant id of the other seller in the loop
    double since_s = 0;            // when the war was declared
    std::int64_t from_price = 0;   // the seller's price when the rounds began
    std::int64_t rival_price = 0;  // the rival's price when last seen
    double rival_moved_s = 0;      // when the rival's price last changed (or the war began)
};

struct ScheduleState {
    int observations = 0;             // checks seen (saturates at 1,000,000)
    double last_at_s = 0;             // when the last one was made
    double changes = 0;               // decayed count of intervals that saw the watched offers move
    double exposure_s = 0;            // decayed time those intervals covered
    std::uint64_t watched_print = 0;  // fingerprint of the watched offers last seen (0: none)
    Position position = Position::unknown;
    std::int64_t own_price = 0;  // the seller's price after the last decision
    std::string leader;          // the cheapest competitor at the last check ("" when none)
    std::int64_t leader_price = 0;
    bool undercut_leader = false;        // the last decision moved down below the leader
    int rounds = 0;                      // rounds in a row with `leader`
    double round_at_s = 0;               // when the last round was seen
    std::int64_t rounds_from_price = 0;  // the seller's price before the first of those rounds
    std::optional<PriceWar> war;
    std::string known_rival;  // the rival of the latest war, kept after it ends
    int wars_with_known_rival = 0;
};

// What one check saw, before its decision.
struct Observation {
    double at_s = 0;                 // when the check was claimed
    std::int64_t own_price = 0;      // the seller's price as the check found it (product.price)
    std::int64_t step = 1;           // the rule's step in tenge (the war's "by a step")
    std::vector<Offer> competitors;  // competitors_of(rule, book): cheapest first
};

// observation_of builds the Observation of a check from the rule and the book it decides on.
Observation observation_of(double at_s, std::int64_t own_price, const PricingRule& rule,
                           const OfferBook& book);

// observe folds one check's observation into the state: change rate, rounds, war start and end.
// Observations must come in time order; one earlier than the state's last is taken as made at the
// same time (a clock step back must not undo what was learnt).
ScheduleState observe(const ScheduleState& state, const Observation& seen,
                      const ScheduleTuning& tuning = {});

struct WarVerdict {
    bool at_war = false;
    WarPolicy policy = WarPolicy::follow;
    std::string rival;
    double since_s = 0;
    int wars_with_rival = 0;  // this one included
    std::int64_t from_price = 0;
};

// war_verdict is what the war (if any) of an observed state means for this check's decision.
WarVerdict war_verdict(const ScheduleState& observed, WarPolicy policy);

// record_decision remembers where the decision left the seller (for the next round and the
// stake). `considered` are the competitors the decision was made against (competitors_of the rule
// it was decided with: under keep_margin, without the rival).
ScheduleState record_decision(const ScheduleState& observed, const PriceDecision& decision,
                              const std::vector<Offer>& considered,
                              const ScheduleTuning& tuning = {});

// change_rate_per_s is the estimate λ of the state (the prior when nothing was seen).
double change_rate_per_s(const ScheduleState& state, const ScheduleTuning& tuning = {});

// base_interval_s is the interval at pressure 1, before the bounds (default_s while there is no
// information): what solve_pressure needs per product.
double base_interval_s(const ScheduleState& state, const ScheduleBounds& bounds,
                       const ScheduleTuning& tuning = {});

// next_interval_s = clamp(base_interval_s · pressure · jitter, shortest, longest × (1 − slack)),
// jitter in [1 − jitter_share / 2, 1 + jitter_share / 2) from a hash of the state. A pressure that
// is not a positive finite number counts as 1.
double next_interval_s(const ScheduleState& state, const ScheduleBounds& bounds, double pressure,
                       const ScheduleTuning& tuning = {});

// One group of products for the pressure solver: `products` products with this base interval
// and these bounds (the worker groups rows by rounded base interval and bounds).
struct DemandGroup {
    double base_interval_s = 900;
    double shortest_s = 30;
    double longest_s = 7200;
    double products = 1;
};

constexpr double kMinPressure = 1.0 / 64;
constexpr double kMaxPressure = 64;

// demand_per_s is the checks per second the groups ask for at `pressure`.
double demand_per_s(const std::vector<DemandGroup>& groups, double pressure,
                    const ScheduleTuning& tuning = {});

// solve_pressure returns the pressure in [kMinPressure, kMaxPressure] at which the demand equals
// `budget_per_s` (requests per second for checks), or the nearest end when it cannot (every
// product at its shortest interval still asks for less; or at their longest for more: then the
// rate limit makes products late and the due queue serves the oldest first). 1 when there are no
// groups or the budget is not a positive finite number.
double solve_pressure(const std::vector<DemandGroup>& groups, double budget_per_s,
                      const ScheduleTuning& tuning = {});

// What one check gives the worker to write.
struct ScheduledDecision {
    PriceDecision decision;  // the price to write, after the war policy
    std::string reason;      // the reason code to store: price_war_hold / price_war_keep_margin
                             // when the war policy changed the outcome, else the rule's reason
    WarVerdict war;
    ScheduleState state;    // the product's new state (to_text it into its column)
    double interval_s = 0;  // the next check, this long after this check's claim
    double base_interval_s = 0;
};

struct CheckSchedule {
    double at_s = 0;  // when the check was claimed
    WarPolicy war_policy = WarPolicy::follow;
    ScheduleBounds bounds;
    double pressure = 1;
};

// decide_and_schedule is decide_price with the schedule around it: observe, war verdict, the
// decision under the war policy, record_decision, next interval. For a check that succeeded only
// (a failed check teaches nothing: keep the state, back off as before).
ScheduledDecision decide_and_schedule(const ScheduleState& state, std::int64_t current_price,
                                      const PricingRule& rule, const OfferBook& book,
                                      const CheckSchedule& how, const ScheduleTuning& tuning = {});

// schedule_explain_json is the "schedule" member for explain(): compact JSON
// {"interval_s","base_interval_s","pressure","change_rate_per_h","observations","position",
//  "rounds","war":null|{"rival","since","from_price","policy","wars_with_rival"}}.
std::string schedule_explain_json(const ScheduledDecision& scheduled, double pressure,
                                  const ScheduleTuning& tuning = {});

std::string to_text(const ScheduleState& state);
// parse_schedule_state reads what to_text wrote; nullopt for anything else (empty, garbage,
// another format version): the caller starts from ScheduleState{} ("no information yet").
std::optional<ScheduleState> parse_schedule_state(std::string_view text);

const char* position_name(Position position);
const char* war_policy_name(WarPolicy policy);  // follow, hold, keep_margin
std::optional<WarPolicy> parse_war_policy(std::string_view name);
constexpr const char* kReasonWarHold = "price_war_hold";
constexpr const char* kReasonWarKeepMargin = "price_war_keep_margin";

// ── When the pressure falls ──────────────────────────────────────────────────────────────────
// A check is scheduled with the pressure of its moment and stays where it was put: when the
// pressure then falls (a fresh catalogue whose products leave "no information yet" for their own,
// longer bases; a larger budget), the products checked under the old one would wait up to their
// longest interval while the budget goes unspent. The worker brings such products forward, to the
// latest next check the new pressure allows, spread over [kBringForwardSpreadLow, 1) of it by a
// hash of the product id (they were scheduled at various moments; without the spread they would
// all come due in one burst). The same formula runs in SQL (pg/catalog_housekeeping.cpp), its constants passed
// from here.
constexpr double kBringForwardRatio = 1.25;  // a fall by more than this brings products forward
constexpr double kBringForwardSpreadLow = 0.5;
// The spread's hash: ((product_id & mask) · multiplier) mod buckets (Knuth's multiplicative hash;
// the mask keeps the product within a signed 64-bit integer, as SQL's bigint needs).
constexpr std::uint64_t kProductHashMask = 0x7FFFFFFF;
constexpr std::uint64_t kProductHashMultiplier = 2654435761ULL;
constexpr std::uint64_t kProductHashBuckets = 1000;

// pressure_fell says whether `new_pressure` is below `scheduled_at_pressure` / kBringForwardRatio
// (pressures that are not positive finite numbers count as 1).
bool pressure_fell(double scheduled_at_pressure, double new_pressure);
// pressure_moved says whether the pressure changed by more than kBringForwardRatio either way
// (then the worker measures it again sooner).
bool pressure_moved(double before, double after);
// bring_forward_spread is the product's share of the bounded interval, in [kBringForwardSpreadLow, 1).
double bring_forward_spread(std::uint64_t product_id);
// bounded_interval_s = clamp(base · pressure, shortest, longest · (1 − slack)): the interval the
// pressure asks for, without jitter (a base or pressure that is not a positive finite number: the
// longest, and 1).
double bounded_interval_s(double base_interval_s, double shortest_s, double longest_s, double pressure,
                          const ScheduleTuning& tuning = {});
// latest_next_check_s is the latest next check a product scheduled at a higher pressure may keep:
// now + bounded_interval_s · bring_forward_spread(product_id). The worker moves a next check that
// lies beyond now + bounded_interval_s to min(next check, this).
double latest_next_check_s(double now_s, double base_interval_s, double shortest_s, double longest_s,
                           double pressure, std::uint64_t product_id, const ScheduleTuning& tuning = {});
// brought_forward_s is a product's next check after a fall of the pressure: min(next_check_s,
// latest_next_check_s) when it lies beyond now + bounded_interval_s, else unchanged; also
// unchanged beyond now + longest, where no pressure put it (a store's closed hours, a user's
// postponement). Never later than next_check_s.
double brought_forward_s(double next_check_s, double now_s, double base_interval_s, double shortest_s,
                         double longest_s, double pressure, std::uint64_t product_id,
                         const ScheduleTuning& tuning = {});

// time_scaled is the tuning for a simulated market whose clock runs `scale` times faster than the
// caller's (demper.schedule_time_scale): every time constant divided by it, the prior rate
// multiplied by it; a scale that is not a finite number of at least 1 counts as 1.
ScheduleTuning time_scaled(const ScheduleTuning& tuning, double scale);


}  // namespace demper::core
