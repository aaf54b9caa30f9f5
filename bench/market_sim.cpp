// market_sim: the adaptive schedule against fixed intervals, offline, over the same simulated
// market.
//
// The market is the mock's model (test/mock/market_model.hpp, the same code the mock serves); the
// seller is demper's own code: core::decide_price for fixed intervals, core::decide_and_schedule
// for the adaptive schedule, with the pressure solved every minute from every product's base
// interval exactly as the worker is meant to (core::solve_pressure over groups of rounded base
// intervals). Requests go out through a limiter that spaces them 1/budget apart, due products
// oldest first, so no 1 s window ever holds more than the budget. Virtual time: a simulated day
// of 10,000 products takes seconds.
//
//   market_sim                        the standard experiment (bench/README.md, "Adaptive
//   schedule") market_sim --quick                the same on a shorter window market_sim --mode
//   adaptive --budget 5 --policy keep_margin --tune war_stake=0.2   one run
// Options: --seed N --products N --budget R --hours H --warmup-hours H --shortest S --longest S
// --default S --publish-delay S --headroom H --csv FILE (one line per run) --tune name=value
// (a ScheduleTuning field) --mix name=value (a MarketMix field, e.g. --mix seller_floor_min=0.6)
// --kind-intervals Q,A,B (one run of the class oracle: fixed intervals of Q, A and B seconds for
// the products whose liveliest competitor is quiet, active or a bot, a split no repricer can see;
// bench/README.md, "Adaptive schedule", uses it to bound what any allocation by class can do).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <queue>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/price_rule.hpp"
#include "core/schedule.hpp"
#include "market_model.hpp"

namespace {

using demper::core::WarPolicy;
using demper_market::MarketMix;
using demper_market::MarketModel;
using demper_market::MarketSummary;

enum class Mode { fixed, adaptive };

struct SimConfig {
    std::string label;
    Mode mode = Mode::fixed;
    double budget_rps = 10;
    WarPolicy policy = WarPolicy::follow;
    demper::core::ScheduleBounds bounds{30, 7200, 900};
    double warmup_s = 12 * 3600.0;
    double measure_s = 48 * 3600.0;
    double publish_delay_s = 1;
    double headroom = 0.95;  // the schedule asks for this share of the budget (retries, check_now)
    double pressure_every_s = 60;
    double pressure_moved_every_s = 10;  // while the pressure moves by more than 1.25x
    demper::core::ScheduleTuning tuning;
    // The class oracle (--kind-intervals): fixed intervals per kind of product (quiet, active,
    // bot), which the market knows and a repricer does not; 0: the fixed interval.
    double kind_interval_s[3] = {0, 0, 0};
    // The rate oracle (--oracle B): each product's interval from its competitors' true move rate
    // by the square-root rule, scaled so that the catalogue asks for the budget, within the bounds;
    // products with a bot every B seconds. 0: off.
    double oracle_bot_interval_s = 0;
};

struct SimResult {
    SimConfig config;
    MarketSummary market;
    double fixed_interval_s = 0;
    std::size_t max_window = 0;  // most requests in any 1 s window, over the whole run
    double mean_pressure = 0;
    double wall_s = 0;
    std::uint64_t checks_by_kind[3] = {0, 0, 0};  // measured window
    double max_late_s = 0;                        // longest a due product waited for its turn
    std::uint64_t brought_forward = 0;            // next checks moved when the pressure fell (whole run)
};

std::uint64_t hash64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// pressure_for groups the products by rounded base interval, as the worker would with one SQL
// GROUP BY, and solves the pressure for the budget.
double pressure_for(const std::vector<double>& base, const SimConfig& config) {
    std::map<long, double> groups;
    for (double b : base) groups[std::lround(std::log(std::max(b, 1e-3)) * 8)] += 1;
    std::vector<demper::core::DemandGroup> demand;
    for (const auto& [key, count] : groups)
        demand.push_back({std::exp(static_cast<double>(key) / 8), config.bounds.shortest_s,
                          config.bounds.longest_s, count});
    return demper::core::solve_pressure(demand, config.budget_rps * config.headroom, config.tuning);
}

SimResult simulate(const MarketMix& mix, const SimConfig& config) {
    const auto started = std::chrono::steady_clock::now();
    SimResult result;
    result.config = config;
    MarketModel market(mix);
    const std::size_t n = market.size();
    const double spacing = 1.0 / config.budget_rps * (1 + 1e-9);
    // Both modes send the same number of requests: fixed intervals at the rate the adaptive
    // schedule aims at (the budget times the headroom).
    result.fixed_interval_s = static_cast<double>(n) / (config.budget_rps * config.headroom);
    const double fixed_interval = result.fixed_interval_s;

    std::vector<std::int64_t> price(n);
    std::vector<demper::core::PricingRule> rules(n);
    std::vector<demper::core::ScheduleState> states(n);
    std::vector<double> base(n, config.bounds.default_s);
    using Due = std::pair<double, std::size_t>;
    std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due;
    // A new catalogue's first checks are spread over one interval, and never faster than the budget
    // carries them (the first round would otherwise leave a wave that comes back every interval).
    const double first_spread = config.mode == Mode::fixed
                                    ? fixed_interval
                                    : std::max(config.bounds.default_s, fixed_interval);
    std::vector<double> oracle(n, 0);
    if (config.oracle_bot_interval_s > 0) {
        const double longest = config.bounds.longest_s * (1 - config.tuning.deadline_slack_share);
        auto interval_of = [&](std::size_t i, double c) {
            if (market.listing(i).kind == demper_market::Kind::bot)
                return config.oracle_bot_interval_s;
            const double rate = market.move_rate_per_s(i);
            return rate > 0 ? std::clamp(c / std::sqrt(rate), config.bounds.shortest_s, longest)
                            : longest;
        };
        double low = 1e-3, high = 1e6;  // c: demand falls as c grows
        for (int k = 0; k < 100; ++k) {
            const double c = std::sqrt(low * high);
            double demand = 0;
            for (std::size_t i = 0; i < n; ++i) demand += 1 / interval_of(i, c);
            (demand > config.budget_rps * config.headroom ? low : high) = c;
        }
        for (std::size_t i = 0; i < n; ++i) oracle[i] = interval_of(i, high);
    }
    for (std::size_t i = 0; i < n; ++i) {
        const demper_market::Listing& l = market.listing(i);
        price[i] = l.start_price;
        rules[i].min_price = l.floor;
        rules[i].max_price = l.ceiling;
        rules[i].excluded_merchants = {mix.seller};
        // First checks spread over one interval, as demper spreads a new catalogue.
        const double spread = static_cast<double>(hash64(i ^ (mix.seed << 20)) >> 11) * 0x1.0p-53;
        due.push({spread * first_spread, i});
    }

    const double end = config.warmup_s + config.measure_s;
    double next_send = 0;
    double pressure = 1;
    double highest_pressure = 0;
    double next_pressure_at = 0;
    double pressure_sum = 0;
    std::size_t pressure_samples = 0;
    bool measuring = false;
    std::deque<double> window;
    std::vector<demper_market::Quote> quotes;
    demper::core::OfferBook book;
    demper::core::CheckSchedule how;
    how.war_policy = config.policy;
    how.bounds = config.bounds;
    for (;;) {
        const double t = std::max(due.top().first, next_send);
        if (t >= end) break;
        if (!measuring && t >= config.warmup_s) {
            market.start_measuring(config.warmup_s);
            measuring = true;
        }
        if (config.mode == Mode::adaptive && t >= next_pressure_at) {
            // As the worker's housekeeping does: measure again sooner while the pressure moves,
            // and bring forward the products scheduled under a pressure it has since fallen from.
            const double before = pressure;
            pressure = pressure_for(base, config);
            next_pressure_at = t + (demper::core::pressure_moved(before, pressure)
                                        ? config.pressure_moved_every_s
                                        : config.pressure_every_s);
            highest_pressure = std::max(highest_pressure, before);
            if (demper::core::pressure_fell(highest_pressure, pressure)) {
                std::vector<Due> waiting;
                waiting.reserve(due.size());
                for (; !due.empty(); due.pop()) {
                    const auto [at, id] = due.top();
                    waiting.push_back({demper::core::brought_forward_s(
                                           at, t, base[id], config.bounds.shortest_s,
                                           config.bounds.longest_s, pressure, id, config.tuning),
                                       id});
                    if (waiting.back().first < at) ++result.brought_forward;
                }
                for (const Due& d : waiting) due.push(d);
                highest_pressure = pressure;
            }
            if (measuring) {
                pressure_sum += pressure;
                ++pressure_samples;
            }
        }
        const std::size_t product = due.top().second;
        if (measuring) result.max_late_s = std::max(result.max_late_s, t - due.top().first);
        if (std::getenv("MARKET_SIM_TRACE") && std::fmod(t, 600) < spacing)
            std::printf("trace t %.0f late %.1f pressure %.3f queue %zu\n", t, t - due.top().first,
                        pressure, due.size());
        due.pop();
        next_send = t + spacing;
        while (!window.empty() && window.front() <= t - 1) window.pop_front();
        window.push_back(t);
        result.max_window = std::max(result.max_window, window.size());

        market.advance(t);
        market.record_check(product, t);
        if (measuring) ++result.checks_by_kind[static_cast<int>(market.listing(product).kind)];
        market.quotes(product, quotes);
        book.offers.resize(quotes.size());
        for (std::size_t k = 0; k < quotes.size(); ++k) {
            book.offers[k].merchant_id = quotes[k].merchant;
            book.offers[k].price = quotes[k].price;
            book.offers[k].delivery_duration = "TOMORROW";
        }
        book.total = static_cast<std::int64_t>(quotes.size());

        how.at_s = t;
        how.pressure = pressure;
        const demper::core::ScheduledDecision scheduled = demper::core::decide_and_schedule(
            states[product], price[product], rules[product], book, how, config.tuning);
        states[product] = scheduled.state;
        base[product] = scheduled.base_interval_s;
        const std::int64_t decided = scheduled.decision.new_price;
        if (decided != price[product]) {
            price[product] = decided;
            market.set_seller_price(product, decided, t + config.publish_delay_s);
        }
        // The interval runs from the check's claim, as in the worker.
        const double by_kind =
            config.kind_interval_s[static_cast<int>(market.listing(product).kind)];
        const double interval = config.mode == Mode::adaptive ? scheduled.interval_s
                                : oracle[product] > 0         ? oracle[product]
                                : by_kind > 0                 ? by_kind
                                                              : fixed_interval;
        due.push({t + interval, product});
    }
    result.market = market.summary(end);
    result.mean_pressure =
        pressure_samples ? pressure_sum / static_cast<double>(pressure_samples) : 1;
    result.wall_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return result;
}

const char* mode_name(Mode mode) { return mode == Mode::fixed ? "fixed" : "adaptive"; }

void print_header() {
    std::printf("%-26s %7s %9s %7s %8s %8s %8s %8s %8s %6s %7s %7s %8s %5s\n", "run", "budget",
                "requests", "first", "lost", "winlost", "p50 s", "p95 s", "p95x s", "floor",
                "margin", "mbot", "maxgap", "win1s");
}

void print_result(const SimResult& r) {
    const MarketSummary& m = r.market;
    const auto& ex = m.by_kind[static_cast<int>(demper_market::Kind::active)].reactions;
    std::printf(
        "%-26s %7.2f %9llu %7.4f %8.4f %8.4f %8.0f %8.0f %8.0f %6llu %7.3f %7.3f %8.0f %5zu\n",
        r.config.label.c_str(), r.config.budget_rps, static_cast<unsigned long long>(m.checks),
        m.first_share, 1 - m.first_share, m.winnable_lost_share, m.reactions.p50_s,
        m.reactions.p95_s, ex.p95_s, static_cast<unsigned long long>(m.floor_moves), m.margin_kept,
        m.by_kind[static_cast<int>(demper_market::Kind::bot)].margin_kept, m.max_unchecked_s,
        r.max_window);
    if (std::getenv("MARKET_SIM_VERBOSE")) {
        for (int k = 0; k < 3; ++k) {
            const auto& ks = m.by_kind[k];
            std::printf(
                "    %-6s products %5zu  requests %5.1f %%  first %.4f  winnable lost %.4f  "
                "undercuts %6llu  "
                "reaction p50 %5.0f p95 %5.0f  margin %.3f\n",
                demper_market::kind_name(static_cast<demper_market::Kind>(k)), ks.products,
                100.0 * static_cast<double>(r.checks_by_kind[k]) /
                    std::max<double>(1, static_cast<double>(m.checks)),
                ks.first_share, ks.winnable_lost_share,
                static_cast<unsigned long long>(ks.undercuts), ks.reactions.p50_s,
                ks.reactions.p95_s, ks.margin_kept);
        }
        std::printf(
            "    pressure %.3f, floor time %.4f, longest wait for a turn %.1f s, brought forward "
            "%llu\n",
            r.mean_pressure, m.floor_time_share, r.max_late_s,
            static_cast<unsigned long long>(r.brought_forward));
    }
    std::fflush(stdout);
}

void write_csv_header(FILE* csv) {
    if (csv == nullptr) return;
    std::fprintf(
        csv,
        "run,mode,policy,budget_rps,requests,requests_per_s,first_share,lost_share,"
        "winnable_lost_share,undercuts,answered,reaction_p50_s,reaction_p95_s,active_p50_s,"
        "active_p95_s,bot_p50_s,bot_p95_s,quiet_p95_s,floor_moves,floor_time_share,margin_kept,"
        "bot_margin_kept,bot_first_share,active_first_share,quiet_first_share,max_unchecked_s,"
        "longest_s,max_requests_1s,mean_pressure,fixed_interval_s\n");
}

void write_csv(FILE* csv, const SimResult& r) {
    if (csv == nullptr) return;
    const MarketSummary& m = r.market;
    const auto& active = m.by_kind[static_cast<int>(demper_market::Kind::active)];
    const auto& bot = m.by_kind[static_cast<int>(demper_market::Kind::bot)];
    const auto& quiet = m.by_kind[static_cast<int>(demper_market::Kind::quiet)];
    std::fprintf(
        csv,
        "%s,%s,%s,%.3f,%llu,%.4f,%.6f,%.6f,%.6f,%llu,%llu,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%llu,%"
        ".6f,"
        "%.4f,%.4f,%.6f,%.6f,%.6f,%.1f,%.1f,%zu,%.4f,%.1f\n",
        r.config.label.c_str(), mode_name(r.config.mode),
        demper::core::war_policy_name(r.config.policy), r.config.budget_rps,
        static_cast<unsigned long long>(m.checks),
        static_cast<double>(m.checks) / std::max(1.0, m.window_s), m.first_share, 1 - m.first_share,
        m.winnable_lost_share, static_cast<unsigned long long>(m.undercuts),
        static_cast<unsigned long long>(m.answered), m.reactions.p50_s, m.reactions.p95_s,
        active.reactions.p50_s, active.reactions.p95_s, bot.reactions.p50_s, bot.reactions.p95_s,
        quiet.reactions.p95_s, static_cast<unsigned long long>(m.floor_moves), m.floor_time_share,
        m.margin_kept, bot.margin_kept, bot.first_share, active.first_share, quiet.first_share,
        m.max_unchecked_s,
        r.config.mode == Mode::fixed ? r.fixed_interval_s : r.config.bounds.longest_s, r.max_window,
        r.mean_pressure, r.fixed_interval_s);
    std::fflush(csv);
}

// requests_to_match interpolates, on a curve of (requests, first share) runs of one mode, the
// requests at which the first share reaches `share` (linear between the bracketing runs); 0 when
// no run reaches it.
double requests_to_match(std::vector<SimResult> runs, double share) {
    std::sort(runs.begin(), runs.end(), [](const SimResult& a, const SimResult& b) {
        return a.market.checks < b.market.checks;
    });
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const double s = runs[i].market.first_share;
        if (s < share) continue;
        const double r = static_cast<double>(runs[i].market.checks);
        if (i == 0) return r;
        const double s0 = runs[i - 1].market.first_share,
                     r0 = static_cast<double>(runs[i - 1].market.checks);
        return s == s0 ? r : r0 + (r - r0) * (share - s0) / (s - s0);
    }
    return 0;
}

void set_tuning(demper::core::ScheduleTuning& t, const std::string& assignment) {
    const std::size_t eq = assignment.find('=');
    if (eq == std::string::npos) throw std::runtime_error("--tune expects name=value");
    const std::string name = assignment.substr(0, eq);
    const double v = std::stod(assignment.substr(eq + 1));
    std::map<std::string, std::function<void()>> setters = {
        {"request_worth_s", [&] { t.request_worth_s = v; }},
        {"rate_memory_s", [&] { t.rate_memory_s = v; }},
        {"prior_changes", [&] { t.prior_changes = v; }},
        {"prior_rate_per_s", [&] { t.prior_rate_per_s = v; }},
        {"min_observations", [&] { t.min_observations = static_cast<int>(v); }},
        {"watched_offers", [&] { t.watched_offers = static_cast<int>(v); }},
        {"raise_weight", [&] { t.raise_weight = v; }},
        {"other_change_weight", [&] { t.other_change_weight = v; }},
        {"thin_margin_share", [&] { t.thin_margin_share = v; }},
        {"stake_first_thin", [&] { t.stake_first_thin = v; }},
        {"stake_behind", [&] { t.stake_behind = v; }},
        {"stake_first_clear", [&] { t.stake_first_clear = v; }},
        {"stake_behind_at_floor", [&] { t.stake_behind_at_floor = v; }},
        {"stake_alone", [&] { t.stake_alone = v; }},
        {"war_stake", [&] { t.war_stake = v; }},
        {"war_follow_stake", [&] { t.war_follow_stake = v; }},
        {"war_rounds_are_changes", [&] { t.war_rounds_are_changes = v != 0; }},
        {"war_rounds", [&] { t.war_rounds = static_cast<int>(v); }},
        {"war_rounds_known", [&] { t.war_rounds_known = static_cast<int>(v); }},
        {"war_cut_share", [&] { t.war_cut_share = v; }},
        {"round_gap_s", [&] { t.round_gap_s = v; }},
        {"quiet_s", [&] { t.quiet_s = v; }},
        {"quiet_max_s", [&] { t.quiet_max_s = v; }},
        {"deadline_slack_share", [&] { t.deadline_slack_share = v; }},
        {"jitter_share", [&] { t.jitter_share = v; }},
    };
    auto it = setters.find(name);
    if (it == setters.end()) throw std::runtime_error("unknown tuning " + name);
    it->second();
}

void set_mix(MarketMix& m, const std::string& assignment) {
    const std::size_t eq = assignment.find('=');
    if (eq == std::string::npos) throw std::runtime_error("--mix expects name=value");
    const std::string name = assignment.substr(0, eq);
    const double v = std::stod(assignment.substr(eq + 1));
    std::map<std::string, double*> fields = {
        {"bot_share", &m.bot_share},
        {"active_share", &m.active_share},
        {"mean_competitors", &m.mean_competitors},
        {"other_active_share", &m.other_active_share},
        {"quiet_gap_min_s", &m.quiet_gap_min_s},
        {"quiet_gap_max_s", &m.quiet_gap_max_s},
        {"active_gap_min_s", &m.active_gap_min_s},
        {"active_gap_max_s", &m.active_gap_max_s},
        {"active_undercut_share", &m.active_undercut_share},
        {"bot_reaction_min_s", &m.bot_reaction_min_s},
        {"bot_reaction_max_s", &m.bot_reaction_max_s},
        {"seller_floor_min", &m.seller_floor_min},
        {"seller_floor_max", &m.seller_floor_max},
        {"seller_ceiling", &m.seller_ceiling},
    };
    auto it = fields.find(name);
    if (it == fields.end()) throw std::runtime_error("unknown mix field " + name);
    *it->second = v;
}

struct Options {
    MarketMix mix;
    SimConfig base;
    bool experiment = true;
    std::string csv;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string name = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(name + " needs a value");
            return argv[++i];
        };
        if (name == "--quick") {
            o.mix.products = 2000;
            o.base.budget_rps = 2;
            o.base.warmup_s = 6 * 3600.0;
            o.base.measure_s = 12 * 3600.0;
        } else if (name == "--seed") {
            o.mix.seed = std::stoull(value());
        } else if (name == "--products") {
            o.mix.products = std::stoul(value());
        } else if (name == "--budget") {
            o.base.budget_rps = std::stod(value());
        } else if (name == "--hours") {
            o.base.measure_s = std::stod(value()) * 3600;
        } else if (name == "--warmup-hours") {
            o.base.warmup_s = std::stod(value()) * 3600;
        } else if (name == "--shortest") {
            o.base.bounds.shortest_s = std::stod(value());
        } else if (name == "--longest") {
            o.base.bounds.longest_s = std::stod(value());
        } else if (name == "--default") {
            o.base.bounds.default_s = std::stod(value());
        } else if (name == "--publish-delay") {
            o.base.publish_delay_s = std::stod(value());
        } else if (name == "--headroom") {
            o.base.headroom = std::stod(value());
        } else if (name == "--mode") {
            o.experiment = false;
            const std::string m = value();
            if (m != "fixed" && m != "adaptive") throw std::runtime_error("--mode fixed|adaptive");
            o.base.mode = m == "fixed" ? Mode::fixed : Mode::adaptive;
        } else if (name == "--kind-intervals") {
            o.experiment = false;
            o.base.mode = Mode::fixed;
            const std::string v = value();
            if (std::sscanf(v.c_str(), "%lf,%lf,%lf", &o.base.kind_interval_s[0],
                            &o.base.kind_interval_s[1], &o.base.kind_interval_s[2]) != 3)
                throw std::runtime_error("--kind-intervals quiet,active,bot (seconds)");
        } else if (name == "--oracle") {
            o.experiment = false;
            o.base.mode = Mode::fixed;
            o.base.oracle_bot_interval_s = std::stod(value());
        } else if (name == "--policy") {
            auto p = demper::core::parse_war_policy(value());
            if (!p) throw std::runtime_error("--policy follow|hold|keep_margin");
            o.base.policy = *p;
        } else if (name == "--tune") {
            set_tuning(o.base.tuning, value());
        } else if (name == "--mix") {
            set_mix(o.mix, value());
        } else if (name == "--csv") {
            o.csv = value();
        } else if (name == "--help" || name == "-h") {
            std::printf("see the comment at the top of bench/market_sim.cpp\n");
            std::exit(0);
        } else {
            throw std::runtime_error("unknown option " + name);
        }
    }
    return o;
}

SimResult run(const Options& o, SimConfig config, FILE* csv) {
    SimResult r = simulate(o.mix, config);
    print_result(r);
    write_csv(csv, r);
    return r;
}

int experiment(const Options& o, FILE* csv) {
    const double budget = o.base.budget_rps;
    auto config = [&](const std::string& label, Mode mode, double share, WarPolicy policy) {
        SimConfig c = o.base;
        c.label = label;
        c.mode = mode;
        c.budget_rps = budget * share;
        c.policy = policy;
        return c;
    };
    std::printf(
        "market: %zu products, seed %llu, budget %.1f req/s, warm-up %.0f h, measured %.0f h; "
        "bounds %.0f..%.0f s (no information: %.0f s)\n",
        o.mix.products, static_cast<unsigned long long>(o.mix.seed), budget, o.base.warmup_s / 3600,
        o.base.measure_s / 3600, o.base.bounds.shortest_s, o.base.bounds.longest_s,
        o.base.bounds.default_s);
    print_header();
    std::vector<SimResult> fixed, adaptive;
    fixed.push_back(run(o, config("fixed", Mode::fixed, 1, WarPolicy::follow), csv));
    adaptive.push_back(run(o, config("adaptive", Mode::adaptive, 1, WarPolicy::follow), csv));
    for (double share : {0.75, 0.5, 0.4, 0.3, 0.2}) {
        char label[64];
        std::snprintf(label, sizeof label, "adaptive %.0f%%", share * 100);
        adaptive.push_back(run(o, config(label, Mode::adaptive, share, WarPolicy::follow), csv));
    }
    for (double share : {0.75, 0.5}) {
        char label[64];
        std::snprintf(label, sizeof label, "fixed %.0f%%", share * 100);
        fixed.push_back(run(o, config(label, Mode::fixed, share, WarPolicy::follow), csv));
    }
    std::vector<SimResult> wars;
    for (WarPolicy policy : {WarPolicy::hold, WarPolicy::keep_margin}) {
        wars.push_back(run(o,
                           config(std::string("fixed ") + demper::core::war_policy_name(policy),
                                  Mode::fixed, 1, policy),
                           csv));
        wars.push_back(run(o,
                           config(std::string("adaptive ") + demper::core::war_policy_name(policy),
                                  Mode::adaptive, 1, policy),
                           csv));
    }

    const MarketSummary& f = fixed[0].market;
    const MarketSummary& a = adaptive[0].market;
    const double lost_cut = 1 - (1 - a.first_share) / (1 - f.first_share);
    const double winnable_cut = 1 - a.winnable_lost_share / f.winnable_lost_share;
    const double p95_ratio = a.reactions.p95_s / f.reactions.p95_s;
    const auto& fa = f.by_kind[static_cast<int>(demper_market::Kind::active)].reactions;
    const auto& aa = a.by_kind[static_cast<int>(demper_market::Kind::active)].reactions;
    const double match = requests_to_match(adaptive, f.first_share);
    const double match_share = match / static_cast<double>(f.checks);
    double max_gap = 0;
    std::size_t max_window = 0;
    for (const auto* set : {&adaptive, &fixed, &wars})
        for (const SimResult& r : *set) {
            if (r.config.mode == Mode::adaptive)
                max_gap = std::max(max_gap, r.market.max_unchecked_s);
            max_window = std::max(max_window, r.max_window);
        }
    std::printf("\ntargets (issue 17), adaptive vs fixed at the same budget:\n");
    std::printf("  requests: fixed %llu, adaptive %llu\n",
                static_cast<unsigned long long>(f.checks),
                static_cast<unsigned long long>(a.checks));
    std::printf(
        "  product-time lost from first place: fixed %.4f, adaptive %.4f: %.1f %% less (target >= "
        "30 %%) %s\n",
        1 - f.first_share, 1 - a.first_share, lost_cut * 100, lost_cut >= 0.3 ? "PASS" : "MISS");
    std::printf(
        "    of it winnable (a price at or above the floor would be first): fixed %.4f, adaptive "
        "%.4f: %.1f %% less\n",
        f.winnable_lost_share, a.winnable_lost_share, winnable_cut * 100);
    std::printf(
        "  p95 reaction to an undercut: fixed %.0f s, adaptive %.0f s: %.2f of fixed (target <= "
        "0.5) %s\n",
        f.reactions.p95_s, a.reactions.p95_s, p95_ratio, p95_ratio <= 0.5 ? "PASS" : "MISS");
    std::printf(
        "    undercuts by active competitors only: fixed p50 %.0f / p95 %.0f s, adaptive p50 %.0f "
        "/ p95 %.0f s\n",
        fa.p50_s, fa.p95_s, aa.p50_s, aa.p95_s);
    if (match > 0)
        std::printf(
            "  requests adaptive needs for fixed's first-place share (%.4f): %.0f = %.2f of "
            "fixed's (target <= 0.5) %s\n",
            f.first_share, match, match_share, match_share <= 0.5 ? "PASS" : "MISS");
    else
        std::printf(
            "  requests adaptive needs for fixed's first-place share: more than were tried\n");
    std::printf(
        "  longest a product went unchecked (adaptive runs): %.0f s (longest interval %.0f s) %s\n",
        max_gap, o.base.bounds.longest_s, max_gap <= o.base.bounds.longest_s ? "PASS" : "MISS");
    std::printf("  most requests in any 1 s window (every run): %zu (budget %.0f) %s\n", max_window,
                budget, static_cast<double>(max_window) <= budget ? "PASS" : "MISS");
    std::printf(
        "  price wars: margin kept on bot products (follow / hold / keep_margin): fixed %.3f / "
        "%.3f / %.3f, "
        "adaptive %.3f / %.3f / %.3f\n",
        f.by_kind[2].margin_kept, wars[0].market.by_kind[2].margin_kept,
        wars[2].market.by_kind[2].margin_kept, a.by_kind[2].margin_kept,
        wars[1].market.by_kind[2].margin_kept, wars[3].market.by_kind[2].margin_kept);
    const bool pass =
        ((lost_cut >= 0.3 && p95_ratio <= 0.5) || (match > 0 && match_share <= 0.5)) &&
        max_gap <= o.base.bounds.longest_s && static_cast<double>(max_window) <= budget;
    std::printf("verdict: %s\n", pass ? "PASS" : "MISS");
    return pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        Options o = parse(argc, argv);
        FILE* csv = o.csv.empty() ? nullptr : std::fopen(o.csv.c_str(), "w");
        if (!o.csv.empty() && csv == nullptr) throw std::runtime_error("cannot write " + o.csv);
        write_csv_header(csv);
        int status = 0;
        if (o.experiment) {
            status = experiment(o, csv);
        } else {
            SimConfig c = o.base;
            c.label =
                std::string(mode_name(c.mode)) + " " + demper::core::war_policy_name(c.policy);
            print_header();
            run(o, c, csv);
        }
        if (csv) std::fclose(csv);
        return status;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "market_sim: %s\n", e.what());
        return 2;
    }
}
