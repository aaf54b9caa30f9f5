// check_pipeline.cpp: claim, fetch, decide, apply (see check_pipeline.hpp).
#include "pg/check_pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "core/url.hpp"
#include "pg/guard.hpp"
#include "pg/shared_state.hpp"

namespace demper::pg {

namespace {

constexpr double kApplyDelaySeconds = 0.25;    // longest a decision waits for its batch
constexpr double kIdlePollSeconds = 1.0;       // how often to look for due products when idle
constexpr double kMinClaimPollSeconds = 0.05;  // never look again sooner than this
constexpr double kQueueSeconds = 2.0;          // claim ahead what the rate sends in this time,
constexpr double kAheadSeconds = 0.25;         // but no more than this worker gets through in this
constexpr double kPaceStepSeconds = 0.05;      // the pace is measured over steps of at least this
constexpr std::int64_t kOffersPageSize = 64;   // the marketplace's largest page (DOMAIN.md)
constexpr double kApplyAgainSeconds = 0.5;     // after an apply that could not take its locks

// transient says an apply failed for a reason that passes: a lock held too long by someone else
// (demper.lock_timeout), a cancel (pg_cancel_backend), a deadlock or serialization failure.
bool transient(const PgError& e) {
    return e.sqlerrcode() == ERRCODE_QUERY_CANCELED || e.sqlerrcode() == ERRCODE_LOCK_NOT_AVAILABLE ||
           e.sqlerrcode() == ERRCODE_T_R_DEADLOCK_DETECTED || e.sqlerrcode() == ERRCODE_T_R_SERIALIZATION_FAILURE;
}

// about_a_row says an apply failed on the data of some row (a value out of range, a constraint):
// the batch is split until the row is alone, and only that product's outcome is given up.
bool about_a_row(const PgError& e) {
    const int category = ERRCODE_TO_CATEGORY(e.sqlerrcode());
    return category == ERRCODE_DATA_EXCEPTION || category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION;
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
core::HttpRequest offers_request(const ClaimedProduct& p, int page, const Settings& s) {
    core::HttpRequest r;
    r.method = "POST";
    r.url = core::expand_url_template(s.offers_url, p.product_code);
    r.body = "{\"cityId\":\"" + p.city_id + "\",\"id\":\"" + p.product_code +
             "\",\"merchantUID\":[],\"limit\":64,\"page\":" + std::to_string(page) +
             ",\"sortOption\":\"PRICE\","
             "\"highRating\":null,\"searchText\":null,\"isExcellentMerchant\":false,"
             "\"installationId\":\"-1\"}";
    // The headers a browser on the product's page sends (DOMAIN.md section 1); the User-Agent is
    // demper.user_agent (a full Chrome one by default), the HTTP version demper.http_version.
    std::string origin = origin_of(r.url);
    r.headers = {"Content-Type: application/json", "Accept: application/json, text/*",
                 "Accept-Language: ru-RU,ru;q=0.9", "X-KS-City: " + p.city_id, "Origin: " + origin,
                 "Referer: " + origin + "/shop/p/-" + p.product_code + "/?c=" + p.city_id,
                 "Sec-Fetch-Site: same-origin", "Sec-Fetch-Mode: cors", "Sec-Fetch-Dest: empty",
                 "Cookie: kaspi.city=" + p.city_id};
    return r;
}

// pricing_rule builds the core rule of a claimed product: its own columns, its store's policies
// and the global settings.
core::PricingRule pricing_rule(const ClaimedProduct& p, const Settings& s) {
    core::PricingRule rule;
    rule.strategy = p.strategy;
    rule.step = p.step;
    rule.step_percent = p.step_percent;
    rule.position = p.position;
    rule.min_price = p.min_price;
    rule.max_price = p.max_price;
    rule.cost_price = p.cost_price;
    rule.min_margin_percent = p.min_margin_percent;
    rule.floor_action = p.floor_action;
    rule.no_competitor_action = p.no_competitor_action;
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

Counter failure_counter(core::ErrorClass error) {
    switch (error) {
        case core::ErrorClass::timeout:
            return kFailedTimeout;
        case core::ErrorClass::connect:
            return kFailedConnect;
        case core::ErrorClass::dns:
            return kFailedDns;
        case core::ErrorClass::tls:
            return kFailedTls;
        case core::ErrorClass::http_4xx:
            return kFailedHttp4xx;
        case core::ErrorClass::http_5xx:
            return kFailedHttp5xx;
        case core::ErrorClass::ban:
            return kFailedBan;
        case core::ErrorClass::too_large:
            return kFailedTooLarge;
        case core::ErrorClass::refused_host:
            return kFailedRefusedHost;
        case core::ErrorClass::none:
        case core::ErrorClass::bad_body:
        case core::ErrorClass::canceled:
            return kFailedBadBody;
    }
    return kFailedBadBody;
}

CheckOutcome failed_outcome(ClaimedProduct&& product, core::ErrorClass error, std::string text) {
    CheckOutcome out;
    out.product = std::move(product);
    out.result = CheckResult::failed;
    out.error = error;
    out.error_text = std::move(text);
    return out;
}

// decided_outcome applies the rule to the whole offer book read for a product.
CheckOutcome decided_outcome(ClaimedProduct&& product, const core::PricingRule& rule, const core::OfferBook& book) {
    core::PriceDecision d = core::decide_price(product.price, rule, book);
    CheckOutcome out;
    out.product = std::move(product);
    out.result = CheckResult::decided;
    out.new_price = d.new_price;
    out.competitor_price = d.competitor_price;
    out.reason = d.reason;
    out.floor_hit = d.floor_hit;
    out.explain = core::decision_to_json(d, rule, book);
    return out;
}

// schedule_of resolves a product's schedule: its bounds (the product's, else its store's, else the
// settings'), its "no information yet" interval (its own check_interval, else the priority or the
// global one), its store's war policy, the shared pressure, and the claim's time in unix seconds.
core::CheckSchedule schedule_of(const ClaimedProduct& p, const Settings& s) {
    constexpr double kPgEpochUnixSeconds = 946684800.0;  // 2000-01-01 in unix seconds
    core::CheckSchedule how;
    how.at_s = static_cast<double>(p.claimed_at) / 1e6 + kPgEpochUnixSeconds;
    how.war_policy = p.store->war_policy;
    how.bounds.shortest_s = p.interval_min_s.value_or(p.store->interval_min_s.value_or(s.check_interval_min_s));
    how.bounds.longest_s = p.interval_max_s.value_or(p.store->interval_max_s.value_or(s.check_interval_max_s));
    how.bounds.default_s = p.own_interval_s.value_or(p.priority ? s.priority_interval_s : s.check_interval_s);
    how.pressure = schedule_pressure();
    return how;
}

// scheduled_outcome is decided_outcome under the adaptive schedule: the decision with the store's
// war policy around it, and the product's new schedule state and next interval.
CheckOutcome scheduled_outcome(ClaimedProduct&& product, const core::PricingRule& rule, const core::OfferBook& book,
                               const core::CheckSchedule& how, const core::ScheduleTuning& tuning) {
    const core::ScheduleState state = core::parse_schedule_state(product.schedule_state).value_or(core::ScheduleState{});
    const core::ScheduledDecision sd = core::decide_and_schedule(state, product.price, rule, book, how, tuning);
    const core::PriceDecision& d = sd.decision;
    CheckOutcome out;
    out.product = std::move(product);
    out.result = CheckResult::decided;
    out.new_price = d.new_price;
    out.competitor_price = d.competitor_price;
    out.reason = d.reason;
    out.floor_hit = d.floor_hit;
    out.war_effect = sd.reason == core::kReasonWarHold         ? WarEffect::hold
                     : sd.reason == core::kReasonWarKeepMargin ? WarEffect::keep_margin
                                                               : WarEffect::none;
    // The decision's record with a "schedule" member: interval, pressure, position, the war.
    std::string explain = core::decision_to_json(d, rule, book);
    const std::string member = core::schedule_explain_json(sd, how.pressure, tuning);
    if (!explain.empty() && explain.back() == '}')
        explain.insert(explain.size() - 1, std::string(explain.size() > 2 ? "," : "") + "\"schedule\":" + member);
    out.explain = std::move(explain);
    ScheduleOutcome next;
    next.state = core::to_text(sd.state);
    next.interval_s = sd.interval_s;
    next.base_interval_s = sd.base_interval_s;
    next.shortest_s = how.bounds.shortest_s;
    next.longest_s = how.bounds.longest_s;
    if (sd.war.at_war) next.war_rival = sd.war.rival;
    out.schedule = std::move(next);
    return out;
}

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// queue_limit: how many products this worker holds (in flight plus claimed ahead). Ahead of what
// is in flight it holds what the rate sends in kQueueSeconds, but no more than it gets through in
// kAheadSeconds at its recent pace (at least one batch). Without that cap, a rate limit far above
// what a worker can do let the first worker to wake claim a whole backlog while the others idled,
// and products waited in memory, leased, long after they were claimed.
std::size_t CheckPipeline::queue_limit() const {
    double ahead = std::min(settings_.requests_per_second * kQueueSeconds, 100000.0);
    ahead = std::min(ahead, std::max(static_cast<double>(settings_.batch_size), pace_.rate * kAheadSeconds));
    return static_cast<std::size_t>(static_cast<double>(settings_.max_inflight) + ahead);
}

// claim_size is how many products a claim now should ask for; 0 when it should not claim: the
// pipeline is full, or busy with less room than half a batch (no claims in dribbles).
std::size_t CheckPipeline::claim_size() const {
    if (!settings_.enabled) return 0;
    const std::size_t limit = queue_limit();
    if (in_check_.size() >= limit) return 0;
    const std::size_t batch = static_cast<std::size_t>(settings_.batch_size);
    const std::size_t want = std::min(limit - in_check_.size(), batch);
    if (!in_check_.empty() && want < std::min(limit, batch) / 2) return 0;
    return want;
}

void CheckPipeline::claim_if_room(double now) {
    pace_.update(now, report_.checks_done(), kPaceStepSeconds);
    if (now < next_claim_at_) return;
    const std::size_t want = claim_size();
    if (want == 0) return;
    const std::int64_t token = tokens_.next();
    ClaimBatch batch = catalog_.claim(static_cast<int>(want), token, settings_.lease_time_s);
    if (!batch.products.empty()) {
        const double lease = settings_.lease_time_s;
        lease_deadlines_.emplace_back(now + lease - std::min(2.0, 0.1 * lease), token);
        for (ClaimedProduct& p : batch.products) p.lease_ends_at = now + lease;
    }
    if (batch.products.size() < want) {
        // Nothing more is due: look again when the next product comes due (so checks start on
        // time, not up to a poll late), at least every kIdlePollSeconds (new products, other
        // workers' releases) and at most every kMinClaimPollSeconds (a due product held by a
        // user's open transaction).
        next_claim_at_ = now + std::clamp(batch.next_due_in_s, kMinClaimPollSeconds, kIdlePollSeconds);
    }
    for (ClaimedProduct& p : batch.products) {
        // Our own check of this product outlived its lease (it waited behind an open breaker or
        // a ban pause) and the claim took the product again: the check goes on under the new
        // lease, so its outcome is written. A second request would start a race the first one
        // always loses, the product never getting a result.
        if (renew_lease(p)) continue;
        start_check(std::move(p));
    }
}

void CheckPipeline::start_check(ClaimedProduct&& product) {
    counter_add(kChecksStarted);
    if (!product.store->active || product.store->hours != StoreHours::open) {
        CheckOutcome skipped;
        skipped.result = CheckResult::skipped;
        skipped.skip = !product.store->active                             ? SkipReason::store_inactive
                       : product.store->hours == StoreHours::bad_time_zone ? SkipReason::bad_time_zone
                                                                           : SkipReason::outside_hours;
        skipped.product = std::move(product);
        record(std::move(skipped));
        return;
    }
    CheckInFlight check;
    check.rule = pricing_rule(product, settings_);
    checks_of_lease_[product.lease_token]++;
    check.product = std::move(product);
    send_page(std::move(check));
}

// send_page requests the check's current page of offers.
void CheckPipeline::send_page(CheckInFlight&& check) {
    const std::uint64_t id = router_.send(*this, offers_request(check.product, check.page, settings_));
    check_of_product_[check.product.id] = id;
    in_check_.emplace(id, std::move(check));
}

void CheckPipeline::give_up_overdue_checks(double now) {
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
            router_.cancel(id, "no answer before the product's lease ran out (demper.lease_time)");
        }
    }
}

// renew_lease moves a check this worker still has (in flight, or decided and waiting for its
// apply) to the lease of a new claim of the same product; false when there is none.
bool CheckPipeline::renew_lease(const ClaimedProduct& p) {
    if (auto it = check_of_product_.find(p.id); it != check_of_product_.end()) {
        auto check = in_check_.find(it->second);
        if (check != in_check_.end()) {
            auto old = checks_of_lease_.find(check->second.product.lease_token);
            if (old != checks_of_lease_.end() && --old->second <= 0) checks_of_lease_.erase(old);
            check->second.product.lease_token = p.lease_token;
            check->second.product.lease_ends_at = p.lease_ends_at;
            checks_of_lease_[p.lease_token]++;
            return true;
        }
    }
    for (CheckOutcome& o : outcomes_) {
        if (o.product.id == p.id) {
            o.product.lease_token = p.lease_token;
            o.product.lease_ends_at = p.lease_ends_at;  // else the outcome is dropped as if its lease ran out
            return true;
        }
    }
    return false;
}

// record queues an outcome for the next apply and counts it.
void CheckPipeline::record(CheckOutcome&& out) {
    const std::int64_t store_id = out.product.store_id;
    switch (out.result) {
        case CheckResult::decided:
            counter_add(kChecksOk);
            store_counter_add(store_id, kStoreChecksOk);
            if (out.floor_hit) {
                counter_add(kFloorHits);
                store_counter_add(store_id, kStoreFloorHits);
            }
            report_.check_done();
            break;
        case CheckResult::failed:
            counter_add(kChecksFailed);
            counter_add(failure_counter(out.error));
            store_counter_add(store_id, kStoreChecksFailed);
            report_.note_failure(report_.offers_host(), core::error_class_name(out.error));
            report_.check_done();
            break;
        case CheckResult::skipped:
            break;
    }
    if (out.result != CheckResult::skipped) {
        auto count = checks_of_lease_.find(out.product.lease_token);
        if (count != checks_of_lease_.end() && --count->second <= 0) checks_of_lease_.erase(count);
    }
    if (outcomes_.empty()) first_outcome_at_ = now_seconds();
    outcomes_.push_back(std::move(out));
}

void CheckPipeline::on_response(core::HttpResponse&& response) {
    auto it = in_check_.find(response.id);
    if (it == in_check_.end()) return;
    CheckInFlight check = std::move(it->second);
    in_check_.erase(it);
    check_of_product_.erase(check.product.id);
    finish_check(std::move(check), response);
}

// finish_check handles one answer: a failure ends the check; offers are added to the book, and
// either the next page is requested (the rule needs more competitors than are known and the
// marketplace has more) or the rule decides.
void CheckPipeline::finish_check(CheckInFlight&& check, const core::HttpResponse& response) {
    check.http_ms += response.elapsed_ms;
    if (response.error != core::ErrorClass::none) {
        record_latency(kCheckLatency, check.http_ms);
        std::string text = failure_text(response);
        // Given up at the end of its lease (give_up_overdue_checks): the check timed out.
        const bool given_up = response.error == core::ErrorClass::canceled && given_up_.erase(response.id) > 0;
        record(failed_outcome(std::move(check.product), given_up ? core::ErrorClass::timeout : response.error,
                              std::move(text)));
        return;
    }
    core::OffersParse parsed = core::parse_offers(response.body);
    if (!parsed.ok) {
        record_latency(kCheckLatency, check.http_ms);
        record(failed_outcome(std::move(check.product), core::ErrorClass::bad_body, parsed.error));
        return;
    }
    for (core::Offer& o : parsed.book.offers) check.book.offers.push_back(std::move(o));
    check.book.total = std::max(check.book.total, parsed.book.total);
    const std::int64_t read = static_cast<std::int64_t>(check.page + 1) * kOffersPageSize;
    const bool more_exist = check.book.total > read && !parsed.book.offers.empty();
    if (more_exist && check.page + 1 < settings_.max_offer_pages &&
        core::competitors_of(check.rule, check.book).size() < competitors_needed(check.rule)) {
        check.page++;
        send_page(std::move(check));
        return;
    }
    record_latency(kCheckLatency, check.http_ms);
    if (settings_.adaptive_intervals) {
        const core::CheckSchedule how = schedule_of(check.product, settings_);
        record(scheduled_outcome(std::move(check.product), check.rule, check.book, how, schedule_tuning(settings_)));
    } else {
        record(decided_outcome(std::move(check.product), check.rule, check.book));
    }
}

void CheckPipeline::apply_if_due(double now, bool force) {
    if (outcomes_.empty() || (!force && now < apply_again_at_)) return;
    const bool full = outcomes_.size() >= static_cast<std::size_t>(settings_.batch_size);
    const bool waited = now - first_outcome_at_ >= kApplyDelaySeconds;
    if (!(force || full || waited || in_check_.empty())) return;
    std::vector<CheckOutcome> batch;
    batch.swap(outcomes_);
    apply_batch(std::move(batch), now);
}

// apply_batch writes a batch of outcomes. An apply that had to wait (a lock held too long, a
// cancel) keeps its outcomes for a later try while their leases run; one that failed on a row's
// data is split in halves until the bad row is alone, so one product fails, visibly, and the
// others are written.
void CheckPipeline::apply_batch(std::vector<CheckOutcome>&& batch, double now) {
    ScheduleSettings schedule;
    schedule.check_interval_s = settings_.check_interval_s;
    schedule.priority_interval_s = settings_.priority_interval_s;
    schedule.dry_run = settings_.dry_run;
    ApplyResult r;
    try {
        r = catalog_.apply(batch, schedule);
    } catch (const PgError& e) {
        if (transient(e)) {
            keep_for_later(std::move(batch), now);
            apply_again_at_ = now + kApplyAgainSeconds;
            const char* msg = e.what();
            pg_guard([msg] {
                ereport(LOG, (errmsg("demper worker postponed writing a batch of checks: %s", msg),
                              errdetail("The batch is written again shortly; its products stay leased meanwhile.")));
            });
            return;
        }
        if (!about_a_row(e)) throw;
        if (batch.size() == 1) {
            give_up_outcome(std::move(batch.front()), e.what());
            return;
        }
        std::vector<CheckOutcome> second(std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(batch.size() / 2)),
                                         std::make_move_iterator(batch.end()));
        batch.resize(batch.size() / 2);
        apply_batch(std::move(batch), now);
        apply_batch(std::move(second), now);
        return;
    }
    if (!r.busy_ids.empty()) {
        // Rows someone else holds locked: their outcomes wait for a later batch.
        std::vector<CheckOutcome> busy;
        for (CheckOutcome& o : batch)
            if (std::find(r.busy_ids.begin(), r.busy_ids.end(), o.product.id) != r.busy_ids.end())
                busy.push_back(std::move(o));
        keep_for_later(std::move(busy), now);
        apply_again_at_ = now + kApplyAgainSeconds;
    }
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

// keep_for_later puts outcomes back for the next apply while their leases run (an outcome whose
// lease ran out cannot be written: its product is claimed and checked again).
void CheckPipeline::keep_for_later(std::vector<CheckOutcome>&& outcomes, double now) {
    for (CheckOutcome& o : outcomes) {
        if (o.product.lease_ends_at > now) {
            if (outcomes_.empty()) first_outcome_at_ = now;
            outcomes_.push_back(std::move(o));
        }
    }
}

// give_up_outcome drops the outcome of a product whose row could not be written, says so in the
// log, and reschedules the product one check interval later (never in a loop of failures).
void CheckPipeline::give_up_outcome(CheckOutcome&& outcome, const char* why) {
    const long long id = outcome.product.id;
    pg_guard([id, why] {
        ereport(WARNING, (errmsg("demper worker could not write the check of product %lld: %s", id, why),
                          errdetail("The product is checked again after demper.check_interval; the other products of its batch were written.")));
    });
    try {
        catalog_.release({outcome.product}, settings_.check_interval_s);
    } catch (const PgError&) {
        // Its lease runs out by itself.
    }
}

void CheckPipeline::hand_back_unchecked() {
    apply_if_due(now_seconds(), true);
    // What is still here was not written: products in check, and decided products whose rows
    // someone else holds locked. Their due-queue rows are not locked: they are handed back.
    std::vector<ClaimedProduct> unchecked;
    unchecked.reserve(in_check_.size() + outcomes_.size());
    for (const auto& entry : in_check_) unchecked.push_back(entry.second.product);
    for (const CheckOutcome& o : outcomes_) unchecked.push_back(o.product);
    outcomes_.clear();
    catalog_.release(unchecked);
}

double CheckPipeline::next_wake_at(double now) const {
    double at = now + kIdlePollSeconds;
    if (!outcomes_.empty()) at = std::min(at, first_outcome_at_ + kApplyDelaySeconds);
    if (claim_size() > 0) at = std::min(at, next_claim_at_);
    if (!lease_deadlines_.empty()) at = std::min(at, lease_deadlines_.front().first);
    return at;
}

}  // namespace demper::pg
