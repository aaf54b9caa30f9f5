// worker_status.hpp: what a worker tells the rest of the server about itself: its row of
// demper.status, the engine's counters and endpoints behind demper_stats() and http_status(), and
// the failure summaries in the log (one line per host and interval, never one per product).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/http_engine.hpp"
#include "pg/pg_includes.hpp"

namespace demper::pg {

// RateMeter: a rate (per second) of a growing count, smoothed exponentially with time_constant_s.
struct RateMeter {
    double time_constant_s;
    double rate = 0;
    double at = 0;  // when it last took the count (0: never)
    std::uint64_t count = 0;

    // update folds in what the count did since the last update; steps shorter than min_step_s wait.
    void update(double now, std::uint64_t total, double min_step_s = 0);
};

// WorkerState is the state shown in demper.status.
enum class WorkerState { starting, waiting_for_extension, disabled, checking, idle };

class StatusReport {
public:
    StatusReport(int slot, core::HttpEngine& engine) : slot_(slot), engine_(engine) {}

    // checks_done counts finished checks (ok and failed) since the worker started.
    std::uint64_t checks_done() const { return checks_done_; }
    void check_done() { checks_done_++; }
    // note_failure counts a failed request against its host, for the next summary line.
    void note_failure(const std::string& host, const std::string& error_class) {
        failures_[host][error_class]++;
    }
    // remember_error keeps the last error for demper.status.
    void remember_error(const char* message);
    // learn_hosts notes the hosts of the offers and push URLs, named in failure summaries.
    void learn_hosts(const std::string& offers_url, const std::string& push_url);
    const std::string& offers_host() const { return offers_host_; }
    const std::string& push_host() const { return push_host_; }

    // publish copies the engine's counters and gauges to shared memory and, at most every
    // kPublishEndpointsSeconds, the endpoint table and this worker's status row.
    void publish(double now, WorkerState state, int in_check, const std::string& database);
    // publish_soon makes the next publish refresh everything (new settings show at once).
    void publish_soon() { next_publish_at_ = 0; }
    // log_failure_summary writes one LOG line per host that had failures in the last interval.
    void log_failure_summary(double now, int interval_s);
    // next_wake_at is when the endpoint table must be refreshed (http_status() stays this fresh).
    double next_wake_at() const { return next_publish_at_; }

private:
    struct EngineCounterMirror {
        std::uint64_t requests = 0, retries = 0, rate_limit_waits = 0, bans = 0, breaker_opens = 0,
                      egress_cooldowns = 0;
    };
    void publish_status_row(double now, WorkerState state, int in_check, const std::string& database);

    int slot_;
    core::HttpEngine& engine_;
    EngineCounterMirror mirror_;
    std::uint64_t checks_done_ = 0;
    RateMeter checks_rate_{10.0};  // demper.status checks_per_second
    std::string last_error_;
    TimestampTz last_error_at_ = 0;
    TimestampTz started_at_ = GetCurrentTimestamp();
    double next_publish_at_ = 0;
    double next_summary_at_ = 0;
    std::map<std::string, std::map<std::string, std::uint64_t>> failures_;  // host -> class -> n
    std::string offers_host_;
    std::string push_host_;
};

// clear_worker_status removes a worker's rows from shared memory (on its exit).
void clear_worker_status(int slot);

}  // namespace demper::pg
