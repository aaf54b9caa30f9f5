// market_model.cpp: the simulated market's events and its ground truth (see market_model.hpp).
#include "market_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace demper_market {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr std::int64_t kMarketplaceMinPrice = 10;
constexpr std::int64_t kNoPrice = std::numeric_limits<std::int64_t>::max();
constexpr double kMedianBasePrice = 20000;  // ₸: a typical product card
constexpr double kBasePriceSpread = 1.2;    // sigma of the log of the base price
constexpr double kMinBasePrice = 200;
constexpr double kMaxBasePrice = 5'000'000;
constexpr double kWalkSigma = 0.03;     // a random move: about ±3 %
constexpr double kWalkReversion = 0.2;  // pulled back toward the base price
constexpr int kMaxCompetitors = 12;
constexpr int kBotMerchants = 40;  // a few repricer bots sell many products each
constexpr int kOtherMerchants = 5000;
constexpr int kStreamSlots = 64;    // random streams per product: one per competitor, one
constexpr int kProductStream = 63;  // for building the product

std::uint64_t mix64(std::uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// uniform draws from a splitmix64 stream: [0, 1).
double uniform(std::uint64_t& state) {
    state += 0x9E3779B97F4A7C15ULL;
    return static_cast<double>(mix64(state) >> 11) * 0x1.0p-53;
}

double between(std::uint64_t& state, double low, double high) {
    return low + (high - low) * uniform(state);
}

double log_between(std::uint64_t& state, double low, double high) {
    return std::exp(between(state, std::log(low), std::log(high)));
}

double normal(std::uint64_t& state) {
    const double u1 = 1 - uniform(state);  // (0, 1]
    const double u2 = uniform(state);
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * kPi * u2);
}

int poisson(std::uint64_t& state, double mean) {
    const double limit = std::exp(-std::max(0.0, mean));
    double product = uniform(state);
    int k = 0;
    while (product > limit && k < 1000) {
        product *= uniform(state);
        ++k;
    }
    return k;
}

std::int64_t whole(double price) {
    return std::max<std::int64_t>(kMarketplaceMinPrice,
                                  static_cast<std::int64_t>(std::llround(price)));
}

std::uint64_t stream_of(std::uint64_t seed, std::size_t product, int slot) {
    return mix64(seed * 0x9E3779B97F4A7C15ULL ^
                 mix64(static_cast<std::uint64_t>(product) * kStreamSlots +
                       static_cast<std::uint64_t>(slot) + 1));
}

void append_string(std::string& out, std::string_view text) {
    out += '"';
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
            out += escaped;
        } else {
            out += c;
        }
    }
    out += '"';
}

void append_number(std::string& out, double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.6g", std::isfinite(value) ? value : 0.0);
    out += text;
}

void append_seconds(std::string& out, double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", std::isfinite(value) ? value : 0.0);
    out += text;
}

Reactions reactions_of(std::vector<float> samples) {
    Reactions r;
    r.count = samples.size();
    if (samples.empty()) return r;
    std::sort(samples.begin(), samples.end());
    auto rank = [&samples](double p) {
        const std::size_t k =
            static_cast<std::size_t>(std::ceil(p * static_cast<double>(samples.size())));
        return static_cast<double>(samples[std::min(samples.size() - 1, k == 0 ? 0 : k - 1)]);
    };
    r.p50_s = rank(0.5);
    r.p95_s = rank(0.95);
    double sum = 0;
    for (float s : samples) sum += s;
    r.mean_s = sum / static_cast<double>(samples.size());
    return r;
}

void append_reactions(std::string& out, const Reactions& r) {
    out += "{\"count\":" + std::to_string(r.count) + ",\"p50_s\":";
    append_seconds(out, r.p50_s);
    out += ",\"p95_s\":";
    append_seconds(out, r.p95_s);
    out += ",\"mean_s\":";
    append_seconds(out, r.mean_s);
    out += '}';
}

}  // namespace

const char* kind_name(Kind kind) {
    switch (kind) {
        case Kind::quiet:
            return "quiet";
        case Kind::active:
            return "active";
        case Kind::bot:
            return "bot";
    }
    return "quiet";
}

MarketModel::MarketModel(const MarketMix& mix) : mix_(mix) {
    products_.resize(mix.products);
    by_code_.reserve(mix.products);
    for (std::size_t i = 0; i < mix.products; ++i) build(i);
}

// build draws product `index` from its own stream, and its competitors' first events from theirs.
void MarketModel::build(std::size_t index) {
    Product& p = products_[index];
    std::uint64_t r = stream_of(mix_.seed, index, kProductStream);
    const double u = uniform(r);
    const Kind kind = u < mix_.bot_share                       ? Kind::bot
                      : u < mix_.bot_share + mix_.active_share ? Kind::active
                                                               : Kind::quiet;
    int count = std::min(kMaxCompetitors, 1 + poisson(r, mix_.mean_competitors - 1));
    if (kind == Kind::bot) count = std::max(count, 2);
    const double base =
        std::clamp(std::exp(std::log(kMedianBasePrice) + kBasePriceSpread * normal(r)),
                   kMinBasePrice, kMaxBasePrice);
    for (int j = 0; j < count; ++j) {
        Competitor c;
        c.stream = stream_of(mix_.seed, index, j);
        if (j == 0)
            c.kind = kind;
        else
            c.kind = kind != Kind::quiet && uniform(r) < mix_.other_active_share ? Kind::active
                                                                                 : Kind::quiet;
        c.base = whole(base);
        c.ceiling = whole(base * 1.3);
        if (c.kind == Kind::bot) {
            c.price = whole(base * between(r, 1.0, 1.03));
            c.floor = whole(base * between(r, 0.75, 0.95));
            const double share =
                between(r, 0.001, 0.01);  // most bots step by a share of the price,
            c.step = uniform(r) < 0.3
                         ? 1
                         : std::max<std::int64_t>(1, std::llround(base * share));  // some by 1 ₸
            c.reaction_s = log_between(r, mix_.bot_reaction_min_s, mix_.bot_reaction_max_s);
        } else {
            c.price = whole(base * between(r, 1.01, 1.15));
            c.floor = whole(base * between(r, 0.85, 0.97));
            c.step = std::max<std::int64_t>(1, std::llround(base * between(r, 0.0, 0.005)));
            c.mean_gap_s = c.kind == Kind::active
                               ? log_between(r, mix_.active_gap_min_s, mix_.active_gap_max_s)
                               : log_between(r, mix_.quiet_gap_min_s, mix_.quiet_gap_max_s);
        }
        for (int attempt = 0;; ++attempt) {
            const int pool = c.kind == Kind::bot ? kBotMerchants : kOtherMerchants;
            const int pick = static_cast<int>(uniform(r) * pool) + attempt;
            c.merchant = std::to_string((c.kind == Kind::bot ? 30090000 : 30100000) + pick);
            bool taken = false;
            for (const Competitor& other : p.competitors)
                taken = taken || other.merchant == c.merchant;
            if (!taken) break;
        }
        p.competitors.push_back(std::move(c));
    }
    std::int64_t cheapest = kNoPrice;
    for (const Competitor& c : p.competitors) cheapest = std::min(cheapest, c.price);
    p.listing.code = std::to_string(mix_.first_code + index);
    p.listing.kind = kind;
    p.listing.start_price = whole(static_cast<double>(cheapest - 1));
    p.listing.floor = std::min(p.listing.start_price,
                               whole(static_cast<double>(p.listing.start_price) *
                                     between(r, mix_.seller_floor_min, mix_.seller_floor_max)));
    p.listing.ceiling =
        std::max(p.listing.start_price,
                 whole(static_cast<double>(p.listing.start_price) * mix_.seller_ceiling));
    p.seller_price = p.listing.start_price;
    rank(p);
    by_code_.emplace(p.listing.code, index);
    for (std::size_t j = 0; j < p.competitors.size(); ++j) {
        Competitor& c = p.competitors[j];
        if (c.kind == Kind::bot) {  // a bot looks at the book it starts with
            c.reaction_pending = true;
            push(c.reaction_s, static_cast<std::uint32_t>(index), static_cast<std::int32_t>(j),
                 EventType::reaction);
        } else {
            push(-c.mean_gap_s * std::log(1 - uniform(c.stream)), static_cast<std::uint32_t>(index),
                 static_cast<std::int32_t>(j), EventType::move);
        }
    }
}

std::optional<std::size_t> MarketModel::product_of(std::string_view code) const {
    auto it = by_code_.find(std::string(code));
    if (it == by_code_.end()) return std::nullopt;
    return it->second;
}

void MarketModel::push(double t, std::uint32_t product, std::int32_t competitor, EventType type,
                       std::int64_t price) {
    events_.push(Event{t, sequence_++, product, competitor, price, type});
}

void MarketModel::advance(double t) {
    while (!events_.empty() && events_.top().t <= t) {
        const Event event = events_.top();
        events_.pop();
        now_ = std::max(now_, event.t);
        apply(event);
    }
    now_ = std::max(now_, t);
}

void MarketModel::apply(const Event& event) {
    Product& p = products_[event.product];
    account(p, event.t);
    switch (event.type) {
        case EventType::move:
            move(p, static_cast<std::size_t>(event.competitor), event.t);
            break;
        case EventType::reaction:
            react(p, static_cast<std::size_t>(event.competitor), event.t);
            break;
        case EventType::seller: {
            const std::int64_t before = p.seller_price;
            if (event.price == before) return;
            p.seller_price = event.price;
            if (event.t >= measure_from_) {
                ++seller_changes_;
                if (event.price <= p.listing.floor && before > p.listing.floor) ++floor_moves_;
            }
            changed(event.product, -1, event.t);
            break;
        }
    }
}

std::int64_t MarketModel::cheapest_other(const Product& p, int except) const {
    std::int64_t cheapest = except == -1 ? kNoPrice : p.seller_price;
    for (std::size_t k = 0; k < p.competitors.size(); ++k)
        if (static_cast<int>(k) != except) cheapest = std::min(cheapest, p.competitors[k].price);
    return cheapest;
}

// move is a quiet or active competitor's own price move; it then draws its next move's time. Every
// move takes the same three draws plus one for the gap, whatever it does, so the stream of event
// times does not depend on the book.
void MarketModel::move(Product& p, std::size_t j, double t) {
    Competitor& c = p.competitors[j];
    const double z = normal(c.stream);
    const double chance = uniform(c.stream);
    std::int64_t price = c.price;
    bool undercut = false;
    if (c.kind == Kind::active && chance < mix_.active_undercut_share) {
        const std::int64_t other = cheapest_other(p, static_cast<int>(j));
        if (other != kNoPrice && other - c.step >= c.floor) {
            price = std::min(c.ceiling, other - c.step);
            undercut = true;
        }
    }
    if (!undercut) {
        const double pull =
            std::pow(static_cast<double>(c.base) / static_cast<double>(c.price), kWalkReversion);
        price = std::clamp(whole(static_cast<double>(c.price) * std::exp(kWalkSigma * z) * pull),
                           c.floor, c.ceiling);
    }
    const double gap = -c.mean_gap_s * std::log(1 - uniform(c.stream));
    push(t + gap, static_cast<std::uint32_t>(&p - products_.data()), static_cast<std::int32_t>(j),
         EventType::move);
    if (price != c.price) {
        c.price = price;
        changed(static_cast<std::uint32_t>(&p - products_.data()), static_cast<int>(j), t);
    }
}

void MarketModel::react(Product& p, std::size_t j, double t) {
    Competitor& c = p.competitors[j];
    c.reaction_pending = false;
    const std::int64_t other = cheapest_other(p, static_cast<int>(j));
    if (other == kNoPrice) return;
    const std::int64_t price = std::clamp(other - c.step, c.floor, c.ceiling);
    if (price == c.price) return;
    c.price = price;
    changed(static_cast<std::uint32_t>(&p - products_.data()), static_cast<int>(j), t);
}

void MarketModel::rank(Product& p) {
    std::int64_t cheapest = kNoPrice;
    int leader = -1;
    for (std::size_t k = 0; k < p.competitors.size(); ++k) {
        const Competitor& c = p.competitors[k];
        if (c.price < cheapest ||
            (c.price == cheapest &&
             c.merchant < p.competitors[static_cast<std::size_t>(leader)].merchant)) {
            cheapest = c.price;
            leader = static_cast<int>(k);
        }
    }
    if (leader >= 0 && p.seller_price < cheapest) leader = -1;  // strictly cheaper: first
    p.leader = leader;
    p.winnable = leader >= 0 && cheapest - 1 >= p.listing.floor;
}

void MarketModel::changed(std::uint32_t index, int who, double t) {
    Product& p = products_[index];
    const int before = p.leader;
    rank(p);
    const int leader = p.leader;
    if (before == -1 && leader >= 0 && who >= 0 && t >= measure_from_) {
        const Kind by = p.competitors[static_cast<std::size_t>(who)].kind;
        ++undercuts_[static_cast<int>(by)];
        if (p.undercut_at < 0) {
            p.undercut_at = t;
            p.undercut_by = by;
        }
    } else if (leader == -1) {
        p.undercut_at = -1;  // first again before a check: nothing left to answer
    }
    for (std::size_t k = 0; k < p.competitors.size(); ++k) {
        Competitor& c = p.competitors[k];
        if (c.kind != Kind::bot || static_cast<int>(k) == who || c.reaction_pending) continue;
        c.reaction_pending = true;
        push(t + c.reaction_s, index, static_cast<std::int32_t>(k), EventType::reaction);
    }
    if (keep_timeline_ && (who == -1 || leader != before))
        p.timeline.push_back({t, p.seller_price, leader});
}

void MarketModel::account(Product& p, double t) {
    const double from = std::max(p.accounted_to, measure_from_);
    if (t > from) {
        const double dt = t - from;
        if (p.leader == -1)
            p.first_s += dt;
        else if (p.winnable)
            p.winnable_lost_s += dt;
        if (p.seller_price <= p.listing.floor) p.floor_s += dt;
        p.margin_s += static_cast<double>(p.seller_price - p.listing.floor) * dt;
    }
    p.accounted_to = std::max(p.accounted_to, t);
}

void MarketModel::quotes(std::size_t product, std::vector<Quote>& out) const {
    const Product& p = products_[product];
    out.clear();
    out.reserve(p.competitors.size() + 1);
    for (const Competitor& c : p.competitors) out.push_back({c.merchant, c.price});
    out.push_back({mix_.seller, p.seller_price});
    std::sort(out.begin(), out.end(), [](const Quote& a, const Quote& b) {
        return a.price != b.price ? a.price < b.price : a.merchant < b.merchant;
    });
}

void MarketModel::set_seller_price(std::size_t product, std::int64_t price, double visible_at) {
    push(std::max(visible_at, now_), static_cast<std::uint32_t>(product), -1, EventType::seller,
         std::max(kMarketplaceMinPrice, price));
    if (visible_at <= now_) advance(now_);
}

void MarketModel::record_check(std::size_t product, double t) {
    Product& p = products_[product];
    if (t < measure_from_) return;
    ++checks_;
    p.max_gap = std::max(p.max_gap, t - p.last_check);
    p.last_check = std::max(p.last_check, t);
    if (p.undercut_at >= 0) {
        reactions_[static_cast<int>(p.undercut_by)].push_back(
            static_cast<float>(t - p.undercut_at));
        p.undercut_at = -1;
    }
}

void MarketModel::start_measuring(double t) {
    advance(t);
    measure_from_ = t;
    for (Product& p : products_) {
        p.accounted_to = t;
        p.first_s = p.winnable_lost_s = p.floor_s = p.margin_s = 0;
        p.undercut_at = -1;
        p.last_check = t;
        p.max_gap = 0;
    }
    checks_ = floor_moves_ = seller_changes_ = 0;
    for (int k = 0; k < 3; ++k) {
        reactions_[k].clear();
        undercuts_[k] = 0;
    }
}

MarketSummary MarketModel::summary(double t) {
    advance(t);
    MarketSummary s;
    s.window_s = std::max(0.0, t - measure_from_);
    s.products = products_.size();
    s.checks = checks_;
    s.floor_moves = floor_moves_;
    s.seller_changes = seller_changes_;
    double first = 0, winnable = 0, at_floor = 0, margin = 0, margin_norm = 0;
    double kind_first[3] = {0, 0, 0}, kind_winnable[3] = {0, 0, 0}, kind_margin[3] = {0, 0, 0},
           kind_norm[3] = {0, 0, 0};
    for (Product& p : products_) {
        account(p, t);
        const int k = static_cast<int>(p.listing.kind);
        const double norm =
            static_cast<double>(p.listing.start_price - p.listing.floor) * s.window_s;
        first += p.first_s;
        winnable += p.winnable_lost_s;
        at_floor += p.floor_s;
        margin += p.margin_s;
        margin_norm += norm;
        kind_first[k] += p.first_s;
        kind_winnable[k] += p.winnable_lost_s;
        kind_margin[k] += p.margin_s;
        kind_norm[k] += norm;
        ++s.by_kind[k].products;
        s.max_unchecked_s = std::max({s.max_unchecked_s, p.max_gap, t - p.last_check});
    }
    const double product_time = s.window_s * static_cast<double>(s.products);
    if (product_time > 0) {
        s.first_share = first / product_time;
        s.winnable_lost_share = winnable / product_time;
        s.floor_time_share = at_floor / product_time;
    }
    s.margin_kept = margin_norm > 0 ? margin / margin_norm : 0;
    std::vector<float> all;
    for (int k = 0; k < 3; ++k) {
        KindSummary& ks = s.by_kind[k];
        const double time = s.window_s * static_cast<double>(ks.products);
        if (time > 0) {
            ks.first_share = kind_first[k] / time;
            ks.winnable_lost_share = kind_winnable[k] / time;
        }
        ks.margin_kept = kind_norm[k] > 0 ? kind_margin[k] / kind_norm[k] : 0;
        ks.undercuts = undercuts_[k];
        ks.reactions = reactions_of(reactions_[k]);
        s.undercuts += undercuts_[k];
        all.insert(all.end(), reactions_[k].begin(), reactions_[k].end());
    }
    s.answered = all.size();
    s.reactions = reactions_of(std::move(all));
    return s;
}

void MarketModel::keep_timeline(bool keep) {
    if (keep && !keep_timeline_)
        for (Product& p : products_) p.timeline.push_back({now_, p.seller_price, p.leader});
    keep_timeline_ = keep;
}

std::string MarketModel::timeline_json(std::size_t product) const {
    const Product& p = products_[product];
    std::string out = "{\"code\":";
    append_string(out, p.listing.code);
    out += ",\"start_price\":" + std::to_string(p.listing.start_price);
    out += ",\"floor\":" + std::to_string(p.listing.floor);
    out += ",\"kind\":\"" + std::string(kind_name(p.listing.kind)) + "\",\"points\":[";
    for (std::size_t i = 0; i < p.timeline.size(); ++i) {
        const TimelinePoint& point = p.timeline[i];
        if (i) out += ',';
        out += '[';
        append_seconds(out, point.t);
        out += ',' + std::to_string(point.seller_price) + ',';
        append_string(out, point.first < 0
                               ? std::string()
                               : p.competitors[static_cast<std::size_t>(point.first)].merchant);
        out += ']';
    }
    out += "]}";
    return out;
}

double MarketModel::move_rate_per_s(std::size_t product) const {
    double rate = 0;
    for (const Competitor& c : products_[product].competitors)
        if (c.kind != Kind::bot && c.mean_gap_s > 0) rate += 1 / c.mean_gap_s;
    return rate;
}

std::string MarketModel::catalogue_json() const {
    std::string out = "{\"seller\":";
    append_string(out, mix_.seller);
    out += ",\"products\":[";
    for (std::size_t i = 0; i < products_.size(); ++i) {
        const Listing& l = products_[i].listing;
        if (i) out += ',';
        out += "{\"code\":";
        append_string(out, l.code);
        out += ",\"start_price\":" + std::to_string(l.start_price) +
               ",\"floor\":" + std::to_string(l.floor) +
               ",\"ceiling\":" + std::to_string(l.ceiling) + ",\"kind\":\"" + kind_name(l.kind) +
               "\"}";
    }
    out += "]}";
    return out;
}

std::string MarketModel::reactions_json() const {
    std::string out = "{\"reactions\":{";
    for (int k = 0; k < 3; ++k) {
        if (k) out += ',';
        out += '"' + std::string(kind_name(static_cast<Kind>(k))) + "\":[";
        for (std::size_t i = 0; i < reactions_[k].size(); ++i) {
            if (i) out += ',';
            append_seconds(out, reactions_[k][i]);
        }
        out += ']';
    }
    out += "}}";
    return out;
}

std::string MarketModel::summary_json(const MarketSummary& s) {
    std::string out = "{\"window_s\":";
    append_seconds(out, s.window_s);
    out += ",\"products\":" + std::to_string(s.products);
    out += ",\"checks\":" + std::to_string(s.checks);
    out += ",\"first_share\":";
    append_number(out, s.first_share);
    out += ",\"winnable_lost_share\":";
    append_number(out, s.winnable_lost_share);
    out += ",\"undercuts\":" + std::to_string(s.undercuts);
    out += ",\"answered\":" + std::to_string(s.answered);
    out += ",\"reactions\":";
    append_reactions(out, s.reactions);
    out += ",\"floor_moves\":" + std::to_string(s.floor_moves);
    out += ",\"floor_time_share\":";
    append_number(out, s.floor_time_share);
    out += ",\"margin_kept\":";
    append_number(out, s.margin_kept);
    out += ",\"max_unchecked_s\":";
    append_seconds(out, s.max_unchecked_s);
    out += ",\"seller_changes\":" + std::to_string(s.seller_changes);
    out += ",\"by_kind\":{";
    for (int k = 0; k < 3; ++k) {
        const KindSummary& ks = s.by_kind[k];
        if (k) out += ',';
        out += '"' + std::string(kind_name(static_cast<Kind>(k))) +
               "\":{\"products\":" + std::to_string(ks.products);
        out += ",\"first_share\":";
        append_number(out, ks.first_share);
        out += ",\"winnable_lost_share\":";
        append_number(out, ks.winnable_lost_share);
        out += ",\"margin_kept\":";
        append_number(out, ks.margin_kept);
        out += ",\"undercuts\":" + std::to_string(ks.undercuts) + ",\"reactions\":";
        append_reactions(out, ks.reactions);
        out += '}';
    }
    out += "}}";
    return out;
}

}  // namespace demper_market
