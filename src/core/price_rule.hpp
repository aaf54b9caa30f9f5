// price_rule: the pricing decision, a pure and deterministic function of
// (current price, rule, offer book). No clocks, no randomness, no I/O; the result does not depend
// on the order of the offers in the book.
//
// ── Competitors ─────────────────────────────────────────────────────────────────────────────────
// The competitors are the book's offers minus, in this order:
//   1. offers whose merchant_id is in `excluded_merchants` (exact match): why = excluded_merchant
//      (the seller's own stores and its ignore list);
//   2. if `max_delivery_rank` is set, offers whose delivery_rank() is greater (an empty or unknown
//      deliveryDuration has rank 7, so it is dropped by any max_delivery_rank < 7): slow_delivery;
//   3. if `outlier_share` is set (finite and > 0; values above 1 count as 1), offers priced below
//      share × median of the kOutlierSample cheapest remaining offers (for an even count the median
//      is the mean of the two middle prices): outlier. The median offer itself is never dropped, so
//      this filter cannot empty a non-empty list.
// The rest is sorted by price ascending, ties by merchant_id, merchant_name, delivery_duration.
// `excluded` lists the dropped offers sorted the same way.
//
// ── Strategy target ─────────────────────────────────────────────────────────────────────────────
//   undercut       target = cheapest − step                  (reference: the cheapest)
//   match          target = cheapest                         (reference: the cheapest)
//   follow_second  target = cheapest + step                  (reference: the cheapest)
//   position N     target = N-th cheapest − step             (reference: the N-th; N < 1 counts as
//   1)
//                  With fewer than N competitors the seller is already at position ≤ N whatever it
//                  charges above the last one, so: target = max_price when set (take the margin),
//                  else the most expensive competitor − step (never the dearest offer without an
//                  explicit ceiling). Reference: the most expensive competitor.
// step = `step` (values < 1 count as 1); if `step_percent` > 0, step = ceil(reference price ×
// step_percent / 100), at least 1. Percentages are rounded to 1e-6 % and applied in exact integer
// arithmetic (1000 ₸ × 1.1 % is 11 ₸, not 12).
//
// ── Bounds ──────────────────────────────────────────────────────────────────────────────────────
// floor   = max(min_price, cost floor, kMarketplaceMinPrice), where the cost floor (when cost_price
//           is set) is ceil(cost_price × (1 + min_margin_percent / 100)); no margin (or a NaN one)
//           means 0 %, i.e. the floor is the cost itself. A margin without a cost is ignored.
//           A clamp to the floor is reported as `marketplace_min` when the 10 ₸ minimum is what set
//           the floor, else as `floor`.
// ceiling = max_price when set. If the floor is above it (misconfiguration: min_price > max_price,
//           or the cost floor above max_price) the floor wins, the ceiling is treated as equal to
//           the floor and `floor_above_ceiling` says so; a clamp down to it is then reported as a
//           floor clamp (`floor` or `marketplace_min`), not as `ceiling`.
// max_change cap = max(1, floor(|current| × max_change_percent / 100)) tenge when the percentage
//           is > 0; 0 (the price may not move) when it is 0, negative or NaN; +inf means no cap.
//
// ── Steps (in this order) ───────────────────────────────────────────────────────────────────────
//   1. No competitors: to_max → value = max_price when set, else the current price;
//      hold → value = the current price. (target stays empty unless max_price is used.)
//   2. Otherwise value = target; if target < floor: go_to_floor → value = floor (clamp `floor`);
//      hold → value = the current price (the "floor hold").
//   3. value < floor → floor (clamp). This is what moves a held or unchanged price that sits below
//      a floor that has since been raised, and a max_price below the floor.
//   4. value > ceiling → ceiling (clamp `ceiling`).
//   5. max_change: value outside [current − cap, current + cap] → the nearer end (clamp
//      `max_change`), then steps 3 and 4 again: the floor and the ceiling always beat the guard,
//      and the floor beats the ceiling.
// So for ANY input (current price 0 or negative, min > max, huge values, huge steps) the new price
// is ≥ floor ≥ 10, and ≤ ceiling unless the floor is above the ceiling (then it is the floor).
// All arithmetic is done in 128 bits and saturated to int64: nothing overflows.
//
// ── Reason (one primary code; the first rule that applies wins) ─────────────────────────────────
//   1. clamps not empty → the bound of the LAST clamp (the one that set the final value):
//        floor / marketplace_min → at_floor; ceiling → ceiling; max_change → max_change_capped.
//   2. no competitors → no_competitors_to_max / no_competitors_hold (even if the price is
//   unchanged).
//   3. the floor hold happened → floor_hold.
//   4. the new price is the floor and the target was the floor → at_floor.
//   5. an outlier was dropped and that changed the reference offer → outlier_ignored.
//   6. the new price is above the current one → raised_to_competitor.
//   7. the new price equals the current one → unchanged.
//   8. otherwise the strategy: undercut / match / position / follow_second.
// `floor_hit` is true when the floor stopped the price: some clamp to the floor (or to the 10 ₸
// minimum) happened, or the floor hold kept the price. It is what "demping does not work" means.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/offers.hpp"

namespace demper::core {

enum class Strategy { undercut, match, position, follow_second };
enum class FloorAction { go_to_floor, hold };
enum class NoCompetitorAction { to_max, hold };

constexpr std::int64_t kMarketplaceMinPrice = 10;  // Kaspi's own minimum price, tenge
constexpr int kOutlierSample = 5;                  // offers the outlier median is taken over

struct PricingRule {
    Strategy strategy = Strategy::undercut;
    std::int64_t step = 1;    // amount in tenge, >= 1
    double step_percent = 0;  // if > 0: step = ceil(reference × % / 100), >= 1
    int position = 1;         // Strategy::position: undercut the N-th cheapest
    std::int64_t min_price = kMarketplaceMinPrice;
    std::optional<std::int64_t> max_price;
    std::optional<std::int64_t> cost_price;  // floor = ceil(cost × (1 + margin / 100))
    std::optional<double> min_margin_percent;
    FloorAction floor_action = FloorAction::go_to_floor;
    NoCompetitorAction no_competitor_action = NoCompetitorAction::to_max;
    std::optional<double> max_change_percent;     // at most this % move from the current price
    std::optional<double> outlier_share;          // drop offers below share × median of the sample
    std::optional<int> max_delivery_rank;         // drop competitors whose delivery_rank is greater
    std::vector<std::string> excluded_merchants;  // own merchant ids (all stores) + ignore list
};

enum class Reason {
    undercut,
    match,
    position,
    follow_second,
    raised_to_competitor,
    floor_hold,
    at_floor,
    ceiling,
    no_competitors_to_max,
    no_competitors_hold,
    max_change_capped,
    outlier_ignored,
    unchanged,
};

enum class Bound { marketplace_min, floor, ceiling, max_change };

enum class ExcludeWhy { excluded_merchant, slow_delivery, outlier };

struct Clamp {
    Bound bound = Bound::floor;
    std::int64_t before = 0;
    std::int64_t after = 0;
};

struct ExcludedOffer {
    std::string merchant_id;
    std::int64_t price = 0;
    ExcludeWhy why = ExcludeWhy::excluded_merchant;
};

struct PriceDecision {
    std::int64_t current_price = 0;
    std::int64_t new_price = 0;
    bool changed = false;                          // new_price != current_price
    std::optional<std::int64_t> target;            // the strategy's raw target, before clamps
    std::optional<std::int64_t> competitor_price;  // the reference offer the rule reacted to
    std::optional<std::string> competitor_merchant;
    Reason reason = Reason::unchanged;
    std::vector<Clamp> clamps;            // in the order they were applied
    std::vector<ExcludedOffer> excluded;  // sorted by price, merchant id
    bool floor_hit = false;
    bool floor_above_ceiling = false;           // min/cost floor > max_price: the floor won
    std::int64_t floor = kMarketplaceMinPrice;  // the effective floor
    std::optional<std::int64_t> ceiling;        // the effective ceiling (>= floor)
    std::int64_t step = 0;                      // the step used (0 for match / no competitors)
    int competitors = 0;                        // offers left after the exclusions
};

bool operator==(const Clamp& a, const Clamp& b);
bool operator!=(const Clamp& a, const Clamp& b);
bool operator==(const ExcludedOffer& a, const ExcludedOffer& b);
bool operator!=(const ExcludedOffer& a, const ExcludedOffer& b);
bool operator==(const PriceDecision& a, const PriceDecision& b);
bool operator!=(const PriceDecision& a, const PriceDecision& b);

PriceDecision decide_price(std::int64_t current_price, const PricingRule& rule,
                           const OfferBook& book);

// competitors_of returns the offers the rule considers, filtered and sorted as decide_price does;
// `excluded` (when non-null) receives the dropped ones.
std::vector<Offer> competitors_of(const PricingRule& rule, const OfferBook& book,
                                  std::vector<ExcludedOffer>* excluded = nullptr);

// effective_floor is max(min_price, cost floor, kMarketplaceMinPrice), as documented above.
std::int64_t effective_floor(const PricingRule& rule);

// validate_rule returns a short lower-case description of the first configuration problem
// (step < 1, min_price > max_price, ...), or an empty string. decide_price accepts invalid rules
// anyway (and keeps the floor); this is for the SQL layer to reject them early.
std::string validate_rule(const PricingRule& rule);

// snake_case names, used in JSON and SQL. The parse_* functions accept exactly these names.
const char* reason_name(Reason reason);
const char* bound_name(Bound bound);
const char* exclude_why_name(ExcludeWhy why);
const char* strategy_name(Strategy strategy);
const char* floor_action_name(FloorAction action);
const char* no_competitor_action_name(NoCompetitorAction action);
std::optional<Strategy> parse_strategy(std::string_view name);
std::optional<FloorAction> parse_floor_action(std::string_view name);
std::optional<NoCompetitorAction> parse_no_competitor_action(std::string_view name);

// decision_to_json explains a decision in one compact JSON object:
// {"current_price","new_price","changed","reason","target","competitor_price","competitor_merchant",
//  "floor","ceiling","floor_hit","floor_above_ceiling","step","clamps":[{"bound","before","after"}],
//  "competitors":[{"merchant_id","merchant_name","price","delivery"}],
//  "excluded":[{"merchant_id","price","why"}], "rule":{...every PricingRule field...}}
// Absent optionals and non-finite numbers are written as null. `book` must be the book the
// decision was made from (the competitors are recomputed from it).
std::string decision_to_json(const PriceDecision& decision, const PricingRule& rule, const OfferBook& book,
                             std::size_t max_listed = 10);

}  // namespace demper::core
