// check_pipeline.hpp: the worker's checks, from claim to apply (DESIGN.md's pipeline).
//
// Vocabulary: a *product* is one listing of a seller in one city; a *check* reads its
// competitors' *offers* (one request per page of the offer book) and ends in an *outcome*: a
// *decision* of the product's price rule, a failure, or a skip. The pipeline
//   claims   due products under a lease (short transaction, catalog_checks.cpp),
//   fetches  their offers through the shared HTTP engine (no transaction),
//   decides  with the pure C++ price rule (core/price_rule.hpp),
//   applies  outcomes in batches (short transaction),
// and gives up a check still without an answer shortly before its lease ends, so the product
// gets a result and a back-off instead of being claimed again under it.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/offers.hpp"
#include "core/price_rule.hpp"
#include "pg/catalog.hpp"
#include "pg/request_router.hpp"
#include "pg/settings.hpp"
#include "pg/worker_status.hpp"

namespace demper::pg {

class CheckPipeline : public HttpClient {
public:
    CheckPipeline(const Settings& settings, Catalog& catalog, RequestRouter& router, StatusReport& report,
                  LeaseTokens& tokens)
        : settings_(settings), catalog_(catalog), router_(router), report_(report), tokens_(tokens) {}

    // claim_if_room claims due products when the pipeline has room, and starts their checks.
    void claim_if_room(double now);
    // give_up_overdue_checks cancels the checks of claims whose lease is about to end.
    void give_up_overdue_checks(double now);
    // apply_if_due writes the outcomes decided so far when a batch is full, has waited long
    // enough, or nothing else is in check (force: now).
    void apply_if_due(double now, bool force);
    void on_response(core::HttpResponse&& response) override;

    // claim_soon makes the next claim_if_room look for due products at once (check_now, reload).
    void claim_soon() { next_claim_at_ = 0; }
    // hand_back_unchecked applies what is decided and releases the products still in check, due
    // at once (the worker is stopping).
    void hand_back_unchecked();
    // drop_undecided forgets the outcomes of a batch whose apply failed (their leases expire and
    // the products are checked again).
    void drop_undecided() { outcomes_.clear(); }

    // next_wake_at is when the pipeline next has work that no answer will wake it for.
    double next_wake_at(double now) const;
    std::size_t in_check() const { return in_check_.size(); }
    bool idle() const { return in_check_.empty() && outcomes_.empty(); }

private:
    // A check in flight: its product, the rule, and the offers read so far (one page per request).
    struct CheckInFlight {
        ClaimedProduct product;
        core::PricingRule rule;
        core::OfferBook book;
        int page = 0;
        double http_ms = 0;  // time spent in HTTP over all pages: the check's latency
    };

    void apply_batch(std::vector<CheckOutcome>&& batch, double now);
    void keep_for_later(std::vector<CheckOutcome>&& outcomes, double now);
    void give_up_outcome(CheckOutcome&& outcome, const char* why);
    std::size_t queue_limit() const;
    std::size_t claim_size() const;
    void start_check(ClaimedProduct&& product);
    void send_page(CheckInFlight&& check);
    void finish_check(CheckInFlight&& check, const core::HttpResponse& response);
    bool renew_lease(const ClaimedProduct& product);
    void record(CheckOutcome&& outcome);

    const Settings& settings_;
    Catalog& catalog_;
    RequestRouter& router_;
    StatusReport& report_;
    LeaseTokens& tokens_;

    std::unordered_map<std::uint64_t, CheckInFlight> in_check_;         // request id -> check
    std::unordered_map<std::int64_t, std::uint64_t> check_of_product_;  // product id -> request id
    // Each claim's lease end, and how many of its checks are still unanswered.
    std::deque<std::pair<double, std::int64_t>> lease_deadlines_;  // (give up at, lease token)
    std::unordered_map<std::int64_t, int> checks_of_lease_;
    std::unordered_set<std::uint64_t> given_up_;  // request ids canceled at their lease's end
    std::vector<CheckOutcome> outcomes_;          // decided, not yet applied
    double first_outcome_at_ = 0;
    double apply_again_at_ = 0;  // after an apply that had to wait (lock timeout, cancel)
    double next_claim_at_ = 0;
    RateMeter pace_{0.5};  // checks per second lately (queue_limit)
};

}  // namespace demper::pg
