// market_model.hpp: a simulated Kaspi.kz market around one seller, reproducible by seed.
//
// One model, two drivers: the mock marketplace serves its books and feeds it the seller's pushed
// prices in wall-clock time (test/mock/README.md, "Simulated market"), and the schedule simulator
// (bench/market_sim.cpp) drives it in virtual time. Pure C++17, no I/O: both build this file.
//
// Vocabulary. Each *product* is one of the seller's listings (its *listing*: start price, floor,
// ceiling) among *competitors* of three kinds:
//   quiet   changes its price rarely (days to weeks apart), a small random move;
//   active  a person or a slow repricer: every 20 minutes to 8 hours, half of the time undercutting
//           the cheapest offer by a small step, otherwise a random move;
//   bot     a repricer that reacts within seconds to any change of the book: cheapest other offer
//           minus its step, within its floor and ceiling (it raises back too). Bots do nothing on
//           their own.
// A product's kind is its liveliest competitor's. The times of quiet and active competitors' moves
// come from each competitor's own random stream, so two runs with the same seed see the same
// market events whatever the seller does; what those moves do (undercut whom) and the bots'
// answers depend on the book at that moment.
//
// Ground truth, over the measurement window (start_measuring): the product-time the seller was
// first (strictly the cheapest offer; alone counts as first), the time it was not first although a
// price at or above its floor would have been (*winnable*), every *undercut* (a competitor's move
// that takes first place from the seller) and the time to the seller's next check of that product
// (the *reaction*), the seller's moves onto its floor and its time there, the *margin kept*
// (time-average of price − floor over the start's price − floor), and the longest time a product
// went unchecked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace demper_market {

enum class Kind : std::uint8_t { quiet, active, bot };
const char* kind_name(Kind kind);

// MarketMix is what a market is made of; the defaults are the "realistic mix" of issue 17
// (bench/README.md, "Adaptive schedule", says why).
struct MarketMix {
    std::uint64_t seed = 1;
    std::size_t products = 10000;
    std::uint64_t first_code = 1;           // product card ids first_code, first_code + 1, ...
    std::string seller = "OWN1";            // the seller's merchant id (its offer is in every book)
    double bot_share = 0.05;                // products with a repricer bot among their competitors
    double active_share = 0.25;             // products with an active competitor (and no bot)
    double mean_competitors = 3.5;          // 1 + Poisson(mean − 1), at most 12
    double other_active_share = 0.2;        // chance that any further competitor is active
    double quiet_gap_min_s = 86400;         // mean time between a quiet competitor's moves,
    double quiet_gap_max_s = 30 * 86400.0;  // log-uniform in [min, max]
    double active_gap_min_s = 1200;         // the same for active competitors
    double active_gap_max_s = 8 * 3600.0;
    double active_undercut_share = 0.5;  // share of an active competitor's moves that undercut
    double bot_reaction_min_s = 2;       // a bot answers a change this long after it (log-uniform)
    double bot_reaction_max_s = 60;
    double seller_floor_min = 0.82;  // the seller's floor is its start price times U(min, max)
    double seller_floor_max = 0.95;
    double seller_ceiling = 1.25;  // and its ceiling its start price times this
};

struct Quote {
    std::string merchant;
    std::int64_t price = 0;
};

struct Listing {
    std::string code;
    std::int64_t start_price = 0;
    std::int64_t floor = 0;
    std::int64_t ceiling = 0;
    Kind kind = Kind::quiet;
};

struct Reactions {
    std::size_t count = 0;
    double p50_s = 0;
    double p95_s = 0;
    double mean_s = 0;
};

struct KindSummary {
    std::size_t products = 0;
    double first_share = 0;
    double winnable_lost_share = 0;
    double margin_kept = 0;
    std::uint64_t undercuts = 0;  // undercuts by competitors of this kind (any product)
    Reactions reactions;          // of those undercuts
};

struct MarketSummary {
    double window_s = 0;
    std::size_t products = 0;
    std::uint64_t checks = 0;        // record_check calls in the window
    double first_share = 0;          // of product-time
    double winnable_lost_share = 0;  // of product-time
    std::uint64_t undercuts = 0;
    std::uint64_t answered = 0;     // undercuts followed by a check within the window
    Reactions reactions;            // all answered undercuts
    std::uint64_t floor_moves = 0;  // the seller's price set onto its floor
    double floor_time_share = 0;
    double margin_kept = 0;
    double max_unchecked_s = 0;  // longest gap between two checks of a product (the
                                 // window's start and end count as checks)
    std::uint64_t seller_changes = 0;
    KindSummary by_kind[3];
};

class MarketModel {
  public:
    explicit MarketModel(const MarketMix& mix);

    const MarketMix& mix() const { return mix_; }
    std::size_t size() const { return products_.size(); }
    const Listing& listing(std::size_t product) const { return products_[product].listing; }
    std::optional<std::size_t> product_of(std::string_view code) const;
    double now() const { return now_; }

    // advance processes every market event up to `t` (market seconds from the start); an earlier
    // `t` does nothing.
    void advance(double t);
    // quotes is the book now: every competitor and the seller, cheapest first, ties by merchant.
    void quotes(std::size_t product, std::vector<Quote>& out) const;
    std::int64_t seller_price(std::size_t product) const { return products_[product].seller_price; }
    // move_rate_per_s is the sum of the product's quiet and active competitors' move rates (what an
    // oracle knows and a repricer has to learn; bench/market_sim's --oracle); bots are not counted.
    double move_rate_per_s(std::size_t product) const;
    // set_seller_price makes the seller's price `price` from `visible_at` (at least now): what
    // competitors see and react to.
    void set_seller_price(std::size_t product, std::int64_t price, double visible_at);
    // record_check says the seller checked the product at `t` (now or later).
    void record_check(std::size_t product, double t);

    // start_measuring starts the window of the ground truth at `t` (advancing to it).
    void start_measuring(double t);
    // summary advances to `t` and sums up the window so far.
    MarketSummary summary(double t);

    // keep_timeline records, from now on, every change of each product's seller price and first
    // place (for timeline_json), starting with where each product is now.
    void keep_timeline(bool keep);
    // timeline_json: {"code","floor","start_price","kind","points":[[t,seller_price,"first"],...]}
    // where "first" is the merchant in first place ("" for the seller).
    std::string timeline_json(std::size_t product) const;
    // catalogue_json: {"seller":..,"products":[{"code","start_price","floor","ceiling","kind"}]}
    std::string catalogue_json() const;
    static std::string summary_json(const MarketSummary& summary);
    // reactions_json: {"reactions":{"quiet":[s,...],"active":[...],"bot":[...]}}, every answered
    // undercut of the window by the kind of the competitor that undercut, in market seconds.
    std::string reactions_json() const;

  private:
    struct Competitor {
        std::string merchant;
        Kind kind = Kind::quiet;
        std::int64_t price = 0;
        std::int64_t base = 0;
        std::int64_t floor = 0;
        std::int64_t ceiling = 0;
        std::int64_t step = 1;
        double mean_gap_s = 0;
        double reaction_s = 0;
        std::uint64_t stream = 0;
        bool reaction_pending = false;
    };
    struct TimelinePoint {
        double t;
        std::int64_t seller_price;
        int first;  // competitor index in first place, -1 for the seller
    };
    struct Product {
        Listing listing;
        std::vector<Competitor> competitors;
        std::int64_t seller_price = 0;
        int leader = -1;          // competitor index in first place, -1 for the seller
        bool winnable = false;    // not first, but a price >= floor would be
        double accounted_to = 0;  // integrals below are summed up to here
        double first_s = 0;
        double winnable_lost_s = 0;
        double floor_s = 0;
        double margin_s = 0;      // integral of price − floor
        double undercut_at = -1;  // pending undercut, not yet answered by a check
        Kind undercut_by = Kind::quiet;
        double last_check = 0;
        double max_gap = 0;
        std::vector<TimelinePoint> timeline;
    };
    enum class EventType : std::uint8_t { move, reaction, seller };
    struct Event {
        double t;
        std::uint64_t sequence;
        std::uint32_t product;
        std::int32_t competitor;
        std::int64_t price;
        EventType type;
        bool operator>(const Event& other) const {
            return t != other.t ? t > other.t : sequence > other.sequence;
        }
    };

    void build(std::size_t index);
    void push(double t, std::uint32_t product, std::int32_t competitor, EventType type,
              std::int64_t price = 0);
    void apply(const Event& event);
    void move(Product& product, std::size_t competitor, double t);
    void react(Product& product, std::size_t competitor, double t);
    // rank finds who is first (the seller when strictly the cheapest) and whether first is
    // winnable.
    void rank(Product& product);
    // changed: re-rank after a price change at `t` by `who` (-1: the seller) and wake the bots.
    void changed(std::uint32_t index, int who, double t);
    void account(Product& product, double t);
    std::int64_t cheapest_other(const Product& product, int except) const;

    MarketMix mix_;
    std::vector<Product> products_;
    std::unordered_map<std::string, std::size_t> by_code_;
    std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
    std::uint64_t sequence_ = 0;
    double now_ = 0;
    double measure_from_ = 0;
    bool keep_timeline_ = false;
    std::uint64_t checks_ = 0;
    std::uint64_t floor_moves_ = 0;
    std::uint64_t seller_changes_ = 0;
    std::vector<float> reactions_[3];  // by the kind of the competitor that undercut
    std::uint64_t undercuts_[3] = {0, 0, 0};
};

}  // namespace demper_market
