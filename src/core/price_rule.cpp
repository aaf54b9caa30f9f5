// price_rule: see price_rule.hpp for the semantics; this file follows its steps in order.
#include "core/price_rule.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

namespace demper::core {

namespace {

using i128 = __int128;

constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();

// Percentages are handled as integer micro-percent (1 % = 1'000'000), so that 100 % = 1e8.
constexpr std::int64_t kMicroPerPercent = 1'000'000;
constexpr std::int64_t kMicroHundredPercent = 100 * kMicroPerPercent;
// ±1e9 %: beyond any sensible setting, and small enough that int64 × (1e8 + this) fits in 128 bits.
constexpr std::int64_t kMicroLimit = 1'000'000'000 * kMicroPerPercent;

std::int64_t saturate(i128 v) {
    if (v > static_cast<i128>(kI64Max)) return kI64Max;
    if (v < static_cast<i128>(kI64Min)) return kI64Min;
    return static_cast<std::int64_t>(v);
}

// to_micro converts a finite or infinite percentage to micro-percent within ±kMicroLimit.
// NaN maps to `nan_value`.
std::int64_t to_micro(double percent, std::int64_t nan_value) {
    if (std::isnan(percent)) return nan_value;
    const double limit = static_cast<double>(kMicroLimit / kMicroPerPercent);
    if (percent >= limit) return kMicroLimit;
    if (percent <= -limit) return -kMicroLimit;
    return static_cast<std::int64_t>(std::llround(percent * static_cast<double>(kMicroPerPercent)));
}

// ceil(a / b) for b > 0.
i128 ceil_div(i128 a, i128 b) {
    i128 q = a / b;
    if (a % b != 0 && a > 0) ++q;
    return q;
}

std::int64_t cost_floor(const PricingRule& rule) {
    if (!rule.cost_price) return kI64Min;
    const std::int64_t margin = rule.min_margin_percent ? to_micro(*rule.min_margin_percent, 0) : 0;
    const i128 scaled = static_cast<i128>(*rule.cost_price) * (kMicroHundredPercent + margin);
    return saturate(ceil_div(scaled, kMicroHundredPercent));
}

// The floor as configured (min_price and cost), before the marketplace minimum.
std::int64_t configured_floor(const PricingRule& rule) {
    return std::max(rule.min_price, cost_floor(rule));
}

std::int64_t step_for(const PricingRule& rule, std::int64_t reference_price) {
    if (rule.step_percent > 0) {  // false for NaN
        const i128 micro = to_micro(rule.step_percent, 0);
        const i128 ref =
            reference_price < 0 ? -static_cast<i128>(reference_price) : reference_price;
        return std::max<std::int64_t>(1, saturate(ceil_div(ref * micro, kMicroHundredPercent)));
    }
    return std::max<std::int64_t>(1, rule.step);
}

bool offer_less(const Offer& a, const Offer& b) {
    return std::tie(a.price, a.merchant_id, a.merchant_name, a.delivery_duration) <
           std::tie(b.price, b.merchant_id, b.merchant_name, b.delivery_duration);
}

bool excluded_less(const ExcludedOffer& a, const ExcludedOffer& b) {
    return std::tie(a.price, a.merchant_id, a.why) < std::tie(b.price, b.merchant_id, b.why);
}

bool same_offer(const Offer& a, const Offer& b) {
    return a.price == b.price && a.merchant_id == b.merchant_id &&
           a.merchant_name == b.merchant_name && a.delivery_duration == b.delivery_duration;
}

int effective_position(const PricingRule& rule) { return std::max(1, rule.position); }

// reference_index: which competitor the strategy reacts to (sorted list, non-empty).
std::size_t reference_index(const PricingRule& rule, const std::vector<Offer>& sorted) {
    if (rule.strategy != Strategy::position) return 0;
    const std::size_t n = static_cast<std::size_t>(effective_position(rule));
    return n <= sorted.size() ? n - 1 : sorted.size() - 1;
}

// filter_and_sort applies exclusions 1 and 2 (merchant, delivery) and sorts what is left.
std::vector<Offer> filter_and_sort(const PricingRule& rule, const OfferBook& book,
                                   std::vector<ExcludedOffer>* excluded) {
    std::vector<std::string_view> banned(rule.excluded_merchants.begin(),
                                         rule.excluded_merchants.end());
    std::sort(banned.begin(), banned.end());
    std::vector<Offer> kept;
    kept.reserve(book.offers.size());
    for (const Offer& o : book.offers) {
        if (std::binary_search(banned.begin(), banned.end(), std::string_view(o.merchant_id))) {
            if (excluded)
                excluded->push_back({o.merchant_id, o.price, ExcludeWhy::excluded_merchant});
        } else if (rule.max_delivery_rank &&
                   delivery_rank(o.delivery_duration) > *rule.max_delivery_rank) {
            if (excluded) excluded->push_back({o.merchant_id, o.price, ExcludeWhy::slow_delivery});
        } else {
            kept.push_back(o);
        }
    }
    std::sort(kept.begin(), kept.end(), offer_less);
    return kept;
}

// outlier_count: how many of the cheapest sorted offers are outliers (they form a prefix).
std::size_t outlier_count(const PricingRule& rule, const std::vector<Offer>& sorted) {
    if (!rule.outlier_share || sorted.empty()) return 0;
    double share = *rule.outlier_share;
    if (!(share > 0)) return 0;  // also NaN
    share = std::min(share, 1.0);
    const std::size_t sample = std::min<std::size_t>(sorted.size(), kOutlierSample);
    long double median;
    if (sample % 2 == 1) {
        median = static_cast<long double>(sorted[sample / 2].price);
    } else {
        median = (static_cast<long double>(sorted[sample / 2 - 1].price) +
                  static_cast<long double>(sorted[sample / 2].price)) /
                 2;
    }
    const long double threshold = static_cast<long double>(share) * median;
    std::size_t n = 0;
    while (n < sorted.size() && static_cast<long double>(sorted[n].price) < threshold) ++n;
    return n;
}

}  // namespace

bool operator==(const Clamp& a, const Clamp& b) {
    return a.bound == b.bound && a.before == b.before && a.after == b.after;
}
bool operator!=(const Clamp& a, const Clamp& b) { return !(a == b); }
bool operator==(const ExcludedOffer& a, const ExcludedOffer& b) {
    return a.merchant_id == b.merchant_id && a.price == b.price && a.why == b.why;
}
bool operator!=(const ExcludedOffer& a, const ExcludedOffer& b) { return !(a == b); }
bool operator==(const PriceDecision& a, const PriceDecision& b) {
    return a.current_price == b.current_price && a.new_price == b.new_price &&
           a.changed == b.changed && a.target == b.target &&
           a.competitor_price == b.competitor_price &&
           a.competitor_merchant == b.competitor_merchant && a.reason == b.reason &&
           a.clamps == b.clamps && a.excluded == b.excluded && a.floor_hit == b.floor_hit &&
           a.floor_above_ceiling == b.floor_above_ceiling && a.floor == b.floor &&
           a.ceiling == b.ceiling && a.step == b.step && a.competitors == b.competitors;
}
bool operator!=(const PriceDecision& a, const PriceDecision& b) { return !(a == b); }

std::int64_t effective_floor(const PricingRule& rule) {
    return std::max(configured_floor(rule), kMarketplaceMinPrice);
}

std::vector<Offer> competitors_of(const PricingRule& rule, const OfferBook& book,
                                  std::vector<ExcludedOffer>* excluded) {
    std::vector<Offer> sorted = filter_and_sort(rule, book, excluded);
    const std::size_t outliers = outlier_count(rule, sorted);
    if (excluded) {
        for (std::size_t i = 0; i < outliers; ++i) {
            excluded->push_back({sorted[i].merchant_id, sorted[i].price, ExcludeWhy::outlier});
        }
        std::sort(excluded->begin(), excluded->end(), excluded_less);
    }
    sorted.erase(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(outliers));
    return sorted;
}

PriceDecision decide_price(std::int64_t current_price, const PricingRule& rule,
                           const OfferBook& book) {
    PriceDecision d;
    d.current_price = current_price;

    // Bounds.
    const std::int64_t configured = configured_floor(rule);
    const std::int64_t floor = std::max(configured, kMarketplaceMinPrice);
    const Bound floor_kind =
        configured >= kMarketplaceMinPrice ? Bound::floor : Bound::marketplace_min;
    d.floor = floor;
    if (rule.max_price) {
        d.floor_above_ceiling = *rule.max_price < floor;
        d.ceiling = std::max(*rule.max_price, floor);
    }

    // Competitors (the outlier step is done here, not in competitors_of, to see its effect).
    std::vector<Offer> before_outliers = filter_and_sort(rule, book, &d.excluded);
    const std::size_t outliers = outlier_count(rule, before_outliers);
    for (std::size_t i = 0; i < outliers; ++i) {
        d.excluded.push_back(
            {before_outliers[i].merchant_id, before_outliers[i].price, ExcludeWhy::outlier});
    }
    std::sort(d.excluded.begin(), d.excluded.end(), excluded_less);
    const std::vector<Offer> comps(before_outliers.begin() + static_cast<std::ptrdiff_t>(outliers),
                                   before_outliers.end());
    d.competitors =
        static_cast<int>(std::min<std::size_t>(comps.size(), std::numeric_limits<int>::max()));

    // Steps 1-2: the value the strategy asks for.
    std::int64_t value = current_price;
    bool held = false;
    bool outlier_changed_reference = false;
    if (comps.empty()) {
        if (rule.no_competitor_action == NoCompetitorAction::to_max && rule.max_price) {
            d.target = *rule.max_price;
            value = *rule.max_price;
        }
    } else {
        const std::size_t ref = reference_index(rule, comps);
        const Offer& reference = comps[ref];
        d.competitor_price = reference.price;
        d.competitor_merchant = reference.merchant_id;
        if (outliers > 0) {
            const Offer& old_reference = before_outliers[reference_index(rule, before_outliers)];
            outlier_changed_reference = !same_offer(old_reference, reference);
        }
        const bool fewer_than_n = rule.strategy == Strategy::position &&
                                  static_cast<std::size_t>(effective_position(rule)) > comps.size();
        i128 target = 0;
        if (fewer_than_n && rule.max_price) {
            target = *rule.max_price;
        } else if (rule.strategy == Strategy::match) {
            target = reference.price;
        } else {
            d.step = step_for(rule, reference.price);
            target = rule.strategy == Strategy::follow_second
                         ? static_cast<i128>(reference.price) + d.step
                         : static_cast<i128>(reference.price) - d.step;
        }
        d.target = saturate(target);
        if (*d.target < floor && rule.floor_action == FloorAction::hold) {
            held = true;
            value = current_price;
        } else {
            value = *d.target;
        }
    }

    // Steps 3-5: floor, ceiling, change guard, then floor and ceiling again.
    auto clamp_floor = [&] {
        if (value < floor) {
            d.clamps.push_back({floor_kind, value, floor});
            value = floor;
        }
    };
    auto clamp_ceiling = [&] {
        if (d.ceiling && value > *d.ceiling) {
            // With the floor above max_price the effective ceiling is the floor: name it so.
            d.clamps.push_back(
                {d.floor_above_ceiling ? floor_kind : Bound::ceiling, value, *d.ceiling});
            value = *d.ceiling;
        }
    };
    clamp_floor();
    clamp_ceiling();
    if (rule.max_change_percent) {
        const double pct = *rule.max_change_percent;
        if (!(std::isinf(pct) && pct > 0)) {
            const std::int64_t micro = std::max<std::int64_t>(0, to_micro(pct, 0));
            const i128 base = current_price < 0 ? -static_cast<i128>(current_price) : current_price;
            i128 cap = base * micro / kMicroHundredPercent;
            if (micro > 0 && cap < 1) cap = 1;
            const std::int64_t lo = saturate(static_cast<i128>(current_price) - cap);
            const std::int64_t hi = saturate(static_cast<i128>(current_price) + cap);
            if (value > hi || value < lo) {
                const std::int64_t capped = value > hi ? hi : lo;
                d.clamps.push_back({Bound::max_change, value, capped});
                value = capped;
                clamp_floor();
                clamp_ceiling();
            }
        }
    }

    d.new_price = value;
    d.changed = value != current_price;
    for (const Clamp& c : d.clamps) {
        if (c.bound == Bound::floor || c.bound == Bound::marketplace_min) d.floor_hit = true;
    }
    if (held) d.floor_hit = true;

    // Reason, by the precedence documented in the header.
    if (!d.clamps.empty()) {
        switch (d.clamps.back().bound) {
            case Bound::marketplace_min:
            case Bound::floor:
                d.reason = Reason::at_floor;
                break;
            case Bound::ceiling:
                d.reason = Reason::ceiling;
                break;
            case Bound::max_change:
                d.reason = Reason::max_change_capped;
                break;
        }
    } else if (comps.empty()) {
        d.reason = rule.no_competitor_action == NoCompetitorAction::to_max
                       ? Reason::no_competitors_to_max
                       : Reason::no_competitors_hold;
    } else if (held) {
        d.reason = Reason::floor_hold;
    } else if (value == floor && d.target && *d.target == floor) {
        d.reason = Reason::at_floor;
    } else if (outlier_changed_reference) {
        d.reason = Reason::outlier_ignored;
    } else if (value > current_price) {
        d.reason = Reason::raised_to_competitor;
    } else if (value == current_price) {
        d.reason = Reason::unchanged;
    } else {
        switch (rule.strategy) {
            case Strategy::undercut:
                d.reason = Reason::undercut;
                break;
            case Strategy::match:
                d.reason = Reason::match;
                break;
            case Strategy::position:
                d.reason = Reason::position;
                break;
            case Strategy::follow_second:
                d.reason = Reason::follow_second;
                break;
        }
    }
    return d;
}

std::string validate_rule(const PricingRule& rule) {
    if (rule.step < 1) return "step must be at least 1";
    if (std::isnan(rule.step_percent) || rule.step_percent < 0 || std::isinf(rule.step_percent)) {
        return "step_percent must be a finite number >= 0";
    }
    if (rule.position < 1) return "position must be at least 1";
    if (rule.min_price < kMarketplaceMinPrice) {
        return "min_price must be at least " + std::to_string(kMarketplaceMinPrice);
    }
    if (rule.max_price && *rule.max_price < rule.min_price) return "min_price is above max_price";
    if (rule.cost_price && *rule.cost_price < 0) return "cost_price must not be negative";
    if (rule.min_margin_percent && !std::isfinite(*rule.min_margin_percent)) {
        return "min_margin_percent must be a finite number";
    }
    if (rule.max_price && effective_floor(rule) > *rule.max_price)
        return "the cost floor is above max_price";
    if (rule.max_change_percent &&
        (std::isnan(*rule.max_change_percent) || *rule.max_change_percent <= 0)) {
        return "max_change_percent must be above 0";
    }
    if (rule.outlier_share && !(*rule.outlier_share > 0 && *rule.outlier_share < 1)) {
        return "outlier_share must be between 0 and 1";
    }
    if (rule.max_delivery_rank &&
        (*rule.max_delivery_rank < 0 || *rule.max_delivery_rank > kUnknownDeliveryRank)) {
        return "max_delivery_rank must be between 0 and " + std::to_string(kUnknownDeliveryRank);
    }
    return {};
}

const char* reason_name(Reason reason) {
    switch (reason) {
        case Reason::undercut:
            return "undercut";
        case Reason::match:
            return "match";
        case Reason::position:
            return "position";
        case Reason::follow_second:
            return "follow_second";
        case Reason::raised_to_competitor:
            return "raised_to_competitor";
        case Reason::floor_hold:
            return "floor_hold";
        case Reason::at_floor:
            return "at_floor";
        case Reason::ceiling:
            return "ceiling";
        case Reason::no_competitors_to_max:
            return "no_competitors_to_max";
        case Reason::no_competitors_hold:
            return "no_competitors_hold";
        case Reason::max_change_capped:
            return "max_change_capped";
        case Reason::outlier_ignored:
            return "outlier_ignored";
        case Reason::unchanged:
            return "unchanged";
    }
    return "unknown";
}

const char* bound_name(Bound bound) {
    switch (bound) {
        case Bound::marketplace_min:
            return "marketplace_min";
        case Bound::floor:
            return "floor";
        case Bound::ceiling:
            return "ceiling";
        case Bound::max_change:
            return "max_change";
    }
    return "unknown";
}

const char* exclude_why_name(ExcludeWhy why) {
    switch (why) {
        case ExcludeWhy::excluded_merchant:
            return "excluded_merchant";
        case ExcludeWhy::slow_delivery:
            return "slow_delivery";
        case ExcludeWhy::outlier:
            return "outlier";
    }
    return "unknown";
}

const char* strategy_name(Strategy strategy) {
    switch (strategy) {
        case Strategy::undercut:
            return "undercut";
        case Strategy::match:
            return "match";
        case Strategy::position:
            return "position";
        case Strategy::follow_second:
            return "follow_second";
    }
    return "unknown";
}

const char* floor_action_name(FloorAction action) {
    switch (action) {
        case FloorAction::go_to_floor:
            return "go_to_floor";
        case FloorAction::hold:
            return "hold";
    }
    return "unknown";
}

const char* no_competitor_action_name(NoCompetitorAction action) {
    switch (action) {
        case NoCompetitorAction::to_max:
            return "to_max";
        case NoCompetitorAction::hold:
            return "hold";
    }
    return "unknown";
}

std::optional<Strategy> parse_strategy(std::string_view name) {
    for (Strategy s :
         {Strategy::undercut, Strategy::match, Strategy::position, Strategy::follow_second}) {
        if (name == strategy_name(s)) return s;
    }
    return std::nullopt;
}

std::optional<FloorAction> parse_floor_action(std::string_view name) {
    for (FloorAction a : {FloorAction::go_to_floor, FloorAction::hold}) {
        if (name == floor_action_name(a)) return a;
    }
    return std::nullopt;
}

std::optional<NoCompetitorAction> parse_no_competitor_action(std::string_view name) {
    for (NoCompetitorAction a : {NoCompetitorAction::to_max, NoCompetitorAction::hold}) {
        if (name == no_competitor_action_name(a)) return a;
    }
    return std::nullopt;
}

namespace {

// valid_utf8 copies `s`, replacing every byte that is not part of a well-formed UTF-8 sequence by
// '?', so that the JSON we write is always valid (offer books built outside parse_offers may hold
// anything).
std::string valid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c < 0x80) {
            len = 1;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        }
        bool ok = len > 0 && i + len <= s.size();
        for (std::size_t k = 1; ok && k < len; ++k) {
            const unsigned char b = static_cast<unsigned char>(s[i + k]);
            ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        }
        if (ok) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            out.push_back('?');
            ++i;
        }
    }
    return out;
}

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void put_string(JsonWriter& w, std::string_view s) {
    const std::string clean = valid_utf8(s);
    w.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
}

void put_key(JsonWriter& w, const char* key) { w.Key(key); }

void put_opt_int(JsonWriter& w, const std::optional<std::int64_t>& v) {
    if (v) {
        w.Int64(*v);
    } else {
        w.Null();
    }
}

void put_double(JsonWriter& w, double v) {
    if (std::isfinite(v)) {
        w.Double(v);
    } else {
        w.Null();
    }
}

void put_opt_double(JsonWriter& w, const std::optional<double>& v) {
    if (v) {
        put_double(w, *v);
    } else {
        w.Null();
    }
}

void put_rule(JsonWriter& w, const PricingRule& rule) {
    w.StartObject();
    put_key(w, "strategy");
    w.String(strategy_name(rule.strategy));
    put_key(w, "step");
    w.Int64(rule.step);
    put_key(w, "step_percent");
    put_double(w, rule.step_percent);
    put_key(w, "position");
    w.Int(rule.position);
    put_key(w, "min_price");
    w.Int64(rule.min_price);
    put_key(w, "max_price");
    put_opt_int(w, rule.max_price);
    put_key(w, "cost_price");
    put_opt_int(w, rule.cost_price);
    put_key(w, "min_margin_percent");
    put_opt_double(w, rule.min_margin_percent);
    put_key(w, "floor_action");
    w.String(floor_action_name(rule.floor_action));
    put_key(w, "no_competitor_action");
    w.String(no_competitor_action_name(rule.no_competitor_action));
    put_key(w, "max_change_percent");
    put_opt_double(w, rule.max_change_percent);
    put_key(w, "outlier_share");
    put_opt_double(w, rule.outlier_share);
    put_key(w, "max_delivery_rank");
    if (rule.max_delivery_rank) {
        w.Int(*rule.max_delivery_rank);
    } else {
        w.Null();
    }
    put_key(w, "excluded_merchants");
    w.StartArray();
    for (const std::string& m : rule.excluded_merchants) put_string(w, m);
    w.EndArray();
    w.EndObject();
}

}  // namespace

std::string decision_to_json(const PriceDecision& d, const PricingRule& rule,
                             const OfferBook& book, std::size_t max_listed) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    put_key(w, "current_price");
    w.Int64(d.current_price);
    put_key(w, "new_price");
    w.Int64(d.new_price);
    put_key(w, "changed");
    w.Bool(d.changed);
    put_key(w, "reason");
    w.String(reason_name(d.reason));
    put_key(w, "target");
    put_opt_int(w, d.target);
    put_key(w, "competitor_price");
    put_opt_int(w, d.competitor_price);
    put_key(w, "competitor_merchant");
    if (d.competitor_merchant) {
        put_string(w, *d.competitor_merchant);
    } else {
        w.Null();
    }
    put_key(w, "floor");
    w.Int64(d.floor);
    put_key(w, "ceiling");
    put_opt_int(w, d.ceiling);
    put_key(w, "floor_hit");
    w.Bool(d.floor_hit);
    put_key(w, "floor_above_ceiling");
    w.Bool(d.floor_above_ceiling);
    put_key(w, "step");
    w.Int64(d.step);
    put_key(w, "clamps");
    w.StartArray();
    for (const Clamp& c : d.clamps) {
        w.StartObject();
        put_key(w, "bound");
        w.String(bound_name(c.bound));
        put_key(w, "before");
        w.Int64(c.before);
        put_key(w, "after");
        w.Int64(c.after);
        w.EndObject();
    }
    w.EndArray();
    const std::vector<Offer> competitors = competitors_of(rule, book);
    put_key(w, "competitor_count");
    w.Int64(static_cast<std::int64_t>(competitors.size()));
    put_key(w, "offers_seen");
    w.Int64(static_cast<std::int64_t>(book.offers.size()));
    put_key(w, "competitors");
    w.StartArray();
    for (std::size_t i = 0; i < competitors.size() && i < max_listed; i++) {
        const Offer& o = competitors[i];
        w.StartObject();
        put_key(w, "merchant_id");
        put_string(w, o.merchant_id);
        put_key(w, "merchant_name");
        put_string(w, o.merchant_name);
        put_key(w, "price");
        w.Int64(o.price);
        put_key(w, "delivery");
        put_string(w, o.delivery_duration);
        w.EndObject();
    }
    w.EndArray();
    put_key(w, "excluded");
    w.StartArray();
    for (const ExcludedOffer& e : d.excluded) {
        w.StartObject();
        put_key(w, "merchant_id");
        put_string(w, e.merchant_id);
        put_key(w, "price");
        w.Int64(e.price);
        put_key(w, "why");
        w.String(exclude_why_name(e.why));
        w.EndObject();
    }
    w.EndArray();
    put_key(w, "rule");
    put_rule(w, rule);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace demper::core
