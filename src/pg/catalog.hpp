// catalog.hpp: every SQL statement of the worker, in one place. Each method runs one short
// transaction of its own (never across network I/O) through prepared SPI plans.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace demper::pg {

// What claim() reports as the next due time when no product is scheduled at all.
constexpr double kNothingDue = 1e9;

// The extension version whose tables and columns this library's SQL uses.
constexpr const char* kSchemaVersion = "0.6.0";

// StorePolicy is what a check needs of a product's store: read once per store per claim, shared
// by every product of the batch.
struct StorePolicy {
    std::int64_t id = 0;
    std::string merchant_id;
    std::string city_id;
    bool active = true;
    std::vector<std::string> excluded_merchants;  // the seller's merchant ids and the ignore list
    std::string max_delivery_duration;            // empty = any delivery
    std::optional<double> outlier_share;
    bool in_working_hours = true;
};

// ClaimedProduct is a product leased to this worker, with the inputs its decision depends on.
struct ClaimedProduct {
    std::int64_t id = 0;
    std::string product_code;
    std::int64_t price = 0;
    std::int64_t min_price = 0;
    std::optional<std::int64_t> max_price;
    std::int64_t step = 1;
    std::string city_id;              // the product's own, else its store's
    std::int64_t lease_token = 0;     // the claim's token: apply writes only rows still leased under it
    std::int64_t inputs_version = 0;  // bumped by any user edit of the rule's inputs
    std::int64_t claimed_at = 0;      // the claim's now() (timestamptz, microseconds since 2000)
    // The rest of the product's rule (0.2.0) and its store's policies.
    std::int64_t store_id = 0;
    std::string strategy = "undercut";
    double step_percent = 0;          // 0 = the step is an amount
    int position = 1;
    std::optional<std::int64_t> cost_price;
    std::optional<double> min_margin_percent;
    std::string floor_action = "go_to_floor";
    std::string no_competitor_action = "to_max";
    std::optional<double> max_change_percent;
    std::shared_ptr<const StorePolicy> store;  // never null after a claim
};

// CheckOutcome is what one check arrived at: a decision, or the error that stopped it.
struct CheckOutcome {
    ClaimedProduct product;           // as claimed: the apply step compares it with the row now
    bool ok = false;                  // the check produced a decision
    bool skipped = false;             // not checked (store inactive, outside hours): rescheduled
    std::int64_t new_price = 0;
    std::optional<std::int64_t> competitor_price;
    std::string reason;               // decision reason code, or "error"
    bool floor_hit = false;
    std::string error_class;          // when !ok
    std::string error_text;
    std::string explain;              // JSON record of the decision (empty when !ok)
};

// ApplyResult counts what an apply transaction wrote, in all and per store.
struct StoreApplyCounts {
    std::int64_t store_id = 0;
    std::int64_t price_up = 0;
    std::int64_t price_down = 0;
    std::int64_t deferred = 0;
    std::int64_t proposed = 0;
};
struct ApplyResult {
    std::vector<StoreApplyCounts> by_store;
    std::int64_t applied = 0;    // rows updated (lease still ours)
    std::int64_t price_up = 0;
    std::int64_t price_down = 0;
    std::int64_t discarded = 0;  // decisions dropped because a user changed the product meanwhile
    std::int64_t deferred = 0;   // changes held back by a store's change budget
    std::int64_t proposed = 0;   // changes recorded as proposals (approval mode)
};

// ScheduleSettings are the settings the apply step schedules with.
struct ScheduleSettings {
    int check_interval_s = 900;
    int priority_interval_s = 180;
    bool dry_run = false;
};

// PushJob is a claimed outbox row: one price to publish for one listing.
struct PushJob {
    std::int64_t outbox_id = 0;
    std::int64_t lease_token = 0;
    std::int64_t store_id = 0;
    std::string merchant_id;
    std::string sku;
    std::string model;
    std::string city_id;
    std::int64_t price = 0;
    std::string sealed_credentials;  // empty when the store has none
    std::string push_mode;
    bool needs_login = false;
    int attempts = 1;                // including this one
    double claimed_at = 0;           // worker clock: a job whose lease nearly ran out is not sent
};

// PushResultRow is what became of a push: accepted (with the marketplace's job id), retry (after
// delay_s), merchant_banned, needs_login, rejected, or not_pushable (the store stopped pushing).
struct PushResultRow {
    std::int64_t outbox_id = 0;
    std::int64_t lease_token = 0;
    std::int64_t store_id = 0;
    std::string outcome;
    std::string job_id;
    std::string detail;
    double delay_s = 0;
};

struct PushApplyResult {
    std::int64_t done = 0;      // accepted with the latest price
    std::int64_t superseded = 0;  // accepted, but a newer price waits: pushed again
    std::int64_t retried = 0;
    std::int64_t failed = 0;
};

// QueueRepair counts what repair_queue changed.
struct QueueRepair {
    std::int64_t added = 0;    // active products that had no row in demper.schedule
    std::int64_t removed = 0;  // rows of products gone or inactive
};

class Catalog {
public:
    // extension_ready says whether CREATE EXTENSION demper has run in this database at the
    // schema version this library needs (kSchemaVersion). Runs its own transaction; *version
    // receives the installed version ("" when none).
    bool extension_ready(std::string* version);
    // repair_queue makes demper.schedule hold exactly the active products (after a restore, or a
    // load with triggers disabled). One transaction.
    QueueRepair repair_queue();
    // claim leases up to limit due products under lease_token, oldest due first. When it finds
    // fewer than limit and next_due_in_s is given, *next_due_in_s receives when the next product
    // comes due, in seconds from now (<= 0: due but held elsewhere; kNothingDue: none at all).
    std::vector<ClaimedProduct> claim(int limit, std::int64_t lease_token, int lease_time_s,
                                      double* next_due_in_s = nullptr);
    // apply writes a batch of outcomes: prices, history, schedule, errors; one transaction.
    ApplyResult apply(const std::vector<CheckOutcome>& outcomes, const ScheduleSettings& schedule);
    // release hands leased products back unchecked, due at once (the worker is stopping).
    void release(const std::vector<ClaimedProduct>& products);
    // claim_pushes leases up to limit due outbox rows, oldest due first.
    std::vector<PushJob> claim_pushes(int limit, std::int64_t lease_token, int lease_time_s);
    // apply_pushes records what became of a batch of pushes; a merchant ban pauses that store's
    // pushes for ban_pause_s, a login failure marks the store needs_login.
    PushApplyResult apply_pushes(const std::vector<PushResultRow>& results, int ban_pause_s);
    // prune removes up to batch finished rows older than retention_s from each history table;
    // returns how many it removed. One short transaction.
    std::int64_t prune(int retention_s, int batch);
    // forget_plans drops the prepared plans (after an error, or when the extension went away).
    void forget_plans();

private:
    void* claim_plan_ = nullptr;
    void* stores_plan_ = nullptr;
    void* next_due_plan_ = nullptr;
    void* apply_plan_ = nullptr;
    void* release_plan_ = nullptr;
    void* claim_pushes_plan_ = nullptr;
    void* apply_pushes_plan_ = nullptr;
    void* prune_plan_ = nullptr;
};

}  // namespace demper::pg
