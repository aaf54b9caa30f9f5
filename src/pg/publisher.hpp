// publisher.hpp: the publish step: prices decided and written to the outbox go to the
// marketplace through the merchant cabinet API (DOMAIN.md 2a), drained like the checks' fetch.
//
// A *push* is one claimed outbox row: one price for one listing. Pushes wait per merchant behind
// the merchant's token bucket (demper.push_rate), are sent through the shared HTTP engine with
// the store's cookies (opened from their sealed form only for the request), and their results
// are written in batches. Only one worker publishes (slot 0), so each merchant's budget holds.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/rate_limit.hpp"
#include "pg/catalog.hpp"
#include "pg/credentials.hpp"
#include "pg/request_router.hpp"
#include "pg/settings.hpp"
#include "pg/worker_status.hpp"

namespace demper::pg {

class Publisher : public HttpClient {
public:
    Publisher(const Settings& settings, Catalog& catalog, RequestRouter& router, StatusReport& report,
              LeaseTokens& tokens, const Credentials& credentials);

    // settings_changed applies the merchants' budgets after a reload.
    void settings_changed();
    // claim_if_due leases due outbox rows when this worker holds a key and its queue has room.
    void claim_if_due(double now);
    // send_due sends every queued push its merchant's budget allows now (never a second push of a
    // listing while one is in flight).
    void send_due(double now);
    // give_up_overdue_pushes cancels pushes still without an answer shortly before their lease
    // ends: the outbox row may then be claimed again, and the old push must not arrive after a
    // newer one.
    void give_up_overdue_pushes(double now);
    // apply_if_due records push results in batches, like decisions (force: now).
    void apply_if_due(double now, bool force);
    void on_response(core::HttpResponse&& response) override;
    // drop_unrecorded forgets results whose write failed: their leases expire and they are sent again.
    void drop_unrecorded() { results_.clear(); }

    // next_wake_at is when the publisher next has work that no answer will wake it for.
    double next_wake_at(double now) const;

private:
    // A merchant's pushes leave one at a time: the next is handed to the engine only after the
    // previous one's answer, and no sooner than 1 / demper.push_rate after that one actually left
    // (pushes queued in the engine behind offers requests would otherwise leave back to back, and
    // the marketplace bans a merchant above a few pushes a second).
    struct MerchantQueue {
        core::TokenBucket bucket{2.0, 1.0};
        std::deque<PushJob> jobs;
        int in_engine = 0;        // pushes handed to the engine and not answered yet
        double not_before = 0;    // the earliest the next push may be handed over
    };

    // send hands one push to the engine; false when it recorded a result instead (not sent).
    bool send(PushJob&& job, double now);
    void finish_push(PushJob&& job, const core::HttpResponse& response);
    void result(const PushJob& job, PushVerdict verdict, std::string detail, std::string job_id = std::string(),
                double delay_s = 0);
    void hold_back_merchant(const std::string& merchant_id, PushVerdict verdict, const char* detail);
    double next_send_at(double now) const;

    const Settings& settings_;
    Catalog& catalog_;
    RequestRouter& router_;
    StatusReport& report_;
    LeaseTokens& tokens_;
    const Credentials& credentials_;

    std::map<std::string, MerchantQueue> queues_;            // merchant id -> queued pushes
    std::unordered_map<std::uint64_t, PushJob> in_flight_;   // request id -> push
    std::unordered_map<std::int64_t, int> in_flight_listings_;  // product id -> pushes in flight (0 or 1)
    std::vector<PushResultRow> results_;                     // not yet recorded
    double first_result_at_ = 0;
    double next_claim_at_ = 0;
    core::Backoff backoff_;
};

}  // namespace demper::pg
