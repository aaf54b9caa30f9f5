// housekeeping.hpp: what keeps a worker fit besides its checks and pushes: it waits for the
// extension at the schema version this library needs (and repairs the due queue once after a
// restore), prunes old history, and hands free heap pages back to the system.
#pragma once

#include <string>

#include "pg/catalog.hpp"
#include "pg/settings.hpp"

namespace demper::pg {

class Housekeeping {
public:
    Housekeeping(const LeaseOwner& owner, const Settings& settings, Catalog& catalog);

    // extension_ready says whether the extension is installed at the version this library needs;
    // while it is not, it looks again every few seconds (and warns once per wrong version).
    bool extension_ready(double now);
    bool ready() const { return ready_; }
    // next_look_at is when extension_ready looks again while the extension is not ready.
    double next_look_at() const { return next_look_at_; }
    // extension_lost makes the next extension_ready look again (after a failed transaction).
    void extension_lost() {
        ready_ = false;
        next_look_at_ = 0;
    }
    // settings_changed brings the next prune forward to the new interval.
    void settings_changed(double now);
    // prune_if_due removes history older than demper.history_retention, a batch per transaction
    // (one worker prunes).
    void prune_if_due(double now);
    // trim_heap_if_due hands free heap pages back every few seconds and when the worker falls idle.
    void trim_heap_if_due(double now, bool idle);
    // measure_pressure_if_due measures the adaptive schedule's pressure every minute (every 10 s
    // while it moves by more than core::kBringForwardRatio; soon after a reload; both divided by
    // demper.schedule_time_scale) while demper.adaptive_intervals is on: the value at which the
    // catalogue's checks ask for 95 % of the request budget (one worker measures, all schedule
    // with it). When it fell by more than that ratio, products scheduled further ahead than the
    // new pressure asks are brought forward.
    void measure_pressure_if_due(double now, std::size_t egresses);

private:
    void bring_forward(double from, double to, const core::ScheduleTuning& tuning);
    void repair_queue_once();
    void reclaim_dead_leases_once();

    LeaseOwner owner_;
    int slot_;
    const Settings& settings_;
    Catalog& catalog_;
    bool ready_ = false;
    double next_look_at_ = 0;
    bool queue_repaired_ = false;  // the due queue was checked against the products (slot 0)
    bool leases_reclaimed_ = false;  // the leases of dead workers were handed back
    std::string warned_version_;
    double next_prune_at_;
    double next_trim_at_ = 0;
    double next_pressure_at_ = 0;
    double highest_pressure_ = 0;  // published since products were last brought forward
    bool idle_since_trim_ = false;
};

}  // namespace demper::pg
