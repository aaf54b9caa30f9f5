// catalog_housekeeping.cpp: the SQL of the worker's housekeeping (housekeeping.cpp): the installed
// version, dead workers' leases, the due queue's repair, pruning, the adaptive schedule's pressure.
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pg/catalog_statements.hpp"

namespace demper::pg {

namespace {

// The leases of workers that no longer exist: another generation of shared memory (the server
// restarted, after a crash or not), or an earlier start of this worker's own slot (it exited
// without handing them back). The partial index on leased rows keeps this cheap at any size.
#define DEMPER_DEAD_LEASE                                                                       \
    "((lease_token >> 47) <> $generation OR ((lease_token >> 41) & 63 = $slot "               \
    "AND ((lease_token >> 31) & 1023) <> $start))"
constexpr const char* kReclaimSql = R"SQL(
WITH products AS (
    UPDATE demper.schedule
       SET next_check_at = now(), lease_token = NULL, lease_until = NULL
     WHERE lease_token IS NOT NULL AND )SQL" DEMPER_DEAD_LEASE R"SQL(
    RETURNING 1
), pushes AS (
    UPDATE demper.outbox
       SET next_attempt_at = now(), lease_token = NULL, lease_until = NULL
     WHERE status = 'pending' AND lease_token IS NOT NULL AND )SQL" DEMPER_DEAD_LEASE R"SQL(
    RETURNING 1
)
SELECT (SELECT count(*) FROM products) AS products, (SELECT count(*) FROM pushes) AS pushes
)SQL";
#define DEMPER_RECLAIM_PARAMS(F) F(generation, INT8OID) F(slot, INT8OID) F(start, INT8OID)
#define DEMPER_RECLAIM_COLUMNS(F) F(products, INT8OID) F(pushes, INT8OID)
DEMPER_DECLARE_FIELDS(ReclaimParam, DEMPER_RECLAIM_PARAMS)
DEMPER_DECLARE_FIELDS(ReclaimColumn, DEMPER_RECLAIM_COLUMNS)

constexpr const char* kInstalledVersionSql =
    "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'demper'";
#define DEMPER_VERSION_COLUMNS(F) F(extversion, TEXTOID)
DEMPER_DECLARE_FIELDS(VersionColumn, DEMPER_VERSION_COLUMNS)

// Only when the due queue is empty while active products exist (a restore with triggers
// disabled): a full comparison of catalogue and queue takes seconds at millions of products, and
// users call demper.repair_queue() after loads that need it.
constexpr const char* kRepairQueueSql = "SELECT added, removed FROM demper.repair_queue(true)";
#define DEMPER_REPAIR_COLUMNS(F) F(added, INT8OID) F(removed, INT8OID)
DEMPER_DECLARE_FIELDS(RepairColumn, DEMPER_REPAIR_COLUMNS)

constexpr const char* kPruneSql =
    "SELECT demper.prune_batch(make_interval(secs => $retention_s), $batch) AS removed";
#define DEMPER_PRUNE_PARAMS(F) F(retention_s, FLOAT8OID) F(batch, INT4OID)
#define DEMPER_PRUNE_COLUMNS(F) F(removed, INT4OID)
DEMPER_DECLARE_FIELDS(PruneParam, DEMPER_PRUNE_PARAMS)
DEMPER_DECLARE_FIELDS(PruneColumn, DEMPER_PRUNE_COLUMNS)

// The adaptive schedule's demand: the due queue grouped by base interval (rounded to 1/8 in log
// space: a hundred-odd groups) and bounds, for the pressure solver. One scan of the narrow queue.
constexpr const char* kScheduleDemandSql = R"SQL(
SELECT exp(round(ln(greatest(coalesce(s.base_interval_s, $default_s), 1)) * 8) / 8)::float8 AS base_interval_s,
       coalesce(s.shortest_s, $shortest_s)::float8 AS shortest_s,
       coalesce(s.longest_s, $longest_s)::float8 AS longest_s,
       count(*)::float8 AS products
  FROM demper.schedule s
 GROUP BY 1, 2, 3
)SQL";
#define DEMPER_DEMAND_PARAMS(F) F(default_s, FLOAT8OID) F(shortest_s, FLOAT8OID) F(longest_s, FLOAT8OID)
#define DEMPER_DEMAND_COLUMNS(F) \
    F(base_interval_s, FLOAT8OID) F(shortest_s, FLOAT8OID) F(longest_s, FLOAT8OID) F(products, FLOAT8OID)
DEMPER_DECLARE_FIELDS(DemandParam, DEMPER_DEMAND_PARAMS)
DEMPER_DECLARE_FIELDS(DemandColumn, DEMPER_DEMAND_COLUMNS)

// After the pressure fell: the products whose next check lies beyond the interval the new
// pressure asks for come forward to core::latest_next_check_s, the same formula in SQL with its
// constants passed from core/schedule.hpp (TAP 024 compares the rows with it). Only what a check
// under the adaptive schedule put there moves: not a leased row, not one without a base interval,
// not a failing product (its back-off decides), not one beyond its longest interval (a store's
// closed hours, a user's postponement). A row someone holds is skipped, not waited for.
// product.next_check_at, what users read, follows the queue.
constexpr const char* kBringForwardSql = R"SQL(
WITH due AS (
    SELECT s.product_id AS id,
           now() + make_interval(secs => i.interval_s * ($spread_low + (1 - $spread_low)
                   * (((s.product_id & $hash_mask) * $hash_multiplier) % $hash_buckets)::float8
                   / $hash_buckets::float8)) AS bound
      FROM demper.schedule s
           JOIN demper.product p ON p.id = s.product_id
           CROSS JOIN LATERAL (
               SELECT greatest(1, CASE WHEN coalesce(s.longest_s, $longest_s) > 0
                                       THEN coalesce(s.longest_s, $longest_s) ELSE 7200 END)::float8 AS longest,
                      CASE WHEN coalesce(s.shortest_s, $shortest_s) > 0
                           THEN coalesce(s.shortest_s, $shortest_s) ELSE 1 END::float8 AS shortest_wanted
           ) b
           CROSS JOIN LATERAL (
               SELECT least(b.longest, greatest(1, b.shortest_wanted)) AS shortest
           ) lo
           CROSS JOIN LATERAL (
               SELECT least(greatest(CASE WHEN s.base_interval_s > 0 THEN s.base_interval_s ELSE b.longest END
                                     * $pressure, lo.shortest),
                            greatest(lo.shortest, b.longest * (1 - $slack))) AS interval_s
           ) i
     WHERE s.lease_token IS NULL AND s.base_interval_s IS NOT NULL AND p.check_failures = 0
       AND s.next_check_at > now() + make_interval(secs => i.interval_s)
       AND s.next_check_at <= now() + make_interval(secs => b.longest)
       FOR UPDATE OF s SKIP LOCKED
       FOR NO KEY UPDATE OF p SKIP LOCKED
), moved AS (
    UPDATE demper.schedule s
       SET next_check_at = least(s.next_check_at, due.bound)
      FROM due
     WHERE s.product_id = due.id
    RETURNING s.product_id, s.next_check_at
), shown AS (
    UPDATE demper.product p
       SET next_check_at = moved.next_check_at
      FROM moved
     WHERE p.id = moved.product_id AND p.next_check_at > moved.next_check_at
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS moved
)SQL";
#define DEMPER_BRING_FORWARD_PARAMS(F)                                                              \
    F(pressure, FLOAT8OID) F(slack, FLOAT8OID) F(shortest_s, FLOAT8OID) F(longest_s, FLOAT8OID)     \
    F(spread_low, FLOAT8OID) F(hash_mask, INT8OID) F(hash_multiplier, INT8OID) F(hash_buckets, INT8OID)
#define DEMPER_BRING_FORWARD_COLUMNS(F) F(moved, INT8OID)
DEMPER_DECLARE_FIELDS(BringForwardParam, DEMPER_BRING_FORWARD_PARAMS)
DEMPER_DECLARE_FIELDS(BringForwardColumn, DEMPER_BRING_FORWARD_COLUMNS)

}  // namespace

struct HousekeepingStatements {
    Statement<NoFields, VersionColumn> installed_version{"installed_version", kInstalledVersionSql,
                                                         kNoFieldsFields, kVersionColumnFields};
    Statement<NoFields, RepairColumn> repair_queue{"repair_queue", kRepairQueueSql, kNoFieldsFields,
                                                   kRepairColumnFields};
    Statement<PruneParam, PruneColumn> prune{"prune", kPruneSql, kPruneParamFields, kPruneColumnFields};
    Statement<DemandParam, DemandColumn> schedule_demand{"schedule_demand", kScheduleDemandSql, kDemandParamFields,
                                                         kDemandColumnFields};
    Statement<BringForwardParam, BringForwardColumn> bring_forward{"bring_forward", kBringForwardSql,
                                                                   kBringForwardParamFields,
                                                                   kBringForwardColumnFields};
    Statement<ReclaimParam, ReclaimColumn> reclaim{"reclaim", kReclaimSql, kReclaimParamFields,
                                                   kReclaimColumnFields};
};

std::shared_ptr<HousekeepingStatements> make_housekeeping_statements(
        std::vector<PreparedStatement*>* all) {
    auto s = std::make_shared<HousekeepingStatements>();
    all->insert(all->end(), {&s->installed_version, &s->repair_queue, &s->prune,
                             &s->schedule_demand, &s->bring_forward, &s->reclaim});
    return s;
}

std::string Catalog::installed_version() {
    std::string version;
    in_transaction(
        "demper: looking for the extension",
        [&] {
            Rows<VersionColumn> rows = statements_->housekeeping->installed_version.run(Args<NoFields>{}, 1);
            if (rows.size() == 1) version = rows.text(0, VersionColumn::extversion);
        },
        RunAs::session_user);
    return version;
}

QueueRepair Catalog::repair_queue() {
    QueueRepair r;
    in_transaction("demper: repairing the due queue", [&] {
        Rows<RepairColumn> rows = statements_->housekeeping->repair_queue.run(Args<NoFields>{}, 1);
        if (rows.size() != 1) throw std::runtime_error("repairing the due queue returned no row");
        r.added = rows.int8(0, RepairColumn::added);
        r.removed = rows.int8(0, RepairColumn::removed);
    });
    return r;
}

ReclaimedLeases Catalog::reclaim_dead_leases(const LeaseOwner& me) {
    ReclaimedLeases r;
    in_transaction("demper: reclaiming the leases of workers that are gone", [&] {
        Args<ReclaimParam> args;
        args.set(ReclaimParam::generation, Int64GetDatum(static_cast<std::int64_t>(me.generation & 0xFFFF)));
        args.set(ReclaimParam::slot, Int64GetDatum(static_cast<std::int64_t>(me.slot & 63)));
        args.set(ReclaimParam::start, Int64GetDatum(static_cast<std::int64_t>(me.start & 1023)));
        Rows<ReclaimColumn> rows = statements_->housekeeping->reclaim.run(args, 1);
        if (rows.size() == 1) {
            r.products = rows.int8(0, ReclaimColumn::products);
            r.pushes = rows.int8(0, ReclaimColumn::pushes);
        }
    });
    return r;
}

std::int64_t Catalog::prune(int retention_s, int batch) {
    std::int64_t removed = 0;
    in_transaction("demper: pruning old history", [&] {
        Args<PruneParam> args;
        args.set(PruneParam::retention_s, Float8GetDatum(static_cast<double>(retention_s)));
        args.set(PruneParam::batch, Int32GetDatum(batch));
        Rows<PruneColumn> rows = statements_->housekeeping->prune.run(args, 1);
        if (rows.size() == 1) removed = rows.int4(0, PruneColumn::removed);
    });
    return removed;
}

std::vector<core::DemandGroup> Catalog::schedule_demand(double default_s, double shortest_s, double longest_s) {
    std::vector<core::DemandGroup> groups;
    in_transaction("demper: measuring the schedule's demand", [&] {
        Args<DemandParam> args;
        args.set(DemandParam::default_s, Float8GetDatum(default_s));
        args.set(DemandParam::shortest_s, Float8GetDatum(shortest_s));
        args.set(DemandParam::longest_s, Float8GetDatum(longest_s));
        Rows<DemandColumn> rows = statements_->housekeeping->schedule_demand.run(args);
        groups.reserve(rows.size());
        for (std::size_t i = 0; i < rows.size(); i++) {
            core::DemandGroup g;
            g.base_interval_s = rows.float8(i, DemandColumn::base_interval_s);
            g.shortest_s = rows.float8(i, DemandColumn::shortest_s);
            g.longest_s = rows.float8(i, DemandColumn::longest_s);
            g.products = rows.float8(i, DemandColumn::products);
            groups.push_back(g);
        }
    });
    return groups;
}

std::int64_t Catalog::bring_forward(double pressure, double shortest_s, double longest_s,
                                    const core::ScheduleTuning& tuning) {
    std::int64_t moved = 0;
    const double slack =
        std::isfinite(tuning.deadline_slack_share) ? std::clamp(tuning.deadline_slack_share, 0.0, 0.5) : 0.0;
    in_transaction("demper: bringing products forward", [&] {
        Args<BringForwardParam> args;
        args.set(BringForwardParam::pressure, Float8GetDatum(pressure));
        args.set(BringForwardParam::slack, Float8GetDatum(slack));
        args.set(BringForwardParam::shortest_s, Float8GetDatum(shortest_s));
        args.set(BringForwardParam::longest_s, Float8GetDatum(longest_s));
        args.set(BringForwardParam::spread_low, Float8GetDatum(core::kBringForwardSpreadLow));
        args.set(BringForwardParam::hash_mask, Int64GetDatum(static_cast<std::int64_t>(core::kProductHashMask)));
        args.set(BringForwardParam::hash_multiplier,
                 Int64GetDatum(static_cast<std::int64_t>(core::kProductHashMultiplier)));
        args.set(BringForwardParam::hash_buckets, Int64GetDatum(static_cast<std::int64_t>(core::kProductHashBuckets)));
        Rows<BringForwardColumn> rows = statements_->housekeeping->bring_forward.run(args, 1);
        if (rows.size() == 1) moved = rows.int8(0, BringForwardColumn::moved);
    });
    return moved;
}

}  // namespace demper::pg
