// worker.cpp: the demper worker's main loop.
//
// One worker runs a continuous pipeline over the products of demper.database:
//   claim   short transaction: lease due products (Catalog::claim)
//   fetch   no transaction: one offers request per product through the HTTP engine, admitted by
//           its token bucket, refilled as requests finish
//   decide  pure C++: parse the offers, apply the product's price rule
//   apply   short transaction: write a batch of decisions and errors (Catalog::apply)
// The worker sleeps on one WaitEventSet holding its latch, postmaster death and the engine's
// socket set, so SIGTERM and SIGHUP are handled while requests are in flight.
#include "pg/worker.hpp"

#include <malloc.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <deque>
#include <map>
#include <optional>

#include "core/crypto.hpp"
#include "core/http_engine.hpp"
#include "core/push.hpp"
#include "core/rate_limit.hpp"
#include "core/offers.hpp"
#include "core/price_rule.hpp"
#include "core/url.hpp"
#include "pg/catalog.hpp"
#include "pg/guard.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"

extern "C" {
PGDLLEXPORT void demper_worker_main(Datum main_arg);
}

namespace demper::pg {

namespace {

constexpr int kRestartSeconds = 5;
constexpr double kApplyDelaySeconds = 0.25;      // longest a decision waits for its batch
constexpr double kIdlePollSeconds = 1.0;         // how often to look for due products when idle
constexpr double kMinClaimPollSeconds = 0.05;    // never look again sooner than this
constexpr double kNotReadyPollSeconds = 2.0;     // how often to look for CREATE EXTENSION
constexpr double kErrorPauseSeconds = 1.0;       // pause after a failed transaction
constexpr double kQueueSeconds = 2.0;            // claim ahead what the rate sends in this time,
constexpr double kAheadSeconds = 0.25;           // but no more than this worker gets through in this
constexpr double kPaceTimeConstantSeconds = 0.5; // smoothing of that pace,
constexpr double kPaceStepSeconds = 0.05;        // measured over steps of at least this
constexpr double kTrimSeconds = 10.0;            // hand free heap pages back this often
constexpr std::int64_t kOffersPageSize = 64;     // the marketplace's largest page (DOMAIN.md)
constexpr std::size_t kPushQueueLimit = 64;      // pushes claimed ahead of sending
constexpr double kFirstPruneDelaySeconds = 60;   // let the worker settle before pruning
constexpr int kPruneBatch = 1000;                // rows per table per prune transaction
constexpr int kPruneBatchesPerRound = 20;
constexpr double kRateTimeConstantSeconds = 10;  // smoothing of checks_per_second
constexpr std::uint64_t kPushIdBase = 1ULL << 62;  // request ids at and above this are pushes
constexpr double kPushBackoffBaseSeconds = 2.0;
constexpr double kPushBackoffCapSeconds = 300.0;
constexpr double kPushLeaseShare = 0.8;          // send a queued push only within this share of its lease

// RateMeter: a rate (per second) of a growing count, smoothed exponentially with time_constant_s.
struct RateMeter {
    double time_constant_s;
    double rate = 0;
    double at = 0;  // when it last took the count (0: never)
    std::uint64_t count = 0;

    // update folds in what the count did since the last update; steps shorter than min_step_s wait.
    void update(double now, std::uint64_t total, double min_step_s = 0) {
        if (at > 0) {
            const double dt = now - at;
            if (dt <= 0 || dt < min_step_s) return;
            const double instant = static_cast<double>(total - count) / dt;
            rate += (1.0 - std::exp(-dt / time_constant_s)) * (instant - rate);
        }
        at = now;
        count = total;
    }
};

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// The counters of the engine last copied to shared memory, to add only the difference.
struct EngineCounterMirror {
    std::uint64_t requests = 0, retries = 0, rate_limit_waits = 0, bans = 0, breaker_opens = 0,
                  egress_cooldowns = 0;
};

constexpr double kPublishEndpointsSeconds = 0.25;  // how often http_status() is refreshed

// endpoint_rows turns the engine's snapshot into shared-memory rows (built outside the lock).
std::vector<EndpointStatus> endpoint_rows(const core::EngineSnapshot& snap, int slot) {
    std::vector<EndpointStatus> rows;
    for (const core::HostSnapshot& h : snap.hosts) {
        EndpointStatus e{};
        e.worker_slot = slot;
        e.is_egress = false;
        strlcpy(e.name, h.host.c_str(), sizeof(e.name));
        e.effective_rate = h.effective_rate;
        strlcpy(e.state, core::breaker_state_name(h.breaker), sizeof(e.state));
        e.bans = h.bans;
        e.breaker_opens = h.breaker_opens;
        e.in_flight = static_cast<uint32>(h.in_flight);
        e.queued = static_cast<uint32>(h.queued);
        rows.push_back(e);
    }
    for (const core::EgressSnapshot& g : snap.egresses) {
        EndpointStatus e{};
        e.worker_slot = slot;
        e.is_egress = true;
        strlcpy(e.name, g.name.c_str(), sizeof(e.name));
        e.effective_rate = g.rate;
        strlcpy(e.state, g.cooling_down ? "resting" : "ready", sizeof(e.state));
        e.cooldown_left_s = g.cooldown_left_s;
        e.bans = g.bans;
        e.in_flight = static_cast<uint32>(g.in_flight);
        rows.push_back(e);
    }
    return rows;
}

// publish_endpoints replaces this worker's rows of the shared endpoint table.
void publish_endpoints(const std::vector<EndpointStatus>& rows, int slot) {
    SharedState* s = shared_state();
    if (s == nullptr) return;
    TimestampTz now = GetCurrentTimestamp();
    SpinLockAcquire(&s->endpoints_lock);
    int kept = 0;
    for (int i = 0; i < s->endpoint_count; i++)
        if (s->endpoints[i].worker_slot != slot) s->endpoints[kept++] = s->endpoints[i];
    for (const EndpointStatus& e : rows)
        if (kept < kMaxEndpoints) s->endpoints[kept++] = e;
    s->endpoint_count = kept;
    s->endpoints_published_at = now;
    SpinLockRelease(&s->endpoints_lock);
}

Counter failure_counter(const std::string& error_class) {
    if (error_class == "timeout") return kFailedTimeout;
    if (error_class == "connect") return kFailedConnect;
    if (error_class == "dns") return kFailedDns;
    if (error_class == "tls") return kFailedTls;
    if (error_class == "http_4xx") return kFailedHttp4xx;
    if (error_class == "http_5xx") return kFailedHttp5xx;
    if (error_class == "ban") return kFailedBan;
    if (error_class == "too_large") return kFailedTooLarge;
    if (error_class == "refused_host") return kFailedRefusedHost;
    return kFailedBadBody;
}

core::EngineConfig engine_config(const Settings& s) {
    core::EngineConfig c;
    // The marketplace's limits are per client IP: N workers share the per-egress budget.
    const double share = 1.0 / std::max(1, s.workers);
    c.requests_per_second = s.requests_per_second * share;
    c.burst = std::max(1.0, s.burst * share);
    c.max_inflight = s.max_inflight;
    c.timeout_ms = s.http_timeout_ms;
    c.connect_timeout_ms = std::min<long>(s.http_timeout_ms, 5000);
    c.max_body_bytes = static_cast<std::size_t>(s.max_response_kb) * 1024;
    c.allowed_hosts = s.allowed_hosts;
    c.verify_tls = true;
    c.ca_file = s.ca_file;
    c.user_agent = s.user_agent;
    c.max_attempts = s.max_attempts;
    c.backoff_base_s = s.backoff_base_ms / 1000.0;
    c.backoff_cap_s = s.backoff_max_ms / 1000.0;
    c.max_inflight_per_host = s.max_inflight_per_host;
    c.breaker_failure_threshold = s.breaker_threshold;
    c.breaker_cooldown_s = s.breaker_cooldown_s;
    c.egress_cooldown_s = s.egress_cooldown_s;
    c.proxies = split_list(s.proxies);
    return c;
}

// origin_of returns "scheme://host[:port]" of a URL, for the Origin and Referer headers.
std::string origin_of(const std::string& url) {
    auto parts = core::parse_url(url);
    if (!parts) return std::string();
    std::string origin = parts->scheme + "://" + parts->host;
    bool default_port = (parts->scheme == "http" && parts->port == 80) ||
                        (parts->scheme == "https" && parts->port == 443);
    if (!default_port) origin += ":" + std::to_string(parts->port);
    return origin;
}

// offers_request builds the marketplace's offers request for a product (DOMAIN.md section 1).
core::HttpRequest offers_request(std::uint64_t id, const ClaimedProduct& p, int page,
                                 const Settings& s) {
    core::HttpRequest r;
    r.id = id;
    r.method = "POST";
    r.url = core::expand_url_template(s.offers_url, p.product_code);
    r.body = "{\"cityId\":\"" + p.city_id + "\",\"id\":\"" + p.product_code +
             "\",\"merchantUID\":[],\"limit\":64,\"page\":" + std::to_string(page) +
             ",\"sortOption\":\"PRICE\","
             "\"highRating\":null,\"searchText\":null,\"isExcellentMerchant\":false,"
             "\"installationId\":\"-1\"}";
    std::string origin = origin_of(r.url);
    r.headers = {"Content-Type: application/json", "Accept: application/json, text/*",
                 "X-KS-City: " + p.city_id, "Origin: " + origin,
                 "Referer: " + origin + "/shop/p/-" + p.product_code + "/?c=" + p.city_id};
    return r;
}

// pricing_rule builds the core rule of a claimed product (its columns, its store's policies and
// the global settings).
core::PricingRule pricing_rule(const ClaimedProduct& p, const Settings& s) {
    core::PricingRule rule;
    rule.strategy = core::parse_strategy(p.strategy).value_or(core::Strategy::undercut);
    rule.step = p.step;
    rule.step_percent = p.step_percent;
    rule.position = p.position;
    rule.min_price = p.min_price;
    rule.max_price = p.max_price;
    rule.cost_price = p.cost_price;
    rule.min_margin_percent = p.min_margin_percent;
    rule.floor_action = core::parse_floor_action(p.floor_action).value_or(core::FloorAction::go_to_floor);
    rule.no_competitor_action =
        core::parse_no_competitor_action(p.no_competitor_action).value_or(core::NoCompetitorAction::to_max);
    if (p.max_change_percent) {
        rule.max_change_percent = p.max_change_percent;
    } else if (s.max_change_percent > 0) {
        rule.max_change_percent = s.max_change_percent;
    }
    const StorePolicy& store = *p.store;
    rule.outlier_share = store.outlier_share;
    if (!store.max_delivery_duration.empty()) rule.max_delivery_rank = core::delivery_rank(store.max_delivery_duration);
    rule.excluded_merchants = store.excluded_merchants;
    if (rule.excluded_merchants.empty()) rule.excluded_merchants = {store.merchant_id};
    return rule;
}

// competitors_needed is how many competitors the rule looks at: more pages are read only while
// fewer are known (offers come cheapest first).
std::size_t competitors_needed(const core::PricingRule& rule) {
    std::size_t needed = 1;
    if (rule.strategy == core::Strategy::position) needed = static_cast<std::size_t>(std::max(1, rule.position));
    if (rule.outlier_share) needed = std::max<std::size_t>(needed, core::kOutlierSample + 1);
    return needed;
}

// failed_outcome is the outcome of a check that produced no decision.
CheckOutcome failed_outcome(ClaimedProduct&& product, const std::string& error_class,
                            const std::string& error_text) {
    CheckOutcome out;
    out.product = std::move(product);
    out.reason = "check_failed";
    out.error_class = error_class;
    out.error_text = error_text;
    return out;
}

// decided_outcome applies the rule to the whole offer book read for a product.
CheckOutcome decided_outcome(ClaimedProduct&& product, const core::PricingRule& rule,
                             const core::OfferBook& book) {
    core::PriceDecision d = core::decide_price(product.price, rule, book);
    CheckOutcome out;
    out.product = std::move(product);
    out.ok = true;
    out.new_price = d.new_price;
    out.competitor_price = d.competitor_price;
    out.reason = core::reason_name(d.reason);
    out.floor_hit = d.floor_hit;
    out.explain = core::decision_to_json(d, rule, book);
    return out;
}

// A check in flight: its product, the rule, and the offers read so far (one page per request).
struct CheckInFlight {
    ClaimedProduct product;
    core::PricingRule rule;
    core::OfferBook book;
    int page = 0;
    double http_ms = 0;  // time spent in HTTP over all pages: the check's latency
};

class Worker {
public:
    Worker(int slot) : slot_(slot), rng_(std::random_device{}()) {}
    ~Worker() {
        if (wait_set_ != nullptr) FreeWaitEventSet(wait_set_);
    }
    void run();

private:
    void sleep_until_something_happens();
    void reload_settings();
    void claim_if_room(double now);
    void collect_completions();
    void apply_if_due(double now, bool force);
    void finish_check(CheckInFlight&& check, const core::HttpResponse& response);
    void load_credentials_key();
    void claim_pushes_if_due(double now);
    void send_pushes(double now);
    void finish_push(PushJob&& job, const core::HttpResponse& response);
    void push_result(const PushJob& job, const char* outcome, std::string detail,
                     std::string job_id = std::string(), double delay_s = 0);
    void hold_back_merchant(const std::string& merchant_id, const char* outcome, const char* detail);
    void apply_pushes_if_due(double now, bool force);
    void publish_status(double now);
    void note_failure(const std::string& host, const std::string& error_class);
    void log_failure_summary(double now);
    void prune_if_due(double now);
    void remember_error(const char* message);
    void learn_hosts();
    double next_push_send_at(double now) const;
    void record(CheckOutcome&& out);
    bool renew_lease(const ClaimedProduct& p);
    void give_up_overdue_checks(double now);
    bool check_schema(double now);
    void publish_gauges();
    void stop_cleanly();
    std::size_t queue_limit() const;
    void trim_heap_if_due(double now);
    std::int64_t new_lease_token();

    int slot_;
    Settings settings_ = current_settings();
    Catalog catalog_;
    std::unique_ptr<core::HttpEngine> engine_;
    WaitEventSet* wait_set_ = nullptr;
    std::unordered_map<std::uint64_t, CheckInFlight> in_check_;  // request id -> check
    std::unordered_map<std::int64_t, std::uint64_t> check_of_product_;  // product id -> request id
    // Each claim's lease, and how many of its checks are still in flight: a check still without
    // an answer shortly before its lease ends is given up (class timeout), so that the product
    // gets a result and a back-off instead of being claimed again under it.
    std::deque<std::pair<double, std::int64_t>> lease_deadlines_;  // (give up at, lease token)
    std::unordered_map<std::int64_t, int> checks_of_lease_;  // claims with checks unanswered
    std::unordered_set<std::uint64_t> given_up_;  // request ids canceled at their lease's end
    std::vector<CheckOutcome> outcomes_;                          // decided, not yet applied
    double first_outcome_at_ = 0;
    double next_claim_at_ = 0;
    double next_publish_at_ = 0;
    bool extension_ready_ = false;
    bool queue_repaired_ = false;  // the due queue was checked against the products (slot 0)
    std::string warned_version_;
    std::uint64_t next_request_id_ = 1;
    EngineCounterMirror mirror_;
    std::mt19937_64 rng_;

    // Publishing: claimed pushes wait per merchant behind its token bucket (demper.push_rate).
    struct MerchantPushes {
        core::TokenBucket bucket{2.0, 1.0};
        std::deque<PushJob> jobs;
    };
    std::optional<core::SecretKey> key_;
    std::string key_problem_;  // the last key file problem logged (no key material in it)
    std::map<std::string, MerchantPushes> push_queues_;
    std::unordered_map<std::uint64_t, PushJob> pushes_in_flight_;
    std::vector<PushResultRow> push_results_;
    double first_push_result_at_ = 0;
    double next_push_claim_at_ = 0;
    std::uint64_t next_push_id_ = kPushIdBase;
    core::Backoff push_backoff_{kPushBackoffBaseSeconds, kPushBackoffCapSeconds, 0};

    // Observability: status row, rate estimate, failure summaries, retention.
    std::string state_ = "starting";
    std::string last_error_;
    TimestampTz last_error_at_ = 0;
    TimestampTz started_at_ = GetCurrentTimestamp();
    std::uint64_t checks_done_ = 0;                        // ok + failed since start
    RateMeter checks_rate_{kRateTimeConstantSeconds};      // demper.status checks_per_second
    RateMeter pace_{kPaceTimeConstantSeconds};             // checks per second lately (queue_limit)
    double next_trim_at_ = 0;
    bool idle_since_trim_ = false;
    std::map<std::string, std::map<std::string, std::uint64_t>> failures_;  // host -> class -> n
    double next_summary_at_ = 0;
    double next_prune_at_ = 0;
    std::string offers_host_;
    std::string push_host_;
};

// queue_limit: how many products this worker holds (in flight plus claimed ahead). Ahead of what
// is in flight it holds what the rate sends in kQueueSeconds, but no more than it gets through in
// kAheadSeconds at its recent pace (at least one batch). Without that cap, a rate limit far above
// what a worker can do let the first worker to wake claim a whole backlog while the others idled,
// and products waited in memory, leased, long after they were claimed.
std::size_t Worker::queue_limit() const {
    double ahead = std::min(settings_.requests_per_second * kQueueSeconds, 100000.0);
    ahead = std::min(ahead, std::max(static_cast<double>(settings_.batch_size), pace_.rate * kAheadSeconds));
    return static_cast<std::size_t>(static_cast<double>(settings_.max_inflight) + ahead);
}

// trim_heap_if_due hands the heap's free pages back to the system every kTrimSeconds and whenever
// the worker falls idle. glibc keeps what was freed: after a million checks the heap held ~55 MB of
// which ~8 MB were in use (malloc_stats), the rest free chunks between live ones, and it crept up
// run after run. Trimming costs about a millisecond and a page fault per page used again.
void Worker::trim_heap_if_due(double now) {
    const bool idle = in_check_.empty() && outcomes_.empty();
    if (idle ? !idle_since_trim_ : now >= next_trim_at_) {
        malloc_trim(0);
        next_trim_at_ = now + kTrimSeconds;
        idle_since_trim_ = idle;
    }
    if (!idle) idle_since_trim_ = false;
}

std::int64_t Worker::new_lease_token() {
    return static_cast<std::int64_t>(rng_() >> 1) | 1;  // positive, never 0
}

void Worker::reload_settings() {
    pg_guard([] { ProcessConfigFile(PGC_SIGHUP); });
    settings_ = current_settings();
    engine_->reconfigure(engine_config(settings_));
    next_claim_at_ = 0;
    next_publish_at_ = 0;  // show the new settings in http_status() at once
    load_credentials_key();
    learn_hosts();
    next_prune_at_ = std::min(next_prune_at_, now_seconds() + settings_.prune_interval_s);
    for (auto& [merchant, queue] : push_queues_) queue.bucket.configure(settings_.push_rate, 1.0);
}

// check_schema looks for the extension at the schema version this library needs; it warns once
// when the installed version differs (the catalogue must be updated first).
bool Worker::check_schema(double now) {
    std::string version;
    extension_ready_ = catalog_.extension_ready(&version);
    if (extension_ready_ && !queue_repaired_ && slot_ == 0) {
        // Once per extension install: products restored from a dump, or loaded with triggers
        // disabled, have no place in the due queue yet.
        queue_repaired_ = true;
        const QueueRepair r = catalog_.repair_queue();
        if (r.added > 0 || r.removed > 0) {
            const long long added = r.added, removed = r.removed;
            pg_guard([added, removed] {
                ereport(LOG, (errmsg("demper worker repaired the due queue: %lld products added, %lld entries removed",
                                     added, removed),
                              errdetail("Products restored from a dump or loaded with triggers disabled get their place in demper.schedule here.")));
            });
        }
    }
    if (!extension_ready_) {
        if (version.empty()) queue_repaired_ = false;  // dropped: a new install is checked again
        next_claim_at_ = now + kNotReadyPollSeconds;
        if (!version.empty() && version != warned_version_) {
            warned_version_ = version;
            const char* installed = warned_version_.c_str();
            pg_guard([installed] {
                ereport(WARNING, (errmsg("demper worker is waiting: the extension is at version %s, the library needs %s",
                                         installed, kSchemaVersion),
                                  errhint("Run ALTER EXTENSION demper UPDATE in database \"%s\".",
                                          database_setting())));
            });
        }
    }
    return extension_ready_;
}

void Worker::claim_if_room(double now) {
    pace_.update(now, checks_done_, kPaceStepSeconds);
    if (!settings_.enabled || now < next_claim_at_) return;
    if (!extension_ready_ && !check_schema(now)) return;
    std::size_t limit = queue_limit();
    if (in_check_.size() >= limit) return;
    std::size_t room = limit - in_check_.size();
    std::size_t want = std::min<std::size_t>(room, static_cast<std::size_t>(settings_.batch_size));
    // Do not claim in dribbles while the pipeline is busy: wait until a useful batch fits.
    if (!in_check_.empty() && want < std::min<std::size_t>(limit, settings_.batch_size) / 2) return;

    double next_due_in = kIdlePollSeconds;
    const std::int64_t token = new_lease_token();
    std::vector<ClaimedProduct> claimed =
        catalog_.claim(static_cast<int>(want), token, settings_.lease_time_s, &next_due_in);
    if (!claimed.empty()) {
        const double lease = settings_.lease_time_s;
        lease_deadlines_.emplace_back(now + lease - std::min(2.0, 0.1 * lease), token);
    }
    if (claimed.size() < want) {
        // Nothing more is due: look again when the next product comes due (so checks start on
        // time, not up to a poll late), at least every kIdlePollSeconds (new products, other
        // workers' releases) and at most every kMinClaimPollSeconds (a due product held by a
        // user's open transaction).
        next_claim_at_ = now + std::clamp(next_due_in, kMinClaimPollSeconds, kIdlePollSeconds);
    }
    for (ClaimedProduct& p : claimed) {
        // Our own check of this product outlived its lease (it waited behind an open breaker or
        // a ban pause) and the claim took the product again: the check goes on under the new
        // lease, so its outcome is written. A second request would start a race the first one
        // always loses, the product never getting a result.
        if (renew_lease(p)) continue;
        counter_add(kChecksStarted);
        if (!p.store->active || !p.store->in_working_hours) {
            CheckOutcome skipped;
            skipped.skipped = true;
            skipped.reason = p.store->active ? "outside_hours" : "store_inactive";
            skipped.product = std::move(p);
            record(std::move(skipped));
            continue;
        }
        std::uint64_t id = next_request_id_++;
        engine_->submit(offers_request(id, p, 0, settings_));
        CheckInFlight check;
        check.rule = pricing_rule(p, settings_);
        check.product = std::move(p);
        check_of_product_[check.product.id] = id;
        checks_of_lease_[token]++;
        in_check_.emplace(id, std::move(check));
    }
}

// give_up_overdue_checks cancels the checks of a claim still without an answer shortly before
// its lease ends (they wait behind an open breaker, a ban pause, or were sent to an offers URL
// changed since): they are recorded as failed (timeout), the product backs off and its next
// check is a new request.
void Worker::give_up_overdue_checks(double now) {
    while (!lease_deadlines_.empty() && lease_deadlines_.front().first <= now) {
        const std::int64_t token = lease_deadlines_.front().second;
        lease_deadlines_.pop_front();
        auto count = checks_of_lease_.find(token);
        if (count == checks_of_lease_.end()) continue;
        const bool pending = count->second > 0;
        checks_of_lease_.erase(count);
        if (!pending) continue;
        std::vector<std::uint64_t> overdue;
        for (const auto& [id, check] : in_check_)
            if (check.product.lease_token == token) overdue.push_back(id);
        for (std::uint64_t id : overdue) {
            given_up_.insert(id);
            engine_->cancel(id, "no answer before the product's lease ran out (demper.lease_time)");
        }
    }
}

// renew_lease moves a check this worker still has (in flight, or decided and waiting for its
// apply) to the lease of a new claim of the same product; false when there is none.
bool Worker::renew_lease(const ClaimedProduct& p) {
    if (auto it = check_of_product_.find(p.id); it != check_of_product_.end()) {
        auto check = in_check_.find(it->second);
        if (check != in_check_.end()) {
            auto old = checks_of_lease_.find(check->second.product.lease_token);
            if (old != checks_of_lease_.end() && --old->second <= 0) checks_of_lease_.erase(old);
            check->second.product.lease_token = p.lease_token;
            checks_of_lease_[p.lease_token]++;
            return true;
        }
    }
    for (CheckOutcome& o : outcomes_) {
        if (o.product.id == p.id) {
            o.product.lease_token = p.lease_token;
            return true;
        }
    }
    return false;
}

// record queues an outcome for the next apply and counts it.
void Worker::record(CheckOutcome&& out) {
    if (!out.skipped) {
        auto count = checks_of_lease_.find(out.product.lease_token);
        if (count != checks_of_lease_.end() && --count->second <= 0) checks_of_lease_.erase(count);
    }
    if (out.ok) {
        counter_add(kChecksOk);
        store_counter_add(out.product.store_id, kStoreChecksOk);
        if (out.floor_hit) {
            counter_add(kFloorHits);
            store_counter_add(out.product.store_id, kStoreFloorHits);
        }
        checks_done_++;
    } else if (!out.skipped) {
        counter_add(kChecksFailed);
        counter_add(failure_counter(out.error_class));
        store_counter_add(out.product.store_id, kStoreChecksFailed);
        note_failure(offers_host_, out.error_class);
        checks_done_++;
    }
    if (outcomes_.empty()) first_outcome_at_ = now_seconds();
    outcomes_.push_back(std::move(out));
}

// finish_check handles one answer: a failure ends the check; offers are added to the book, and
// either the next page is requested (the rule needs more competitors than are known and the
// marketplace has more) or the rule decides.
void Worker::finish_check(CheckInFlight&& check, const core::HttpResponse& response) {
    check.http_ms += response.elapsed_ms;
    if (response.error != core::ErrorClass::none) {
        record_latency(kCheckLatency, check.http_ms);
        std::string text = response.error_detail.empty() ? core::error_class_name(response.error)
                                                         : response.error_detail;
        if (response.status != 0 && text.find("HTTP") == std::string::npos)
            text += " (HTTP " + std::to_string(response.status) + ")";
        // Given up at the end of its lease (give_up_overdue_checks): the check timed out.
        const bool given_up = response.error == core::ErrorClass::canceled && given_up_.erase(response.id) > 0;
        const char* error_class = given_up ? core::error_class_name(core::ErrorClass::timeout)
                                           : core::error_class_name(response.error);
        record(failed_outcome(std::move(check.product), error_class, text));
        return;
    }
    core::OffersParse parsed = core::parse_offers(response.body);
    if (!parsed.ok) {
        record_latency(kCheckLatency, check.http_ms);
        record(failed_outcome(std::move(check.product), "bad_body", parsed.error));
        return;
    }
    for (core::Offer& o : parsed.book.offers) check.book.offers.push_back(std::move(o));
    check.book.total = std::max(check.book.total, parsed.book.total);
    const std::int64_t read = static_cast<std::int64_t>(check.page + 1) * kOffersPageSize;
    const bool more_exist = check.book.total > read && !parsed.book.offers.empty();
    if (more_exist && check.page + 1 < settings_.max_offer_pages &&
        core::competitors_of(check.rule, check.book).size() < competitors_needed(check.rule)) {
        check.page++;
        std::uint64_t id = next_request_id_++;
        engine_->submit(offers_request(id, check.product, check.page, settings_));
        check_of_product_[check.product.id] = id;
        in_check_.emplace(id, std::move(check));
        return;
    }
    record_latency(kCheckLatency, check.http_ms);
    record(decided_outcome(std::move(check.product), check.rule, check.book));
}

void Worker::collect_completions() {
    engine_->perform();
    for (core::HttpResponse& r : engine_->take_completed()) {
        if (r.id >= kPushIdBase) {
            auto push = pushes_in_flight_.find(r.id);
            if (push == pushes_in_flight_.end()) continue;
            PushJob job = std::move(push->second);
            pushes_in_flight_.erase(push);
            finish_push(std::move(job), r);
            continue;
        }
        auto it = in_check_.find(r.id);
        if (it == in_check_.end()) continue;
        CheckInFlight check = std::move(it->second);
        in_check_.erase(it);
        check_of_product_.erase(check.product.id);
        finish_check(std::move(check), r);
    }
}

void Worker::apply_if_due(double now, bool force) {
    if (outcomes_.empty()) return;
    bool full = outcomes_.size() >= static_cast<std::size_t>(settings_.batch_size);
    bool waited = now - first_outcome_at_ >= kApplyDelaySeconds;
    if (!(force || full || waited || in_check_.empty())) return;
    std::vector<CheckOutcome> batch;
    batch.swap(outcomes_);
    ScheduleSettings schedule;
    schedule.check_interval_s = settings_.check_interval_s;
    schedule.priority_interval_s = settings_.priority_interval_s;
    schedule.dry_run = settings_.dry_run;
    ApplyResult r = catalog_.apply(batch, schedule);
    counter_add(kPriceChanges, static_cast<std::uint64_t>(r.price_up + r.price_down));
    counter_add(kPriceUp, static_cast<std::uint64_t>(r.price_up));
    counter_add(kPriceDown, static_cast<std::uint64_t>(r.price_down));
    counter_add(kDecisionsDiscarded, static_cast<std::uint64_t>(r.discarded));
    counter_add(kBudgetDeferred, static_cast<std::uint64_t>(r.deferred));
    counter_add(kProposals, static_cast<std::uint64_t>(r.proposed));
    for (const StoreApplyCounts& c : r.by_store) {
        const auto up = static_cast<std::uint64_t>(c.price_up);
        const auto down = static_cast<std::uint64_t>(c.price_down);
        store_counter_add(c.store_id, kStorePriceChanges, up + down);
        store_counter_add(c.store_id, kStorePriceUp, up);
        store_counter_add(c.store_id, kStorePriceDown, down);
        store_counter_add(c.store_id, kStoreBudgetDeferred, static_cast<std::uint64_t>(c.deferred));
        store_counter_add(c.store_id, kStoreProposals, static_cast<std::uint64_t>(c.proposed));
    }
}

void Worker::publish_gauges() {
    const core::EngineCounters& c = engine_->counters();
    counter_add(kHttpRequests, c.requests - mirror_.requests);
    counter_add(kHttpRetries, c.retries - mirror_.retries);
    counter_add(kRateLimitWaits, c.rate_limit_waits - mirror_.rate_limit_waits);
    counter_add(kBans, c.bans - mirror_.bans);
    counter_add(kBreakerOpens, c.breaker_opens - mirror_.breaker_opens);
    counter_add(kEgressCooldowns, c.egress_cooldowns - mirror_.egress_cooldowns);
    mirror_ = {c.requests, c.retries, c.rate_limit_waits, c.bans, c.breaker_opens, c.egress_cooldowns};
    double now = now_seconds();
    if (now >= next_publish_at_) {
        next_publish_at_ = now + kPublishEndpointsSeconds;
        publish_endpoints(endpoint_rows(engine_->snapshot(), slot_), slot_);
        publish_status(now);
    }
    gauge_set(kInFlight, engine_->in_flight());
    gauge_set(kQueued, engine_->queued());
}

// load_credentials_key reads demper.credentials_key_file; without a usable key nothing is pushed.
// A problem is logged once (the message never holds key material).
void Worker::load_credentials_key() {
    key_.reset();
    if (settings_.credentials_key_file.empty()) return;
    std::string problem;
    try {
        key_.emplace(core::SecretKey::from_file(settings_.credentials_key_file));
    } catch (const std::exception& e) {
        problem = e.what();
    }
    if (!problem.empty() && problem != key_problem_) {
        key_problem_ = problem;
        const char* msg = key_problem_.c_str();
        pg_guard([msg] {
            ereport(WARNING, (errmsg("demper worker cannot read its credentials key: %s", msg),
                              errdetail("No price is pushed until the key can be read.")));
        });
    }
    if (problem.empty()) key_problem_.clear();
}

// claim_pushes_if_due leases due outbox rows when the worker holds a key and its queue has room.
void Worker::claim_pushes_if_due(double now) {
    // One worker publishes, so each merchant's push budget holds exactly.
    if (slot_ != 0 || !key_ || !extension_ready_ || now < next_push_claim_at_) return;
    std::size_t queued = pushes_in_flight_.size();
    for (const auto& entry : push_queues_) queued += entry.second.jobs.size();
    if (queued >= kPushQueueLimit) return;
    const int want = static_cast<int>(kPushQueueLimit - queued);
    std::vector<PushJob> jobs = catalog_.claim_pushes(want, new_lease_token(), settings_.lease_time_s);
    for (PushJob& job : jobs) job.claimed_at = now;
    if (static_cast<int>(jobs.size()) < want) next_push_claim_at_ = now + kIdlePollSeconds;
    for (PushJob& job : jobs) {
        if (job.push_mode != "api") {
            push_result(job, "not_pushable", "the store no longer publishes through the merchant API");
        } else if (job.needs_login || job.sealed_credentials.empty()) {
            push_result(job, "needs_login", "the store has no valid merchant cabinet session");
        } else {
            auto [it, inserted] = push_queues_.try_emplace(job.merchant_id);
            if (inserted) it->second.bucket.configure(settings_.push_rate, 1.0);
            it->second.jobs.push_back(std::move(job));
        }
    }
}

// send_pushes sends every queued push its merchant's budget allows now. The store's cookies are
// opened only here, for the request, and never kept.
void Worker::send_pushes(double now) {
    for (auto& [merchant, queue] : push_queues_) {
        while (!queue.jobs.empty() && key_ && queue.bucket.try_take(now)) {
            PushJob job = std::move(queue.jobs.front());
            queue.jobs.pop_front();
            if (now - job.claimed_at > kPushLeaseShare * settings_.lease_time_s) {
                // Its lease is nearly over: the row may be claimed again. Hand it back instead of
                // sending a push that could be sent twice.
                push_result(job, "retry", "the push waited too long in the merchant's queue");
                continue;
            }
            std::optional<std::string> cookies =
                core::open(*key_, job.sealed_credentials, "store:" + std::to_string(job.store_id));
            std::size_t newline = cookies ? cookies->find('\n') : std::string::npos;
            if (!cookies || newline == std::string::npos) {
                push_result(job, "needs_login", "the stored credentials cannot be opened with the current key");
                continue;
            }
            core::HttpRequest request;
            try {
                request.headers = core::push_headers(std::string_view(*cookies).substr(0, newline),
                                                     std::string_view(*cookies).substr(newline + 1));
                core::PushRequestInput input;
                input.merchant_uid = job.merchant_id;
                input.sku = job.sku;
                input.model = job.model;
                input.price = job.price;
                input.city_prices = {{job.city_id, job.price}};
                request.body = core::push_body(input);
            } catch (const std::invalid_argument& e) {
                OPENSSL_cleanse(cookies->data(), cookies->size());
                push_result(job, "rejected", e.what());
                continue;
            }
            OPENSSL_cleanse(cookies->data(), cookies->size());
            request.id = next_push_id_++;
            request.url = settings_.push_url;
            request.method = "POST";
            request.max_attempts = 1;  // retries are decided here, per merchant
            engine_->submit(std::move(request));
            pushes_in_flight_.emplace(next_push_id_ - 1, std::move(job));
        }
    }
}

// next_push_send_at is when a merchant's budget next allows a queued push (0 when none waits).
double Worker::next_push_send_at(double now) const {
    double at = 0;
    for (const auto& [merchant, queue] : push_queues_) {
        if (queue.jobs.empty()) continue;
        double t = queue.bucket.next_available(now);
        if (at == 0 || t < at) at = t;
    }
    return at;
}

void Worker::push_result(const PushJob& job, const char* outcome, std::string detail,
                         std::string job_id, double delay_s) {
    PushResultRow row;
    row.outbox_id = job.outbox_id;
    row.lease_token = job.lease_token;
    row.store_id = job.store_id;
    row.outcome = outcome;
    row.detail = std::move(detail);
    row.job_id = std::move(job_id);
    row.delay_s = delay_s;
    if (push_results_.empty()) first_push_result_at_ = now_seconds();
    push_results_.push_back(std::move(row));
}

// hold_back_merchant ends the queued pushes of a merchant that was banned or logged out: they are
// recorded with the same outcome, which parks them in the outbox.
void Worker::hold_back_merchant(const std::string& merchant_id, const char* outcome, const char* detail) {
    auto it = push_queues_.find(merchant_id);
    if (it == push_queues_.end()) return;
    for (const PushJob& job : it->second.jobs) push_result(job, outcome, detail);
    it->second.jobs.clear();
}

// finish_push classifies the marketplace's answer to a push (DOMAIN.md 2a and 3).
void Worker::finish_push(PushJob&& job, const core::HttpResponse& response) {
    record_latency(kPushLatency, response.elapsed_ms);
    if (response.error != core::ErrorClass::none || response.status >= 400)
        note_failure(push_host_, response.error != core::ErrorClass::none
                                     ? core::error_class_name(response.error)
                                     : "http_" + std::to_string(response.status));
    const bool transport_error = response.error == core::ErrorClass::timeout ||
                                 response.error == core::ErrorClass::connect ||
                                 response.error == core::ErrorClass::dns ||
                                 response.error == core::ErrorClass::tls ||
                                 response.error == core::ErrorClass::canceled;
    if (response.error == core::ErrorClass::refused_host || response.error == core::ErrorClass::too_large) {
        push_result(job, "retry", response.error_detail, std::string(), kPushBackoffCapSeconds);
        return;
    }
    core::PushResult result = core::classify_push_answer(response.status, response.body, transport_error);
    switch (result.outcome) {
        case core::PushOutcome::accepted:
            push_result(job, "accepted", std::string(), result.job_id);
            break;
        case core::PushOutcome::retry:
            push_result(job, "retry", result.detail, std::string(), push_backoff_.delay(job.attempts));
            break;
        case core::PushOutcome::merchant_banned:
            push_result(job, "merchant_banned", result.detail);
            hold_back_merchant(job.merchant_id, "merchant_banned", "the merchant is paused after a 429");
            break;
        case core::PushOutcome::needs_login:
            push_result(job, "needs_login", result.detail);
            hold_back_merchant(job.merchant_id, "needs_login", "the merchant cabinet session expired");
            break;
        case core::PushOutcome::rejected:
            push_result(job, "rejected", result.detail);
            break;
    }
}

// apply_pushes_if_due records push results in batches, like decisions.
void Worker::apply_pushes_if_due(double now, bool force) {
    if (push_results_.empty()) return;
    bool full = push_results_.size() >= static_cast<std::size_t>(settings_.batch_size);
    bool waited = now - first_push_result_at_ >= kApplyDelaySeconds;
    if (!(force || full || waited || pushes_in_flight_.empty())) return;
    std::vector<PushResultRow> batch;
    batch.swap(push_results_);
    PushApplyResult r = catalog_.apply_pushes(batch, settings_.push_ban_pause_s);
    for (const PushResultRow& row : batch) {
        if (row.outcome == "accepted") store_counter_add(row.store_id, kStorePushesOk);
        else if (row.outcome == "rejected" || row.outcome == "not_pushable")
            store_counter_add(row.store_id, kStorePushesFailed);
    }
    counter_add(kPushesOk, static_cast<std::uint64_t>(r.done + r.superseded));
    counter_add(kPushesFailed, static_cast<std::uint64_t>(r.failed));
    counter_add(kPushesRetried, static_cast<std::uint64_t>(r.retried));
}

// learn_hosts notes the hosts of the offers and push URLs, for failure summaries.
void Worker::learn_hosts() {
    auto host_of = [](const std::string& url) {
        auto parts = core::parse_url(url);
        return parts ? parts->host + ":" + std::to_string(parts->port) : std::string("(invalid URL)");
    };
    offers_host_ = host_of(core::expand_url_template(settings_.offers_url, "1"));
    push_host_ = host_of(settings_.push_url);
}

void Worker::note_failure(const std::string& host, const std::string& error_class) {
    failures_[host][error_class]++;
}

// log_failure_summary writes one line per host that had failures in the last interval, never one
// line per product.
void Worker::log_failure_summary(double now) {
    if (now < next_summary_at_) return;
    next_summary_at_ = now + settings_.log_summary_interval_s;
    for (const auto& [host, classes] : failures_) {
        std::uint64_t total = 0;
        std::string by_class;
        for (const auto& [error_class, n] : classes) {
            total += n;
            if (!by_class.empty()) by_class += ", ";
            by_class += error_class + " " + std::to_string(n);
        }
        const char* host_c = host.c_str();
        const char* by_class_c = by_class.c_str();
        const int interval = settings_.log_summary_interval_s;
        pg_guard([&] {
            ereport(LOG, (errmsg("demper: %llu requests failed in the last %d s against %s (%s)",
                                 static_cast<unsigned long long>(total), interval, host_c, by_class_c)));
        });
    }
    failures_.clear();
}

// prune_if_due removes history older than demper.history_retention, a batch per transaction.
void Worker::prune_if_due(double now) {
    if (slot_ != 0 || !extension_ready_ || now < next_prune_at_) return;
    next_prune_at_ = now + settings_.prune_interval_s;
    for (int round = 0; round < kPruneBatchesPerRound; round++) {
        if (catalog_.prune(settings_.history_retention_s, kPruneBatch) == 0) break;
    }
}

void Worker::remember_error(const char* message) {
    last_error_ = message;
    last_error_at_ = GetCurrentTimestamp();
}

// publish_status writes this worker's row of demper.status.
void Worker::publish_status(double now) {
    SharedState* s = shared_state();
    if (s == nullptr) return;
    checks_rate_.update(now, checks_done_);
    if (!extension_ready_) state_ = "waiting for extension";
    else if (!settings_.enabled) state_ = "disabled";
    else if (!in_check_.empty()) state_ = "checking";
    else state_ = "idle";
    WorkerStatus w{};
    w.pid = MyProcPid;
    strlcpy(w.state, state_.c_str(), sizeof(w.state));
    strlcpy(w.database, settings_.database.c_str(), sizeof(w.database));
    w.in_check = static_cast<int>(in_check_.size());
    w.checks_per_second = checks_rate_.rate;
    w.started_at = started_at_;
    strlcpy(w.last_error, last_error_.c_str(), sizeof(w.last_error));
    w.last_error_at = last_error_at_;
    SpinLockAcquire(&s->endpoints_lock);
    s->workers[slot_] = w;
    SpinLockRelease(&s->endpoints_lock);
}

// stop_cleanly runs once SIGTERM has arrived, before the worker exits: it applies the decisions
// already made and hands the products still in check back, due at once. Interrupts are held for
// these two short transactions only; requests in flight are simply abandoned.
void Worker::stop_cleanly() {
    // An ERROR raised under the hold resets InterruptHoldoffCount to 0 (errfinish), so restore
    // the saved count instead of RESUME_INTERRUPTS, which would underflow it and block every
    // interrupt from then on.
    const uint32 saved_holdoff = InterruptHoldoffCount;
    HOLD_INTERRUPTS();
    char error[512];
    error[0] = '\0';
    try {
        if (extension_ready_) {
            apply_if_due(now_seconds(), true);
            apply_pushes_if_due(now_seconds(), true);
            std::vector<ClaimedProduct> unchecked;
            unchecked.reserve(in_check_.size());
            for (const auto& entry : in_check_) unchecked.push_back(entry.second.product);
            catalog_.release(unchecked);
        }
    } catch (const std::exception& e) {
        strlcpy(error, e.what(), sizeof(error));
    }
    InterruptHoldoffCount = saved_holdoff;
    if (error[0] != '\0') {
        pg_guard([&] {
            ereport(LOG, (errmsg("demper worker could not hand back its products before stopping: %s", error),
                          errdetail("They will be checked again when their lease expires.")));
        });
    }
}

void Worker::sleep_until_something_happens() {
    double now = now_seconds();
    long timeout_ms = 1000;
    long engine_ms = engine_->next_timeout_ms();
    if (engine_ms >= 0) timeout_ms = std::min(timeout_ms, engine_ms);
    if (!outcomes_.empty()) {
        double left = first_outcome_at_ + kApplyDelaySeconds - now;
        timeout_ms = std::min(timeout_ms, static_cast<long>(std::max(0.0, left) * 1000) + 1);
    }
    if (settings_.enabled && in_check_.size() < queue_limit()) {
        double left = next_claim_at_ - now;
        timeout_ms = std::min(timeout_ms, static_cast<long>(std::max(0.0, left) * 1000) + 1);
    }
    if (!push_results_.empty()) {
        double left = first_push_result_at_ + kApplyDelaySeconds - now;
        timeout_ms = std::min(timeout_ms, static_cast<long>(std::max(0.0, left) * 1000) + 1);
    }
    if (double at = next_push_send_at(now); at > 0) {
        timeout_ms = std::min(timeout_ms, static_cast<long>(std::max(0.0, at - now) * 1000) + 1);
    }
    if (key_ && now < next_push_claim_at_) {
        timeout_ms = std::min(timeout_ms, static_cast<long>((next_push_claim_at_ - now) * 1000) + 1);
    }
    {
        double left = next_publish_at_ - now;  // http_status() stays at most this stale
        timeout_ms = std::min(timeout_ms, static_cast<long>(std::max(0.0, left) * 1000) + 1);
    }
    WaitEvent events[4];
    int n = 0;
    WaitEventSet* set = wait_set_;
    pg_guard([&] { n = WaitEventSetWait(set, timeout_ms, events, 4, PG_WAIT_EXTENSION); });
    for (int i = 0; i < n; i++) {
        if (events[i].events & WL_LATCH_SET) {
            pg_guard([] { ResetLatch(MyLatch); });
            next_claim_at_ = 0;  // someone asked for a check now (check_now, reload, shutdown)
        }
    }
}

void Worker::run() {
    engine_ = std::make_unique<core::HttpEngine>(engine_config(settings_));
    load_credentials_key();
    learn_hosts();
    next_prune_at_ = now_seconds() + kFirstPruneDelaySeconds;
    next_summary_at_ = now_seconds() + settings_.log_summary_interval_s;
    int engine_fd = engine_->wait_fd();
    pg_guard([&] {
        wait_set_ = CreateWaitEventSet(TopMemoryContext, 3);
        AddWaitEventToSet(wait_set_, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
        AddWaitEventToSet(wait_set_, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
        AddWaitEventToSet(wait_set_, WL_SOCKET_READABLE, engine_fd, nullptr, nullptr);
    });
    double error_pause_until = 0;
    for (;;) {
        if (ProcDiePending) stop_cleanly();
        pg_guard([] { CHECK_FOR_INTERRUPTS(); });
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            reload_settings();
        }
        try {
            collect_completions();
            double now = now_seconds();
            if (now >= error_pause_until) {
                give_up_overdue_checks(now);
                apply_if_due(now, false);
                apply_pushes_if_due(now, false);
                claim_if_room(now);
                claim_pushes_if_due(now);
                send_pushes(now);
                engine_->perform();
                prune_if_due(now);
            }
            log_failure_summary(now);
            trim_heap_if_due(now);
        } catch (const PgError& e) {
            // The transaction was rolled back; undecided leases expire and come due again.
            catalog_.forget_plans();
            extension_ready_ = false;
            error_pause_until = now_seconds() + kErrorPauseSeconds;
            const char* msg = e.what();
            remember_error(msg);
            pg_guard([msg] {
                ereport(WARNING, (errmsg("demper worker could not update the catalogue: %s", msg),
                                  errdetail("Decisions of the batch were dropped; those products will be checked again.")));
            });
            outcomes_.clear();
            push_results_.clear();  // their leases expire: the pushes are sent again
        }
        publish_gauges();
        sleep_until_something_happens();
    }
}

void clear_worker_slot(int code, Datum arg) {
    int slot = DatumGetInt32(arg);
    if (SharedState* s = shared_state()) {
        pg_atomic_write_u32(&s->worker_pids[slot], 0);
        SpinLockAcquire(&s->endpoints_lock);
        int kept = 0;
        for (int i = 0; i < s->endpoint_count; i++)
            if (s->endpoints[i].worker_slot != slot) s->endpoints[kept++] = s->endpoints[i];
        s->endpoint_count = kept;
        s->workers[slot].pid = 0;
        SpinLockRelease(&s->endpoints_lock);
    }
}

// worker_main_cpp runs the worker; the C++ objects live here, below demper_worker_main.
void worker_main_cpp(int slot) {
    char error[1024];
    error[0] = '\0';
    try {
        Worker worker(slot);
        worker.run();
    } catch (const std::exception& e) {
        strlcpy(error, e.what(), sizeof(error));
    } catch (...) {
        strlcpy(error, "unknown C++ exception", sizeof(error));
    }
    if (error[0] != '\0')
        ereport(FATAL, (errmsg("demper worker stopped: %s", error)));
}

}  // namespace

void register_workers() {
    const int count = std::min(workers_setting(), kMaxWorkers);
    for (int slot = 0; slot < count; slot++) {
        BackgroundWorker worker;
        memset(&worker, 0, sizeof(worker));
        worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
        worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
        worker.bgw_restart_time = kRestartSeconds;
        strlcpy(worker.bgw_library_name, "demper", BGW_MAXLEN);
        strlcpy(worker.bgw_function_name, "demper_worker_main", BGW_MAXLEN);
        snprintf(worker.bgw_name, BGW_MAXLEN, "demper worker %d", slot);
        strlcpy(worker.bgw_type, "demper worker", BGW_MAXLEN);
        worker.bgw_main_arg = Int32GetDatum(slot);
        worker.bgw_notify_pid = 0;
        RegisterBackgroundWorker(&worker);
    }
}

}  // namespace demper::pg

void demper_worker_main(Datum main_arg) {
    int slot = DatumGetInt32(main_arg);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();

    if (demper::pg::SharedState* s = demper::pg::shared_state()) {
        pg_atomic_write_u32(&s->worker_pids[slot], static_cast<uint32>(MyProcPid));
        on_shmem_exit(demper::pg::clear_worker_slot, Int32GetDatum(slot));
    }
    BackgroundWorkerInitializeConnection(demper::pg::database_setting(), nullptr, 0);
    pgstat_report_appname("demper worker");
    // The worker's own writes fire no trigger: its apply statement does set-based what the
    // triggers do row by row (the outbox insert of enqueue_push), its inserts reference rows it
    // holds locked (so the foreign key checks have nothing to find), and it never changes what
    // validate_product checks. CHECK constraints still hold. The row-by-row plpgsql trigger and
    // the foreign key checks cost ~10 % of the worker's CPU per check (bench/results/FINDINGS.md).
    SetConfigOption("session_replication_role", "replica", PGC_SUSET, PGC_S_OVERRIDE);
    // Short statements over a few thousand rows: compiling them would cost more than running them.
    SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    ereport(LOG, (errmsg("demper worker started in database \"%s\"", demper::pg::database_setting())));
    demper::pg::worker_main_cpp(slot);
    proc_exit(0);
}
