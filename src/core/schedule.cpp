// schedule: see schedule.hpp for the policy; this file follows it in order.
#include "core/schedule.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace demper::core {

namespace {

constexpr int kFormatVersion = 1;
constexpr int kMaxObservations = 1'000'000;
constexpr double kLongestGapS = 30 * 86400.0;  // a longer silence counts as this long
constexpr double kMaxHiddenChanges = 3;        // most changes one interval is counted as
constexpr double kShortestIntervalS = 1;       // no bound can ask for less
constexpr double kClockStepS = 86400;          // an observation this much earlier: the clock moved
// A stored state beyond these is not one this code wrote (a time past the year 5000, more changes
// or exposure than its memory can hold): it reads as no information.
constexpr double kMaxStoredTimeS = 1e11;
constexpr double kMaxStoredChanges = 1e9;
constexpr double kMaxStoredExposureS = 1e10;

// fingerprint hashes the cheapest `watched` offers (merchant and price), leaving out `ignored`
// (the rival of a running war: its loop is counted as rounds, not as market changes). FNV-1a.
std::uint64_t fingerprint(const std::vector<Offer>& competitors, int watched,
                          const std::string& ignored) {
    std::uint64_t hash = 14695981039346656037ULL;
    auto mix = [&hash](const void* data, std::size_t size) {
        const auto* bytes = static_cast<const unsigned char*>(data);
        for (std::size_t i = 0; i < size; ++i) {
            hash ^= bytes[i];
            hash *= 1099511628211ULL;
        }
    };
    int taken = 0;
    for (const Offer& offer : competitors) {
        if (taken >= watched) break;
        if (!ignored.empty() && offer.merchant_id == ignored) continue;
        mix(offer.merchant_id.data(), offer.merchant_id.size());
        mix("", 1);
        mix(&offer.price, sizeof offer.price);
        ++taken;
    }
    return hash == 0 ? 1 : hash;
}

const Offer* find_merchant(const std::vector<Offer>& offers, const std::string& merchant) {
    for (const Offer& offer : offers)
        if (offer.merchant_id == merchant) return &offer;
    return nullptr;
}

double quiet_period_s(const ScheduleState& state, const ScheduleTuning& tuning) {
    const int earlier = std::max(0, state.wars_with_known_rival - 1);
    return std::min(tuning.quiet_max_s, tuning.quiet_s * std::pow(2.0, std::min(earlier, 30)));
}

double stake_of(const ScheduleState& state, const ScheduleTuning& tuning) {
    if (state.war) return state.undercut_leader ? tuning.war_follow_stake : tuning.war_stake;
    switch (state.position) {
        case Position::alone:
            return tuning.stake_alone;
        case Position::first_clear:
            return tuning.stake_first_clear;
        case Position::first_thin:
            return tuning.stake_first_thin;
        case Position::behind:
            return tuning.stake_behind;
        case Position::behind_at_floor:
            return tuning.stake_behind_at_floor;
        case Position::unknown:
            break;
    }
    return 1;
}

double positive_or(double value, double fallback) {
    return std::isfinite(value) && value > 0 ? value : fallback;
}

struct Bounds {
    double shortest;
    double longest;
};

Bounds sane_bounds(const ScheduleBounds& bounds) {
    const double longest = std::max(kShortestIntervalS, positive_or(bounds.longest_s, 7200));
    const double shortest =
        std::min(longest, std::max(kShortestIntervalS, positive_or(bounds.shortest_s, 1)));
    return {shortest, longest};
}

// unit_hash maps a state to [0, 1): a different value at every check of a product.
double unit_hash(const ScheduleState& state) {
    std::uint64_t x = state.watched_print ^ (static_cast<std::uint64_t>(state.observations) << 40);
    std::uint64_t time_bits = 0;
    static_assert(sizeof time_bits == sizeof state.last_at_s);
    std::memcpy(&time_bits, &state.last_at_s, sizeof time_bits);
    x ^= time_bits * 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return static_cast<double>(x >> 11) * 0x1.0p-53;
}

// shifted moves every time of a state by `delta` seconds.
ScheduleState shifted(ScheduleState state, double delta) {
    state.last_at_s += delta;
    if (state.rounds > 0) state.round_at_s += delta;
    if (state.war) {
        state.war->since_s += delta;
        state.war->rival_moved_s += delta;
    }
    return state;
}

// bounded clamps an interval into the bounds, aiming `deadline_slack_share` short of the longest.
double bounded(double interval, const ScheduleBounds& bounds, const ScheduleTuning& tuning) {
    const Bounds b = sane_bounds(bounds);
    const double slack = std::isfinite(tuning.deadline_slack_share)
                             ? std::clamp(tuning.deadline_slack_share, 0.0, 0.5)
                             : 0.0;
    const double longest = std::max(b.shortest, b.longest * (1 - slack));
    return std::clamp(std::isfinite(interval) ? interval : longest, b.shortest, longest);
}

}  // namespace

Observation observation_of(double at_s, std::int64_t own_price, const PricingRule& rule,
                           const OfferBook& book) {
    Observation seen;
    seen.at_s = at_s;
    seen.own_price = own_price;
    seen.step = std::max<std::int64_t>(1, rule.step);
    if (rule.step_percent > 0 && own_price > 0) {
        const double step = std::ceil(static_cast<double>(own_price) * rule.step_percent / 100);
        seen.step = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::min(step, 1e15)));
    }
    seen.competitors = competitors_of(rule, book);
    return seen;
}

double change_rate_per_s(const ScheduleState& state, const ScheduleTuning& tuning) {
    const double prior_rate =
        positive_or(tuning.prior_rate_per_s, ScheduleTuning{}.prior_rate_per_s);
    const double prior_changes = std::max(0.0, tuning.prior_changes);
    const double changes = std::max(0.0, state.changes) + prior_changes;
    const double exposure = std::max(0.0, state.exposure_s) + prior_changes / prior_rate;
    if (exposure <= 0) return prior_rate;
    return std::max(changes / exposure, 1e-12);
}

ScheduleState observe(const ScheduleState& stored, const Observation& seen,
                      const ScheduleTuning& tuning) {
    const bool first = stored.observations <= 0;
    // A clock that stepped back by more than a day (a restored server, another clock): the state's
    // times move with it, so that the gaps between them keep their meaning, and this check
    // teaches no rate. A smaller step back counts as no time passed.
    const bool clock_stepped =
        !first && std::isfinite(seen.at_s) && seen.at_s < stored.last_at_s - kClockStepS;
    const ScheduleState state =
        clock_stepped ? shifted(stored, seen.at_s - stored.last_at_s) : stored;
    ScheduleState s = state;
    double at = first ? 0 : state.last_at_s;  // a time that is not a number: no advance
    if (std::isfinite(seen.at_s)) at = first ? seen.at_s : std::max(seen.at_s, state.last_at_s);
    const double dt = first ? 0 : std::clamp(at - state.last_at_s, 0.0, kLongestGapS);
    const Offer* leader = seen.competitors.empty() ? nullptr : &seen.competitors.front();
    const std::int64_t step = std::max<std::int64_t>(1, seen.step);

    // Rounds: did the leader we undercut answer by cutting below us by about a step?
    bool round = false;
    if (!first && state.undercut_leader && leader != nullptr &&
        leader->merchant_id == state.leader && leader->price < state.leader_price &&
        leader->price <= state.own_price) {
        const double cut = static_cast<double>(state.own_price - leader->price);
        const double tolerance =
            std::max(3.0 * static_cast<double>(step),
                     tuning.war_cut_share * static_cast<double>(state.own_price));
        round = cut <= tolerance;
    }
    if (round) {
        const bool continues = state.rounds > 0 && at - state.round_at_s <= tuning.round_gap_s;
        s.rounds = continues ? state.rounds + 1 : 1;
        s.round_at_s = at;
    } else if (!first && state.undercut_leader) {
        s.rounds = 0;  // we undercut and the leader did not answer: not a loop
    } else if (leader == nullptr || leader->merchant_id != state.leader) {
        s.rounds = 0;
    }

    // The running war: does it go on?
    if (s.war) {
        const Offer* rival = find_merchant(seen.competitors, s.war->rival);
        if (rival == nullptr) {
            s.war.reset();
        } else {
            if (rival->price != s.war->rival_price) {
                s.war->rival_price = rival->price;
                s.war->rival_moved_s = at;
            }
            if (at - s.war->rival_moved_s >= quiet_period_s(s, tuning)) s.war.reset();
        }
        if (!s.war) s.rounds = 0;
    }
    // A new war?
    if (!s.war && leader != nullptr && s.rounds > 0) {
        const bool known = !s.known_rival.empty() && s.known_rival == leader->merchant_id;
        if (s.rounds >= (known ? tuning.war_rounds_known : tuning.war_rounds)) {
            PriceWar war;
            war.rival = leader->merchant_id;
            war.since_s = at;
            war.from_price = s.rounds_from_price;
            war.rival_price = leader->price;
            war.rival_moved_s = at;
            s.war = war;
            if (known) {
                s.wars_with_known_rival = std::min(s.wars_with_known_rival + 1, 1000);
            } else {
                s.known_rival = leader->merchant_id;
                s.wars_with_known_rival = 1;
            }
        }
    }

    // The change rate of the watched offers (a running war's rival left out), each change weighed
    // by what it did to the seller: an undercut takes first place, a raise leaves margin on the
    // table, anything else among the watched offers only may lead to one of those.
    const std::string& ignored = state.war ? state.war->rival : std::string();
    const std::uint64_t print = fingerprint(seen.competitors, tuning.watched_offers, ignored);
    double weight = 0;
    if (round) {
        weight = tuning.war_rounds_are_changes ? 1 : 0;
    } else if (!first && print != state.watched_print) {
        const bool was_first = state.position == Position::first_thin ||
                               state.position == Position::first_clear ||
                               state.position == Position::alone;
        const Offer* cheapest = nullptr;
        for (const Offer& offer : seen.competitors) {
            if (ignored.empty() || offer.merchant_id != ignored) {
                cheapest = &offer;
                break;
            }
        }
        if (was_first && cheapest != nullptr && cheapest->price <= state.own_price)
            weight = 1;
        else if (cheapest != nullptr && state.leader_price > 0 &&
                 cheapest->price > state.leader_price)
            weight = tuning.raise_weight;
        else
            weight = tuning.other_change_weight;
    }
    if (!first) {
        const double rate = change_rate_per_s(state, tuning);
        const double memory = positive_or(tuning.rate_memory_s, ScheduleTuning{}.rate_memory_s);
        const double decay = std::exp(-dt / memory);
        double count = 0;
        if (weight > 0) {
            const double x = rate * dt;
            count = weight * (x < 1e-9 ? 1 : std::min(kMaxHiddenChanges, x / -std::expm1(-x)));
        }
        s.changes = std::max(0.0, state.changes) * decay + count;
        s.exposure_s = std::max(0.0, state.exposure_s) * decay + dt;
    }
    s.watched_print = print;
    s.observations = std::min(state.observations + 1, kMaxObservations);
    s.last_at_s = at;
    s.leader = leader ? leader->merchant_id : std::string();
    s.leader_price = leader ? leader->price : 0;
    return s;
}

WarVerdict war_verdict(const ScheduleState& observed, WarPolicy policy) {
    WarVerdict verdict;
    verdict.policy = policy;
    if (!observed.war) return verdict;
    verdict.at_war = true;
    verdict.rival = observed.war->rival;
    verdict.since_s = observed.war->since_s;
    verdict.from_price = observed.war->from_price;
    verdict.wars_with_rival =
        observed.known_rival == observed.war->rival ? observed.wars_with_known_rival : 1;
    return verdict;
}

ScheduleState record_decision(const ScheduleState& observed, const PriceDecision& decision,
                              const std::vector<Offer>& considered, const ScheduleTuning& tuning) {
    ScheduleState s = observed;
    const std::int64_t price = decision.new_price;
    s.own_price = price;
    s.undercut_leader =
        !s.leader.empty() && price < s.leader_price && price < decision.current_price;
    if (s.undercut_leader && s.rounds == 0) s.rounds_from_price = decision.current_price;
    if (considered.empty()) {
        s.position = Position::alone;
    } else if (price < considered.front().price) {
        const double margin = static_cast<double>(considered.front().price - price);
        const double thin =
            std::max(2.0 * static_cast<double>(std::max<std::int64_t>(1, decision.step)),
                     tuning.thin_margin_share * static_cast<double>(price));
        s.position = margin <= thin ? Position::first_thin : Position::first_clear;
    } else {
        s.position = price <= decision.floor ? Position::behind_at_floor : Position::behind;
    }
    return s;
}

double base_interval_s(const ScheduleState& state, const ScheduleBounds& bounds,
                       const ScheduleTuning& tuning) {
    if (state.observations < std::max(1, tuning.min_observations))
        return positive_or(bounds.default_s, 900);
    const double weight = change_rate_per_s(state, tuning) * stake_of(state, tuning);
    const double worth = positive_or(tuning.request_worth_s, ScheduleTuning{}.request_worth_s);
    if (!(weight > 0)) return std::numeric_limits<double>::max();
    return std::sqrt(2 * worth / weight);
}

double next_interval_s(const ScheduleState& state, const ScheduleBounds& bounds, double pressure,
                       const ScheduleTuning& tuning) {
    const double jitter =
        std::isfinite(tuning.jitter_share) ? std::clamp(tuning.jitter_share, 0.0, 1.0) : 0.0;
    const double spread = 1 + jitter * (unit_hash(state) - 0.5);
    return bounded(base_interval_s(state, bounds, tuning) * positive_or(pressure, 1) * spread,
                   bounds, tuning);
}

double demand_per_s(const std::vector<DemandGroup>& groups, double pressure,
                    const ScheduleTuning& tuning) {
    double demand = 0;
    for (const DemandGroup& g : groups) {
        if (!(g.products > 0)) continue;
        ScheduleBounds bounds;
        bounds.shortest_s = g.shortest_s;
        bounds.longest_s = g.longest_s;
        demand += g.products / bounded(positive_or(g.base_interval_s, bounds.longest_s) * pressure,
                                       bounds, tuning);
    }
    return demand;
}

double solve_pressure(const std::vector<DemandGroup>& groups, double budget_per_s,
                      const ScheduleTuning& tuning) {
    if (groups.empty() || !std::isfinite(budget_per_s) || budget_per_s <= 0) return 1;
    if (demand_per_s(groups, kMaxPressure, tuning) >= budget_per_s) return kMaxPressure;
    if (demand_per_s(groups, kMinPressure, tuning) <= budget_per_s) return kMinPressure;
    double low = std::log(kMinPressure);   // demand above the budget here
    double high = std::log(kMaxPressure);  // and below it here
    for (int i = 0; i < 60; ++i) {
        const double mid = (low + high) / 2;
        if (demand_per_s(groups, std::exp(mid), tuning) > budget_per_s)
            low = mid;
        else
            high = mid;
    }
    return std::exp(high);
}

ScheduledDecision decide_and_schedule(const ScheduleState& state, std::int64_t current_price,
                                      const PricingRule& rule, const OfferBook& book,
                                      const CheckSchedule& how, const ScheduleTuning& tuning) {
    ScheduledDecision out;
    const Observation seen = observation_of(how.at_s, current_price, rule, book);
    ScheduleState s = observe(state, seen, tuning);
    out.war = war_verdict(s, how.war_policy);
    const PriceDecision plain = decide_price(current_price, rule, book);
    out.decision = plain;
    out.reason = reason_name(plain.reason);
    const std::vector<Offer>* considered = &seen.competitors;
    std::vector<Offer> without_rival;
    if (out.war.at_war && how.war_policy == WarPolicy::hold) {
        // Hold only a price inside the bounds the rule would keep it in.
        const bool inside =
            current_price >= plain.floor && (!plain.ceiling || current_price <= *plain.ceiling);
        if (inside && plain.new_price < current_price) {
            out.decision.new_price = current_price;
            out.decision.changed = false;
            out.decision.floor_hit = false;
            out.reason = kReasonWarHold;
        }
    } else if (out.war.at_war && how.war_policy == WarPolicy::keep_margin) {
        PricingRule without = rule;
        without.excluded_merchants.push_back(out.war.rival);
        out.decision = decide_price(current_price, without, book);
        without_rival = competitors_of(without, book);
        considered = &without_rival;
        out.reason = out.decision.new_price != plain.new_price ? kReasonWarKeepMargin
                                                               : reason_name(out.decision.reason);
    }
    out.state = record_decision(s, out.decision, *considered, tuning);
    out.base_interval_s = base_interval_s(out.state, how.bounds, tuning);
    out.interval_s = next_interval_s(out.state, how.bounds, how.pressure, tuning);
    return out;
}

// ── Text ─────────────────────────────────────────────────────────────────────────────────────

namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void put_key(JsonWriter& w, const char* key) {
    w.Key(key, static_cast<rapidjson::SizeType>(std::strlen(key)));
}

void put_text(JsonWriter& w, const std::string& text) {
    w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

// put_number writes a finite number rounded to `decimals` decimals (3: milliseconds), as an
// integer when it is one; a non-finite one as 0.
void put_number(JsonWriter& w, double value, int decimals = 3) {
    if (!std::isfinite(value)) value = 0;
    const double scale = std::pow(10.0, decimals);
    // Rounded only where that is exact and idempotent (k / scale with k below 2^53).
    const double rounded = std::fabs(value) < 1e12 ? std::round(value * scale) / scale : value;
    if (std::fabs(rounded) < 9e15 && rounded == std::floor(rounded))
        w.Int64(static_cast<std::int64_t>(rounded));
    else
        w.Double(rounded);
}

bool read_number(const rapidjson::Value& object, const char* key, double& out) {
    auto it = object.FindMember(key);
    if (it == object.MemberEnd()) return true;
    if (!it->value.IsNumber()) return false;
    out = it->value.GetDouble();
    return std::isfinite(out);
}

bool read_int64(const rapidjson::Value& object, const char* key, std::int64_t& out) {
    auto it = object.FindMember(key);
    if (it == object.MemberEnd()) return true;
    if (!it->value.IsInt64()) return false;
    out = it->value.GetInt64();
    return true;
}

bool read_int(const rapidjson::Value& object, const char* key, int& out, int low, int high) {
    std::int64_t value = out;
    if (!read_int64(object, key, value) || value < low || value > high) return false;
    out = static_cast<int>(value);
    return true;
}

bool read_text(const rapidjson::Value& object, const char* key, std::string& out) {
    auto it = object.FindMember(key);
    if (it == object.MemberEnd()) return true;
    if (!it->value.IsString()) return false;
    out.assign(it->value.GetString(), it->value.GetStringLength());
    return true;
}

bool read_bool(const rapidjson::Value& object, const char* key, bool& out) {
    auto it = object.FindMember(key);
    if (it == object.MemberEnd()) return true;
    if (!it->value.IsBool()) return false;
    out = it->value.GetBool();
    return true;
}

std::optional<Position> parse_position(std::string_view name) {
    for (Position p : {Position::unknown, Position::alone, Position::first_clear,
                       Position::first_thin, Position::behind, Position::behind_at_floor}) {
        if (name == position_name(p)) return p;
    }
    return std::nullopt;
}

}  // namespace

std::string to_text(const ScheduleState& state) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    w.StartObject();
    put_key(w, "v");
    w.Int(kFormatVersion);
    put_key(w, "n");
    w.Int(state.observations);
    put_key(w, "t");
    put_number(w, state.last_at_s);
    put_key(w, "c");
    put_number(w, state.changes, 6);
    put_key(w, "e");
    put_number(w, state.exposure_s);
    char print[17];
    std::snprintf(print, sizeof print, "%016llx",
                  static_cast<unsigned long long>(state.watched_print));
    put_key(w, "w");
    w.String(print);
    put_key(w, "p");
    w.String(position_name(state.position));
    put_key(w, "o");
    w.Int64(state.own_price);
    if (!state.leader.empty()) {
        put_key(w, "l");
        put_text(w, state.leader);
        put_key(w, "lp");
        w.Int64(state.leader_price);
    }
    if (state.undercut_leader) {
        put_key(w, "u");
        w.Bool(true);
    }
    if (state.rounds > 0) {
        put_key(w, "r");
        w.Int(state.rounds);
        put_key(w, "rt");
        put_number(w, state.round_at_s);
    }
    if (state.rounds_from_price != 0) {
        put_key(w, "rf");
        w.Int64(state.rounds_from_price);
    }
    if (state.war) {
        put_key(w, "war");
        w.StartObject();
        put_key(w, "rival");
        put_text(w, state.war->rival);
        put_key(w, "since");
        put_number(w, state.war->since_s);
        put_key(w, "from");
        w.Int64(state.war->from_price);
        put_key(w, "rp");
        w.Int64(state.war->rival_price);
        put_key(w, "rm");
        put_number(w, state.war->rival_moved_s);
        w.EndObject();
    }
    if (!state.known_rival.empty()) {
        put_key(w, "kr");
        put_text(w, state.known_rival);
        put_key(w, "kw");
        w.Int(state.wars_with_known_rival);
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

std::optional<ScheduleState> parse_schedule_state(std::string_view text) {
    if (text.empty() || text.find('\0') != std::string_view::npos) return std::nullopt;
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(text.data(),
                                                                                      text.size());
    if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
    std::int64_t version = 0;
    if (!read_int64(doc, "v", version) || version != kFormatVersion) return std::nullopt;
    ScheduleState s;
    std::string print, position;
    const bool ok =
        read_int(doc, "n", s.observations, 0, kMaxObservations) &&
        read_number(doc, "t", s.last_at_s) && read_number(doc, "c", s.changes) &&
        read_number(doc, "e", s.exposure_s) && read_text(doc, "w", print) &&
        read_text(doc, "p", position) && read_int64(doc, "o", s.own_price) &&
        read_text(doc, "l", s.leader) && read_int64(doc, "lp", s.leader_price) &&
        read_bool(doc, "u", s.undercut_leader) &&
        read_int(doc, "r", s.rounds, 0, kMaxObservations) && read_number(doc, "rt", s.round_at_s) &&
        read_int64(doc, "rf", s.rounds_from_price) && read_text(doc, "kr", s.known_rival) &&
        read_int(doc, "kw", s.wars_with_known_rival, 0, 1000);
    auto plausible_time = [](double t) { return std::fabs(t) <= kMaxStoredTimeS; };
    if (!ok || s.changes < 0 || s.exposure_s < 0 || s.changes > kMaxStoredChanges ||
        s.exposure_s > kMaxStoredExposureS || !plausible_time(s.last_at_s) ||
        !plausible_time(s.round_at_s))
        return std::nullopt;
    if (!print.empty()) {
        if (print.size() > 16 || print.find_first_not_of("0123456789abcdef") != std::string::npos)
            return std::nullopt;
        s.watched_print = std::strtoull(print.c_str(), nullptr, 16);
    }
    if (!position.empty()) {
        auto parsed = parse_position(position);
        if (!parsed) return std::nullopt;
        s.position = *parsed;
    }
    if (auto it = doc.FindMember("war"); it != doc.MemberEnd()) {
        if (!it->value.IsObject()) return std::nullopt;
        PriceWar war;
        if (!read_text(it->value, "rival", war.rival) || war.rival.empty() ||
            !read_number(it->value, "since", war.since_s) ||
            !read_int64(it->value, "from", war.from_price) ||
            !read_int64(it->value, "rp", war.rival_price) ||
            !read_number(it->value, "rm", war.rival_moved_s) || !plausible_time(war.since_s) ||
            !plausible_time(war.rival_moved_s)) {
            return std::nullopt;
        }
        s.war = war;
    }
    return s;
}

std::string schedule_explain_json(const ScheduledDecision& scheduled, double pressure,
                                  const ScheduleTuning& tuning) {
    rapidjson::StringBuffer buf;
    JsonWriter w(buf);
    const ScheduleState& s = scheduled.state;
    w.StartObject();
    put_key(w, "interval_s");
    put_number(w, scheduled.interval_s);
    put_key(w, "base_interval_s");
    put_number(w, std::min(scheduled.base_interval_s, 1e12));
    put_key(w, "pressure");
    put_number(w, positive_or(pressure, 1));
    put_key(w, "change_rate_per_h");
    put_number(w, change_rate_per_s(s, tuning) * 3600);
    put_key(w, "observations");
    w.Int(s.observations);
    put_key(w, "position");
    w.String(position_name(s.position));
    put_key(w, "rounds");
    w.Int(s.rounds);
    put_key(w, "war");
    if (scheduled.war.at_war) {
        w.StartObject();
        put_key(w, "rival");
        put_text(w, scheduled.war.rival);
        put_key(w, "since");
        put_number(w, scheduled.war.since_s);
        put_key(w, "from_price");
        w.Int64(scheduled.war.from_price);
        put_key(w, "policy");
        w.String(war_policy_name(scheduled.war.policy));
        put_key(w, "wars_with_rival");
        w.Int(scheduled.war.wars_with_rival);
        w.EndObject();
    } else {
        w.Null();
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

const char* position_name(Position position) {
    switch (position) {
        case Position::unknown:
            return "unknown";
        case Position::alone:
            return "alone";
        case Position::first_clear:
            return "first_clear";
        case Position::first_thin:
            return "first_thin";
        case Position::behind:
            return "behind";
        case Position::behind_at_floor:
            return "behind_at_floor";
    }
    return "unknown";
}

const char* war_policy_name(WarPolicy policy) {
    switch (policy) {
        case WarPolicy::follow:
            return "follow";
        case WarPolicy::hold:
            return "hold";
        case WarPolicy::keep_margin:
            return "keep_margin";
    }
    return "follow";
}

std::optional<WarPolicy> parse_war_policy(std::string_view name) {
    for (WarPolicy p : {WarPolicy::follow, WarPolicy::hold, WarPolicy::keep_margin}) {
        if (name == war_policy_name(p)) return p;
    }
    return std::nullopt;
}

// ── When the pressure falls ──────────────────────────────────────────────────────────────────

bool pressure_fell(double scheduled_at_pressure, double new_pressure) {
    return positive_or(new_pressure, 1) * kBringForwardRatio < positive_or(scheduled_at_pressure, 1);
}

bool pressure_moved(double before, double after) {
    const double b = positive_or(before, 1), a = positive_or(after, 1);
    return a * kBringForwardRatio < b || b * kBringForwardRatio < a;
}

double bring_forward_spread(std::uint64_t product_id) {
    const std::uint64_t bucket = (product_id & kProductHashMask) * kProductHashMultiplier % kProductHashBuckets;
    return kBringForwardSpreadLow +
           (1 - kBringForwardSpreadLow) * static_cast<double>(bucket) / static_cast<double>(kProductHashBuckets);
}

double bounded_interval_s(double base_interval_s, double shortest_s, double longest_s, double pressure,
                          const ScheduleTuning& tuning) {
    ScheduleBounds bounds;
    bounds.shortest_s = shortest_s;
    bounds.longest_s = longest_s;
    const Bounds b = sane_bounds(bounds);
    return bounded(positive_or(base_interval_s, b.longest) * positive_or(pressure, 1), bounds, tuning);
}

double latest_next_check_s(double now_s, double base_interval_s, double shortest_s, double longest_s,
                           double pressure, std::uint64_t product_id, const ScheduleTuning& tuning) {
    return now_s + bounded_interval_s(base_interval_s, shortest_s, longest_s, pressure, tuning) *
                       bring_forward_spread(product_id);
}

double brought_forward_s(double next_check_s, double now_s, double base_interval_s, double shortest_s,
                         double longest_s, double pressure, std::uint64_t product_id,
                         const ScheduleTuning& tuning) {
    ScheduleBounds bounds;
    bounds.longest_s = longest_s;
    const double longest = sane_bounds(bounds).longest;
    const double interval = bounded_interval_s(base_interval_s, shortest_s, longest_s, pressure, tuning);
    if (!(next_check_s > now_s + interval) || next_check_s > now_s + longest) return next_check_s;
    // latest_next_check_s, with the interval computed once
    return std::min(next_check_s, now_s + interval * bring_forward_spread(product_id));
}

ScheduleTuning time_scaled(const ScheduleTuning& tuning, double scale) {
    const double s = std::isfinite(scale) && scale >= 1 ? scale : 1;
    ScheduleTuning scaled = tuning;
    scaled.request_worth_s /= s;
    scaled.rate_memory_s /= s;
    scaled.round_gap_s /= s;
    scaled.quiet_s /= s;
    scaled.quiet_max_s /= s;
    scaled.prior_rate_per_s *= s;
    return scaled;
}

}  // namespace demper::core
