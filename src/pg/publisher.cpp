// publisher.cpp: pushes from the outbox to the merchant cabinet API (see publisher.hpp).
#include "pg/publisher.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "core/cabinet.hpp"
#include "core/push.hpp"
#include "pg/guard.hpp"
#include "pg/shared_state.hpp"

namespace demper::pg {

namespace {

constexpr double kApplyDelaySeconds = 0.25;  // longest a result waits for its batch
constexpr double kIdlePollSeconds = 1.0;     // how often to look for due pushes when none were
constexpr std::size_t kQueueLimit = 64;      // pushes claimed ahead of sending
constexpr double kBackoffBaseSeconds = 2.0;
constexpr double kBackoffCapSeconds = 300.0;
constexpr double kLeaseShare = 0.8;          // send a queued push only within this share of its lease

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

PushVerdict verdict_of(core::PushOutcome outcome) {
    switch (outcome) {
        case core::PushOutcome::accepted:
            return PushVerdict::accepted;
        case core::PushOutcome::retry:
            return PushVerdict::retry;
        case core::PushOutcome::merchant_banned:
            return PushVerdict::merchant_banned;
        case core::PushOutcome::needs_login:
            return PushVerdict::needs_login;
        case core::PushOutcome::rejected:
            return PushVerdict::rejected;
    }
    return PushVerdict::retry;
}

// batch_endpoint says whether the push URL is the cabinet's batch endpoint (a JSON array of items,
// answered [{"id"}]) rather than /process (one object, answered {"id"}).
bool batch_endpoint(const std::string& url) {
    const std::size_t query = url.find('?');
    const std::string path = url.substr(0, query);
    return path.size() >= 6 && path.compare(path.size() - 6, 6, "/batch") == 0;
}

bool is_transport_error(core::ErrorClass e) {
    switch (e) {
        case core::ErrorClass::timeout:
        case core::ErrorClass::connect:
        case core::ErrorClass::dns:
        case core::ErrorClass::tls:
        case core::ErrorClass::canceled:
            return true;
        case core::ErrorClass::none:
        case core::ErrorClass::http_4xx:
        case core::ErrorClass::http_5xx:
        case core::ErrorClass::ban:
        case core::ErrorClass::too_large:
        case core::ErrorClass::bad_body:
        case core::ErrorClass::refused_host:
            return false;
    }
    return false;
}

}  // namespace

Publisher::Publisher(const Settings& settings, Catalog& catalog, RequestRouter& router, StatusReport& report,
                     LeaseTokens& tokens, const Credentials& credentials)
    : settings_(settings),
      catalog_(catalog),
      router_(router),
      report_(report),
      tokens_(tokens),
      credentials_(credentials),
      backoff_(kBackoffBaseSeconds, kBackoffCapSeconds, 0) {}

void Publisher::settings_changed() {
    for (auto& [merchant, queue] : queues_) queue.bucket.configure(settings_.push_rate, 1.0);
}

void Publisher::claim_if_due(double now) {
    if (!credentials_.usable() || now < next_claim_at_) return;
    std::size_t queued = in_flight_.size();
    for (const auto& entry : queues_) queued += entry.second.jobs.size();
    if (queued >= kQueueLimit) return;
    const int want = static_cast<int>(kQueueLimit - queued);
    std::vector<PushJob> jobs = catalog_.claim_pushes(want, tokens_.next(), settings_.lease_time_s);
    if (static_cast<int>(jobs.size()) < want) next_claim_at_ = now + kIdlePollSeconds;
    for (PushJob& job : jobs) {
        job.claimed_at = now;
        if (!job.pushes_through_api) {
            result(job, PushVerdict::not_pushable, "the store no longer publishes through the merchant API");
        } else if (job.needs_login || job.sealed_credentials.empty()) {
            result(job, PushVerdict::needs_login, "the store has no valid merchant cabinet session");
        } else {
            auto [it, inserted] = queues_.try_emplace(job.merchant_id);
            if (inserted) it->second.bucket.configure(settings_.push_rate, 1.0);
            it->second.jobs.push_back(std::move(job));
        }
    }
}

void Publisher::send_due(double now) {
    for (auto& [merchant, queue] : queues_) {
        for (auto it = queue.jobs.begin(); it != queue.jobs.end() && credentials_.usable();) {
            if (queue.in_engine > 0 || now < queue.not_before) break;
            if (in_flight_listings_.count(it->product_id) > 0) {
                ++it;  // its listing's previous push is still on its way: this one waits for its answer
                continue;
            }
            if (!queue.bucket.try_take(now)) break;
            PushJob job = std::move(*it);
            it = queue.jobs.erase(it);
            if (send(std::move(job), now)) queue.in_engine++;
        }
    }
}

void Publisher::give_up_overdue_pushes(double now) {
    const double margin = std::min(2.0, 0.1 * settings_.lease_time_s);
    for (const auto& [id, job] : in_flight_)
        if (now >= job.claimed_at + settings_.lease_time_s - margin)
            router_.cancel(id, "no answer before the push's lease ran out (demper.lease_time)");
}

// send sends one push. The store's cookies are opened only here, for the request, and never kept.
bool Publisher::send(PushJob&& job, double now) {
    if (now - job.claimed_at > kLeaseShare * settings_.lease_time_s) {
        // Its lease is nearly over: the row may be claimed again. Hand it back instead of sending
        // a push that could be sent twice.
        result(job, PushVerdict::retry, "the push waited too long in the merchant's queue");
        return false;
    }
    // The cabinet takes an item without availabilities (or with a pickup point it does not
    // know) as "no stock" and takes the offer off sale: without the listing's pickup points as the
    // cabinet has them, nothing is sent; the push waits for a catalogue sync.
    std::optional<std::vector<core::Availability>> availabilities;
    if (job.availabilities) availabilities = core::availabilities_from_json(*job.availabilities);
    if (!availabilities || availabilities->empty()) {
        result(job, PushVerdict::waiting,
               "waiting for a catalogue sync: the listing's pickup points are unknown (demper.sync_catalogue)");
        return false;
    }
    std::optional<std::vector<std::string>> headers = credentials_.push_headers(job.sealed_credentials, job.store_id);
    if (!headers) {
        result(job, PushVerdict::needs_login, "the stored credentials cannot be opened with the current key");
        return false;
    }
    core::HttpRequest request;
    request.headers = std::move(*headers);
    try {
        core::ListingPush push;
        push.merchant_uid = job.merchant_id;
        push.sku = job.sku;
        push.model = job.model;
        push.availabilities = std::move(*availabilities);
        for (const auto& [city, price] : job.city_prices) push.city_prices.push_back({city, price});
        if (push.city_prices.empty()) push.city_prices.push_back({job.city_id, job.price});
        request.body = batch_endpoint(settings_.push_url) ? core::listing_push_batch_body({push})
                                                          : core::listing_push_body(push);
    } catch (const std::invalid_argument& e) {
        result(job, PushVerdict::rejected, e.what());
        return false;
    }
    request.url = settings_.push_url;
    request.method = "POST";
    request.max_attempts = 1;  // retries are decided here, per merchant
    request.account_limited = true;  // a 429 holds this merchant back, never the checks
    request.urgent = true;           // ahead of the queued offers requests (its tokens still count)
    // Cookie is dropped on a redirect to another origin anyway; the cabinet's auth header too.
    request.sensitive_headers = {"x-auth-version"};
    const std::uint64_t id = router_.send(*this, std::move(request));
    in_flight_listings_[job.product_id]++;
    in_flight_.emplace(id, std::move(job));
    return true;
}

void Publisher::on_response(core::HttpResponse&& response) {
    auto it = in_flight_.find(response.id);
    if (it == in_flight_.end()) return;
    PushJob job = std::move(it->second);
    in_flight_.erase(it);
    if (auto listing = in_flight_listings_.find(job.product_id);
        listing != in_flight_listings_.end() && --listing->second <= 0)
        in_flight_listings_.erase(listing);
    if (auto queue = queues_.find(job.merchant_id); queue != queues_.end()) {
        MerchantQueue& q = queue->second;
        q.in_engine = std::max(0, q.in_engine - 1);
        // Spaced from when this push left the engine (after its wait behind offers requests).
        const double left_at = now_seconds() - response.request_ms / 1000.0;
        q.not_before = std::max(q.not_before, left_at + 1.0 / std::max(0.01, settings_.push_rate));
    }
    finish_push(std::move(job), response);
}

// finish_push classifies the marketplace's answer to a push (DOMAIN.md 2a and 3).
void Publisher::finish_push(PushJob&& job, const core::HttpResponse& response) {
    record_latency(kPushLatency, response.elapsed_ms);
    if (response.error != core::ErrorClass::none || response.status >= 400)
        report_.note_failure(report_.push_host(), response.error != core::ErrorClass::none
                                                      ? core::error_class_name(response.error)
                                                      : "http_" + std::to_string(response.status));
    if (response.error == core::ErrorClass::refused_host || response.error == core::ErrorClass::too_large) {
        result(job, PushVerdict::retry, response.error_detail, std::string(), kBackoffCapSeconds);
        return;
    }
    core::PushResult answer =
        core::classify_push_answer(response.status, response.body, is_transport_error(response.error));
    const PushVerdict verdict = verdict_of(answer.outcome);
    switch (verdict) {
        case PushVerdict::accepted:
            result(job, verdict, std::string(), answer.job_id);
            break;
        case PushVerdict::retry:
            result(job, verdict, answer.detail, std::string(), backoff_.delay(job.attempts));
            break;
        case PushVerdict::merchant_banned:
            result(job, verdict, answer.detail);
            hold_back_merchant(job.merchant_id, verdict, "the merchant is paused after a 429");
            break;
        case PushVerdict::needs_login:
            result(job, verdict, answer.detail);
            hold_back_merchant(job.merchant_id, verdict, "the merchant cabinet session expired");
            break;
        case PushVerdict::rejected:
        case PushVerdict::not_pushable:
        case PushVerdict::waiting:
            result(job, verdict, answer.detail);
            break;
    }
}

void Publisher::result(const PushJob& job, PushVerdict verdict, std::string detail, std::string job_id,
                       double delay_s) {
    PushResultRow row;
    row.outbox_id = job.outbox_id;
    row.lease_token = job.lease_token;
    row.store_id = job.store_id;
    row.verdict = verdict;
    row.detail = std::move(detail);
    row.job_id = std::move(job_id);
    row.delay_s = delay_s;
    if (results_.empty()) first_result_at_ = now_seconds();
    results_.push_back(std::move(row));
}

// hold_back_merchant ends the queued pushes of a merchant that was banned or logged out: they are
// recorded with the same verdict, which parks them in the outbox.
void Publisher::hold_back_merchant(const std::string& merchant_id, PushVerdict verdict, const char* detail) {
    auto it = queues_.find(merchant_id);
    if (it == queues_.end()) return;
    for (const PushJob& job : it->second.jobs) result(job, verdict, detail);
    it->second.jobs.clear();
}

void Publisher::apply_if_due(double now, bool force) {
    if (results_.empty()) return;
    const bool full = results_.size() >= static_cast<std::size_t>(settings_.batch_size);
    const bool waited = now - first_result_at_ >= kApplyDelaySeconds;
    if (!(force || full || waited || in_flight_.empty())) return;
    std::vector<PushResultRow> batch;
    batch.swap(results_);
    PushApplyResult r;
    try {
        r = catalog_.apply_pushes(batch, settings_.push_ban_pause_s, settings_.push_verify_delay_s);
    } catch (const PgError& e) {
        if (e.sqlerrcode() != ERRCODE_QUERY_CANCELED && e.sqlerrcode() != ERRCODE_LOCK_NOT_AVAILABLE &&
            e.sqlerrcode() != ERRCODE_T_R_DEADLOCK_DETECTED)
            throw;
        // A lock held too long, or a cancel: the results are written with the next batch.
        for (PushResultRow& row : batch) results_.push_back(std::move(row));
        first_result_at_ = now;
        return;
    }
    for (const PushResultRow& row : batch) {
        switch (row.verdict) {
            case PushVerdict::accepted:
                store_counter_add(row.store_id, kStorePushesOk);
                break;
            case PushVerdict::rejected:
            case PushVerdict::not_pushable:
                store_counter_add(row.store_id, kStorePushesFailed);
                break;
            case PushVerdict::retry:
            case PushVerdict::merchant_banned:
            case PushVerdict::needs_login:
            case PushVerdict::waiting:
                break;
        }
    }
    counter_add(kPushesOk, static_cast<std::uint64_t>(r.done + r.superseded));
    counter_add(kPushesFailed, static_cast<std::uint64_t>(r.failed));
    counter_add(kPushesRetried, static_cast<std::uint64_t>(r.retried));
}

// next_send_at is when a merchant's budget next allows a queued push (0 when none waits).
double Publisher::next_send_at(double now) const {
    double at = 0;
    for (const auto& [merchant, queue] : queues_) {
        if (queue.jobs.empty() || queue.in_engine > 0) continue;  // its answer wakes the loop
        const double t = std::max(queue.bucket.next_available(now), queue.not_before);
        if (at == 0 || t < at) at = t;
    }
    return at;
}

double Publisher::next_wake_at(double now) const {
    double at = now + kIdlePollSeconds;
    if (!results_.empty()) at = std::min(at, first_result_at_ + kApplyDelaySeconds);
    if (const double send_at = next_send_at(now); send_at > 0) at = std::min(at, send_at);
    if (credentials_.usable() && now < next_claim_at_) at = std::min(at, next_claim_at_);
    return at;
}

}  // namespace demper::pg
