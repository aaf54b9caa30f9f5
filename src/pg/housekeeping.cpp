// housekeeping.cpp: extension check, queue repair, pruning, heap trimming (see housekeeping.hpp).
#include "pg/housekeeping.hpp"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "pg/guard.hpp"
#include "pg/shared_state.hpp"
#include "pg/version.hpp"

namespace demper::pg {

namespace {

constexpr double kNotReadyPollSeconds = 2.0;     // how often to look for CREATE EXTENSION
constexpr double kFirstPruneDelaySeconds = 60;   // let the worker settle before pruning
constexpr int kPruneBatch = 1000;                // rows per table per prune transaction
constexpr int kPruneBatchesPerRound = 20;
constexpr double kTrimSeconds = 10.0;            // hand free heap pages back this often
constexpr double kPressureSeconds = 60.0;        // measure the schedule's pressure this often,
constexpr double kPressureMovedSeconds = 10.0;   // and this often while it moves (until it settles)
constexpr double kPressureBudgetShare = 0.95;    // of the request budget, for scheduled checks

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Housekeeping::Housekeeping(const LeaseOwner& owner, const Settings& settings, Catalog& catalog)
    : owner_(owner),
      slot_(static_cast<int>(owner.slot)),
      settings_(settings),
      catalog_(catalog),
      next_prune_at_(now_seconds() + kFirstPruneDelaySeconds) {}

bool Housekeeping::extension_ready(double now) {
    if (ready_) return true;
    if (now < next_look_at_) return false;
    next_look_at_ = now + kNotReadyPollSeconds;
    const std::string version = catalog_.installed_version();
    ready_ = version == kExtensionVersion;
    if (ready_) {
        reclaim_dead_leases_once();
        repair_queue_once();
        return true;
    }
    if (version.empty()) queue_repaired_ = false;  // dropped: a new install is checked again
    if (!version.empty() && version != warned_version_) {
        warned_version_ = version;
        const char* installed = warned_version_.c_str();
        pg_guard([installed] {
            ereport(WARNING, (errmsg("demper worker is waiting: the extension is at version %s, the library needs %s",
                                     installed, kExtensionVersion),
                              errhint("Run ALTER EXTENSION demper UPDATE in database \"%s\".", database_setting())));
        });
    }
    return false;
}

// reclaim_dead_leases_once hands back, at the worker's start, what workers that no longer exist
// had leased: after a crash restart or kill -9 their products would otherwise wait a whole lease.
void Housekeeping::reclaim_dead_leases_once() {
    if (leases_reclaimed_) return;
    const ReclaimedLeases r = catalog_.reclaim_dead_leases(owner_);
    leases_reclaimed_ = true;
    if (r.products == 0 && r.pushes == 0) return;
    const long long products = r.products, pushes = r.pushes;
    pg_guard([products, pushes] {
        ereport(LOG, (errmsg("demper worker reclaimed the leases of workers that are gone: %lld products and %lld pushes are due again",
                             products, pushes)));
    });
}

// repair_queue_once gives products restored from a dump, or loaded with triggers disabled, their
// place in the due queue: once per extension install, by one worker.
void Housekeeping::repair_queue_once() {
    if (queue_repaired_ || slot_ != 0) return;
    queue_repaired_ = true;
    const QueueRepair r = catalog_.repair_queue();
    if (r.added == 0 && r.removed == 0) return;
    const long long added = r.added, removed = r.removed;
    pg_guard([added, removed] {
        ereport(LOG, (errmsg("demper worker repaired the due queue: %lld products added, %lld entries removed",
                             added, removed),
                      errdetail("Products restored from a dump or loaded with triggers disabled get their place in demper.schedule here.")));
    });
}

void Housekeeping::settings_changed(double now) {
    next_pressure_at_ = std::min(next_pressure_at_, now + 1);
    next_prune_at_ = std::min(next_prune_at_, now + settings_.prune_interval_s);
}

void Housekeeping::prune_if_due(double now) {
    if (slot_ != 0 || now < next_prune_at_) return;
    next_prune_at_ = now + settings_.prune_interval_s;
    for (int round = 0; round < kPruneBatchesPerRound; round++) {
        if (catalog_.prune(settings_.history_retention_s, kPruneBatch) == 0) break;
    }
}

void Housekeeping::measure_pressure_if_due(double now, std::size_t egresses) {
    if (slot_ != 0) return;
    if (!settings_.adaptive_intervals) {
        set_schedule_pressure(1.0);  // off: nothing stretched (and a fresh start when turned on)
        next_pressure_at_ = 0;
        highest_pressure_ = 0;
        return;
    }
    if (now < next_pressure_at_) return;
    const double scale = std::max(1.0, settings_.schedule_time_scale);
    next_pressure_at_ = now + std::max(1.0, kPressureSeconds / scale);
    const core::ScheduleTuning tuning = schedule_tuning(settings_);
    // Retries, pages beyond the first and check_now take the rest of the budget.
    const double budget = settings_.requests_per_second * static_cast<double>(std::max<std::size_t>(1, egresses)) *
                          kPressureBudgetShare;
    const std::vector<core::DemandGroup> groups = catalog_.schedule_demand(
        settings_.check_interval_s, settings_.check_interval_min_s, settings_.check_interval_max_s);
    const double before = schedule_pressure();  // what the checks until now were scheduled with
    const double pressure = core::solve_pressure(groups, budget, tuning);
    set_schedule_pressure(pressure);
    // The highest pressure since products were last brought forward: a next check still waiting
    // may have been scheduled with it (a pressure that falls a little every minute adds up).
    highest_pressure_ = std::max(highest_pressure_, before);
    if (core::pressure_moved(before, pressure))
        next_pressure_at_ = now + std::max(1.0, kPressureMovedSeconds / scale);
    if (core::pressure_fell(highest_pressure_, pressure)) {
        bring_forward(highest_pressure_, pressure, tuning);
        highest_pressure_ = pressure;
    }
}

// bring_forward moves the products scheduled at a pressure up to `from` that now lie beyond what
// `to` asks for (core::latest_next_check_s): without it they would wait up to their longest
// interval, and the budget would go unspent meanwhile.
void Housekeeping::bring_forward(double from, double to, const core::ScheduleTuning& tuning) {
    const std::int64_t moved =
        catalog_.bring_forward(to, settings_.check_interval_min_s, settings_.check_interval_max_s, tuning);
    if (moved == 0) return;
    const long long n = moved;
    pg_guard([n, from, to] {
        ereport(LOG, (errmsg("demper worker brought %lld products forward: the schedule's pressure fell from %.3g to %.3g",
                             n, from, to)));
    });
}

// glibc keeps what was freed: after a million checks the heap held ~55 MB of which ~8 MB were in
// use (malloc_stats), the rest free chunks between live ones, and it crept up run after run.
// Trimming costs about a millisecond and a page fault per page used again.
void Housekeeping::trim_heap_if_due(double now, bool idle) {
    if (idle ? !idle_since_trim_ : now >= next_trim_at_) {
        malloc_trim(0);
        next_trim_at_ = now + kTrimSeconds;
        idle_since_trim_ = idle;
    }
    if (!idle) idle_since_trim_ = false;
}

}  // namespace demper::pg
