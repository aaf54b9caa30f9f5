// catalog.hpp: every SQL statement of the worker, behind one interface (as pg_cron's
// job_metadata.c); the statements sit by job in catalog_*.cpp (catalog_statements.hpp lists them),
// each beside the methods that run it. Each method runs one short transaction of its own, never
// across network I/O, through prepared statements whose parameters and result columns are
// declared by name (statement.hpp).
//
// What crosses this interface is typed: outcomes, reasons and error classes are enums here and
// become the text PostgreSQL stores only inside the catalog_*.cpp files.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/http_engine.hpp"
#include "core/price_rule.hpp"
#include "core/schedule.hpp"

namespace demper::pg {

// What claim() reports as the next due time when no product is scheduled at all.
constexpr double kNothingDue = 1e9;

// StoreHours: whether a store is within its working hours now (its time zone may also have
// stopped resolving, after a tzdata upgrade: then its products wait, visibly, and no other store does).
enum class StoreHours { open, closed, bad_time_zone };

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
    StoreHours hours = StoreHours::open;
    // The adaptive schedule: the store's bounds (none: the settings') and war policy.
    std::optional<double> interval_min_s;
    std::optional<double> interval_max_s;
    core::WarPolicy war_policy = core::WarPolicy::follow;
};

// ClaimedProduct is a product leased to this worker, with the inputs its decision depends on.
struct ClaimedProduct {
    std::int64_t id = 0;
    std::int64_t store_id = 0;
    std::string product_code;
    std::string city_id;              // the product's own, else its store's
    std::int64_t lease_token = 0;     // the claim's token: apply writes only rows still leased under it
    std::int64_t claimed_at = 0;      // the claim's now() (timestamptz, microseconds since 2000)
    double lease_ends_at = 0;         // worker clock: when the lease runs out
    // The inputs as claimed: the apply drops the decision when any of them changed meanwhile.
    std::int64_t price = 0;
    std::int64_t min_price = 0;
    std::optional<std::int64_t> max_price;
    std::int64_t step = 1;
    std::int64_t inputs_version = 0;  // bumped by any user edit of the rule's inputs
    // The product's own rule (store policies and settings are added by the check pipeline).
    core::Strategy strategy = core::Strategy::undercut;
    double step_percent = 0;          // 0 = the step is an amount
    int position = 1;
    std::optional<std::int64_t> cost_price;
    std::optional<double> min_margin_percent;
    core::FloorAction floor_action = core::FloorAction::go_to_floor;
    core::NoCompetitorAction no_competitor_action = core::NoCompetitorAction::to_max;
    std::optional<double> max_change_percent;
    // The adaptive schedule's inputs: what the product's checks taught ("" = nothing yet), its own
    // interval (check_interval) and priority, and its own bounds (none: the store's).
    std::string schedule_state;
    std::optional<double> own_interval_s;
    bool priority = false;
    std::optional<double> interval_min_s;
    std::optional<double> interval_max_s;
    std::shared_ptr<const StorePolicy> store;  // never null after a claim
};

// CheckResult is how a check ended.
enum class CheckResult {
    decided,  // the rule decided a price (possibly the same one)
    failed,   // no decision: the request or the answer failed (error, error_text)
    skipped,  // not checked: the store is inactive or outside its working hours (skip)
};

enum class SkipReason { store_inactive, outside_hours, bad_time_zone };

// WarEffect is what the store's war policy did to a decision (its reason code replaces the rule's).
enum class WarEffect { none, hold, keep_margin };

// ScheduleOutcome is what the adaptive schedule decided with a check (written with an applied
// decision only: a dropped, deferred or refused one leaves the product's schedule as it was).
struct ScheduleOutcome {
    std::string state;         // the product's new schedule_state
    double interval_s = 0;     // the next check, this long after the claim
    double base_interval_s = 0;
    double shortest_s = 0;
    double longest_s = 0;
    std::string war_rival;     // "" = not at war
};

// CheckOutcome is what one check arrived at.
struct CheckOutcome {
    ClaimedProduct product;  // as claimed: the apply compares it with the row now
    CheckResult result = CheckResult::failed;
    // decided
    std::int64_t new_price = 0;
    std::optional<std::int64_t> competitor_price;
    core::Reason reason = core::Reason::unchanged;
    bool floor_hit = false;
    std::string explain;  // JSON record of the decision
    WarEffect war_effect = WarEffect::none;
    std::optional<ScheduleOutcome> schedule;  // none: the fixed interval (adaptive intervals off)
    // failed
    core::ErrorClass error = core::ErrorClass::none;
    std::string error_text;
    // skipped
    SkipReason skip = SkipReason::store_inactive;
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
    std::vector<std::int64_t> busy_ids;  // products whose rows someone else held locked: not written
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
    std::int64_t product_id = 0;     // the listing: never two of its pushes in flight at once
    std::string merchant_id;
    std::string sku;
    std::string model;
    std::string city_id;
    std::int64_t price = 0;
    std::string sealed_credentials;  // empty when the store has none
    bool pushes_through_api = false; // the store still publishes through the merchant API
    std::optional<std::string> availabilities;  // the listing's pickup points (JSON); none: unknown
    std::vector<std::pair<std::string, std::int64_t>> city_prices;  // every city of the listing
    bool needs_login = false;
    int attempts = 1;                // including this one
    double claimed_at = 0;           // worker clock: a job whose lease nearly ran out is not sent
};

// PushVerdict is what became of a push.
enum class PushVerdict {
    accepted,         // the marketplace took the price (job_id)
    retry,            // send again after delay_s
    merchant_banned,  // 429: the merchant's pushes pause for demper.push_ban_pause
    needs_login,      // 401/403 or unusable credentials: parked until new credentials are set
    rejected,         // the marketplace refused this push; retrying will not help
    not_pushable,     // the store stopped publishing through the merchant API
    waiting,          // the listing's pickup points are unknown: it waits for a catalogue sync
};

struct PushResultRow {
    std::int64_t outbox_id = 0;
    std::int64_t lease_token = 0;
    std::int64_t store_id = 0;
    PushVerdict verdict = PushVerdict::retry;
    std::string job_id;
    std::string detail;
    double delay_s = 0;
};

struct PushApplyResult {
    std::int64_t done = 0;        // accepted with the latest price
    std::int64_t superseded = 0;  // accepted, but a newer price waits: pushed again
    std::int64_t retried = 0;
    std::int64_t failed = 0;
};

// StoreToSync is a store whose catalogue the worker imports now (claim_sync).
struct StoreToSync {
    std::int64_t id = 0;
    std::string merchant_id;
    std::string city_id;
    std::string sealed_credentials;
};

// ImportedListing is one row to upsert: one listing (sku) in one city, with what the cabinet owns
// of it. The seller's settings (floor, ceiling, strategy...) are never part of it.
struct ImportedListing {
    std::string sku;
    std::string city_id;
    std::string product_code;
    std::string model;
    std::string brand;
    std::int64_t price = 0;
    std::string availabilities;  // JSON array (core::availabilities_json)
    std::string updated_at;
    bool archived = false;       // archived in the cabinet: stored, not repriced
};

struct ImportCounts {
    std::int64_t added = 0;
    std::int64_t updated = 0;
    std::int64_t price_edits = 0;  // prices the seller changed in the cabinet, taken as current
    std::int64_t deactivated = 0;  // archived in the cabinet since the last sync
};

// SyncResult is what a finished (or failed) import reports.
struct SyncResult {
    bool complete = false;   // both lists read to their end: listings not on sale may be archived
    std::int64_t seen = 0;
    ImportCounts counts;
    std::string error;       // empty when the import succeeded
};

// PushToVerify is an accepted push whose effect the worker looks for in the cabinet.
struct PushToVerify {
    std::int64_t outbox_id = 0;
    std::int64_t store_id = 0;
    std::string merchant_id;
    std::string sealed_credentials;
    std::string sku;
    std::string city_id;
    std::int64_t pushed_price = 0;
    std::string job_id;
    double age_s = 0;  // since the marketplace accepted it
};

enum class VerifyResult { verified, rejected, off_sale, again };

struct VerifyRow {
    std::int64_t outbox_id = 0;
    VerifyResult result = VerifyResult::again;
    std::string detail;
};

struct VerifyCounts {
    std::int64_t verified = 0;
    std::int64_t rejected = 0;
    std::int64_t off_sale = 0;
};

// QueueRepair counts what repair_queue changed.
struct QueueRepair {
    std::int64_t added = 0;    // active products that had no row in demper.schedule
    std::int64_t removed = 0;  // rows of products gone or inactive
};

// ClaimBatch is what one claim found.
struct ClaimBatch {
    std::vector<ClaimedProduct> products;
    // When the claim found fewer products than it asked for: when the next product comes due,
    // in seconds from now (<= 0: due but held elsewhere; kNothingDue: nothing is scheduled).
    double next_due_in_s = kNothingDue;
};

// LeaseOwner says whose leases a worker takes: this life of shared memory (a random generation,
// new at every server start and crash restart), the worker's slot, and which start of that slot's
// worker this is. A lease token carries all three, so a worker that starts knows which leases
// belong to workers that no longer exist: those of another generation, and those of earlier
// starts of its own slot.
struct LeaseOwner {
    std::uint32_t generation = 1;  // 16 bits
    std::uint32_t slot = 0;        // 6 bits
    std::uint32_t start = 0;       // 10 bits (modulo 1024)
};

// LeaseTokens numbers the claims of one worker: token = generation << 47 | slot << 41 |
// (start mod 1024) << 31 | sequence (31 bits). Positive, never 0, unique per claim.
class LeaseTokens {
public:
    explicit LeaseTokens(const LeaseOwner& owner)
        : base_(static_cast<std::int64_t>(owner.generation & 0xFFFF) << 47 |
                static_cast<std::int64_t>(owner.slot & 63) << 41 |
                static_cast<std::int64_t>(owner.start & 1023) << 31) {}
    std::int64_t next() { return base_ | static_cast<std::int64_t>(1 + (sequence_++ % 0x7FFFFFFE)); }

private:
    std::int64_t base_;
    std::uint32_t sequence_ = 0;
};

// ReclaimedLeases counts the leases of dead workers handed back at a worker's start.
struct ReclaimedLeases {
    std::int64_t products = 0;
    std::int64_t pushes = 0;
};

class Catalog {
public:
    Catalog();
    ~Catalog();
    Catalog(const Catalog&) = delete;
    Catalog& operator=(const Catalog&) = delete;

    // installed_version is the version of the extension in this database ("" when not installed).
    std::string installed_version();
    // repair_queue makes demper.schedule hold exactly the active products, only when it is empty
    // while active products exist (a restore with triggers disabled).
    QueueRepair repair_queue();
    // reclaim_dead_leases makes the products and pushes leased by workers that no longer exist
    // due at once (see LeaseOwner).
    ReclaimedLeases reclaim_dead_leases(const LeaseOwner& me);
    // claim leases up to limit due products under lease_token, oldest due first, with their
    // stores' policies.
    ClaimBatch claim(int limit, std::int64_t lease_token, int lease_time_s);
    // apply writes a batch of outcomes: prices, history, schedule, errors, outbox, proposals.
    ApplyResult apply(const std::vector<CheckOutcome>& outcomes, const ScheduleSettings& schedule);
    // release hands leased products back unchecked, due after delay_s (0 when the worker stops;
    // the check interval for a product whose outcome could not be written).
    void release(const std::vector<ClaimedProduct>& products, double delay_s = 0);
    // claim_pushes leases up to limit due outbox rows, oldest due first.
    std::vector<PushJob> claim_pushes(int limit, std::int64_t lease_token, int lease_time_s);
    // apply_pushes records what became of a batch of pushes; a merchant ban pauses that store's
    // pushes for ban_pause_s, a login failure marks the store needs_login.
    PushApplyResult apply_pushes(const std::vector<PushResultRow>& results, int ban_pause_s, int verify_delay_s);
    // claim_sync takes the store whose catalogue is due for an import (asked for, or older than
    // sync_interval_s; 0 = only when asked), marks it running and returns it.
    std::optional<StoreToSync> claim_sync(int sync_interval_s);
    // known_listings gives the cabinet's updatedAt last imported for each sku of a store.
    std::vector<std::pair<std::string, std::string>> known_listings(std::int64_t store_id);
    // import_listings upserts a batch of listing rows of a store (one short transaction).
    ImportCounts import_listings(std::int64_t store_id, const std::vector<ImportedListing>& rows);
    // finish_sync records an import's end; a complete one deactivates the listings the cabinet no
    // longer has on sale. Returns how many it deactivated.
    std::int64_t finish_sync(std::int64_t store_id, const std::vector<std::string>& live_skus, const SyncResult& result);
    // claim_verifications leases up to limit accepted pushes due for a look at the cabinet.
    std::vector<PushToVerify> claim_verifications(int limit, int lease_time_s);
    // apply_verifications records what the looks found; "again" looks again after again_s.
    VerifyCounts apply_verifications(const std::vector<VerifyRow>& rows, int again_s);
    // prune removes up to batch finished rows older than retention_s from each history table;
    // returns how many it removed.
    std::int64_t prune(int retention_s, int batch);
    // schedule_demand groups the due queue by base interval and bounds for the pressure solver
    // (products the apply has not scheduled adaptively yet count with the given defaults).
    std::vector<core::DemandGroup> schedule_demand(double default_s, double shortest_s, double longest_s);
    // bring_forward moves the next checks that lie beyond what `pressure` asks for to
    // core::latest_next_check_s (never later; unleased rows only, each with its own bounds, else
    // these defaults); returns how many it moved.
    std::int64_t bring_forward(double pressure, double shortest_s, double longest_s,
                               const core::ScheduleTuning& tuning);
    // forget_plans drops the prepared plans (after an error, or when the extension went away).
    void forget_plans();

private:
    struct Statements;
    std::unique_ptr<Statements> statements_;
};

}  // namespace demper::pg
