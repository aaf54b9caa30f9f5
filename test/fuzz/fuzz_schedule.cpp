// libFuzzer target: bytes → a product's schedule state as stored (parse_schedule_state), then one
// check decided and scheduled from it.
//
// The state is text in a product column: whatever is found there must never crash the worker,
// never put a price below the floor and never schedule outside the bounds. Properties checked with
// __builtin_trap() for any input:
//   - a state that parses writes back (to_text) into text that parses to the same text again;
//   - from any parsed state (or none), decide_and_schedule under each war policy prices within
//     [floor, ceiling], returns a finite interval within [shortest, longest], and a state that
//     round-trips through its text.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/schedule.hpp"

namespace {

using namespace demper::core;

void check(bool condition) {
    if (!condition) __builtin_trap();
}

OfferBook book_from(const std::uint8_t* data, std::size_t size) {
    OfferBook book;
    // The last bytes pick a few competitors' prices around 10,000 ₸ (and the seller's own offer).
    const std::size_t take = size < 8 ? size : 8;
    for (std::size_t i = 0; i < take; ++i) {
        const std::int64_t price = 8000 + static_cast<std::int64_t>(data[size - 1 - i]) * 20;
        book.offers.push_back({i == 0 ? "OWN" : "M" + std::to_string(i % 5), "", price, "TOMORROW"});
    }
    book.total = static_cast<std::int64_t>(book.offers.size());
    return book;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::optional<ScheduleState> parsed = parse_schedule_state(text);
    if (parsed) {
        const std::string written = to_text(*parsed);
        const std::optional<ScheduleState> again = parse_schedule_state(written);
        check(again.has_value());
        check(to_text(*again) == written);
    }
    const ScheduleState state = parsed.value_or(ScheduleState{});
    PricingRule rule;
    rule.min_price = 9000;
    rule.max_price = 12000;
    rule.excluded_merchants = {"OWN"};
    const OfferBook book = book_from(data, size);
    const ScheduleBounds bounds{30, 7200, 900};
    for (WarPolicy policy : {WarPolicy::follow, WarPolicy::hold, WarPolicy::keep_margin}) {
        CheckSchedule how;
        how.at_s = 1795392173.0 + static_cast<double>(size);
        how.war_policy = policy;
        how.bounds = bounds;
        how.pressure = size % 3 == 0 ? 0.5 : 2.0;
        const ScheduledDecision sd = decide_and_schedule(state, 10000, rule, book, how);
        check(sd.decision.new_price >= 9000 && sd.decision.new_price <= 12000);
        check(std::isfinite(sd.interval_s) && sd.interval_s >= 30 && sd.interval_s <= 7200);
        const std::optional<ScheduleState> stored = parse_schedule_state(to_text(sd.state));
        check(stored.has_value());
        check(!sd.reason.empty());
    }
    return 0;
}
