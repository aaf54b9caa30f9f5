// worker_status.cpp: the worker's status row, engine counters, endpoint table and failure
// summaries (see worker_status.hpp).
#include "pg/worker_status.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "core/url.hpp"
#include "pg/guard.hpp"
#include "pg/shared_state.hpp"

namespace demper::pg {

namespace {

constexpr double kPublishEndpointsSeconds = 0.25;  // how often http_status() is refreshed

const char* state_name(WorkerState s) {
    switch (s) {
        case WorkerState::starting:
            return "starting";
        case WorkerState::waiting_for_extension:
            return "waiting for extension";
        case WorkerState::disabled:
            return "disabled";
        case WorkerState::checking:
            return "checking";
        case WorkerState::idle:
            return "idle";
    }
    return "starting";
}

// endpoint_rows turns the engine's snapshot into shared-memory rows (built outside the lock).
std::vector<EndpointStatus> endpoint_rows(const core::EngineSnapshot& snap, int slot) {
    std::vector<EndpointStatus> rows;
    for (const core::HostSnapshot& h : snap.hosts) {
        EndpointStatus e{};
        e.worker_slot = slot;
        e.is_egress = false;
        strlcpy(e.name, h.host.c_str(), sizeof(e.name));
        e.effective_rate = h.effective_rate;
        strlcpy(e.state, core::breaker_state_name(h.breaker), sizeof(e.state));
        e.bans = h.bans;
        e.breaker_opens = h.breaker_opens;
        e.in_flight = static_cast<uint32>(h.in_flight);
        e.queued = static_cast<uint32>(h.queued);
        rows.push_back(e);
    }
    for (const core::EgressSnapshot& g : snap.egresses) {
        EndpointStatus e{};
        e.worker_slot = slot;
        e.is_egress = true;
        strlcpy(e.name, g.name.c_str(), sizeof(e.name));
        e.effective_rate = g.rate;
        strlcpy(e.state, g.cooling_down ? "resting" : "ready", sizeof(e.state));
        e.cooldown_left_s = g.cooldown_left_s;
        e.bans = g.bans;
        e.in_flight = static_cast<uint32>(g.in_flight);
        rows.push_back(e);
    }
    return rows;
}

// publish_endpoints replaces this worker's rows of the shared endpoint table.
void publish_endpoints(const std::vector<EndpointStatus>& rows, int slot) {
    SharedState* s = shared_state();
    if (s == nullptr) return;
    TimestampTz now = GetCurrentTimestamp();
    SpinLockAcquire(&s->endpoints_lock);
    int kept = 0;
    for (int i = 0; i < s->endpoint_count; i++)
        if (s->endpoints[i].worker_slot != slot) s->endpoints[kept++] = s->endpoints[i];
    for (const EndpointStatus& e : rows)
        if (kept < kMaxEndpoints) s->endpoints[kept++] = e;
    s->endpoint_count = kept;
    s->endpoints_published_at = now;
    SpinLockRelease(&s->endpoints_lock);
}

std::string host_of(const std::string& url) {
    auto parts = core::parse_url(url);
    return parts ? parts->host + ":" + std::to_string(parts->port) : std::string("(invalid URL)");
}

}  // namespace

void RateMeter::update(double now, std::uint64_t total, double min_step_s) {
    if (at > 0) {
        const double dt = now - at;
        if (dt <= 0 || dt < min_step_s) return;
        const double instant = static_cast<double>(total - count) / dt;
        rate += (1.0 - std::exp(-dt / time_constant_s)) * (instant - rate);
    }
    at = now;
    count = total;
}

void StatusReport::remember_error(const char* message) {
    last_error_ = message;
    last_error_at_ = GetCurrentTimestamp();
}

void StatusReport::learn_hosts(const std::string& offers_url, const std::string& push_url) {
    offers_host_ = host_of(core::expand_url_template(offers_url, "1"));
    push_host_ = host_of(push_url);
}

void StatusReport::publish(double now, WorkerState state, int in_check, const std::string& database) {
    const core::EngineCounters& c = engine_.counters();
    counter_add(kHttpRequests, c.requests - mirror_.requests);
    counter_add(kHttpRetries, c.retries - mirror_.retries);
    counter_add(kRateLimitWaits, c.rate_limit_waits - mirror_.rate_limit_waits);
    counter_add(kBans, c.bans - mirror_.bans);
    counter_add(kBreakerOpens, c.breaker_opens - mirror_.breaker_opens);
    counter_add(kEgressCooldowns, c.egress_cooldowns - mirror_.egress_cooldowns);
    mirror_ = {c.requests, c.retries, c.rate_limit_waits, c.bans, c.breaker_opens, c.egress_cooldowns};
    if (now >= next_publish_at_) {
        next_publish_at_ = now + kPublishEndpointsSeconds;
        publish_endpoints(endpoint_rows(engine_.snapshot(), slot_), slot_);
        publish_status_row(now, state, in_check, database);
    }
    gauge_set(kInFlight, engine_.in_flight());
    gauge_set(kQueued, engine_.queued());
}

void StatusReport::publish_status_row(double now, WorkerState state, int in_check, const std::string& database) {
    SharedState* s = shared_state();
    if (s == nullptr) return;
    checks_rate_.update(now, checks_done_);
    WorkerStatus w{};
    w.pid = MyProcPid;
    strlcpy(w.state, state_name(state), sizeof(w.state));
    strlcpy(w.database, database.c_str(), sizeof(w.database));
    w.in_check = in_check;
    w.checks_per_second = checks_rate_.rate;
    w.started_at = started_at_;
    strlcpy(w.last_error, last_error_.c_str(), sizeof(w.last_error));
    w.last_error_at = last_error_at_;
    SpinLockAcquire(&s->endpoints_lock);
    s->workers[slot_] = w;
    SpinLockRelease(&s->endpoints_lock);
}

void StatusReport::log_failure_summary(double now, int interval_s) {
    if (next_summary_at_ == 0) next_summary_at_ = now + interval_s;  // the first interval starts now
    if (now < next_summary_at_) return;
    next_summary_at_ = now + interval_s;
    for (const auto& [host, classes] : failures_) {
        std::uint64_t total = 0;
        std::string by_class;
        for (const auto& [error_class, n] : classes) {
            total += n;
            if (!by_class.empty()) by_class += ", ";
            by_class += error_class + " " + std::to_string(n);
        }
        const char* host_c = host.c_str();
        const char* by_class_c = by_class.c_str();
        pg_guard([&] {
            ereport(LOG, (errmsg("demper: %llu requests failed in the last %d s against %s (%s)",
                                 static_cast<unsigned long long>(total), interval_s, host_c, by_class_c)));
        });
    }
    failures_.clear();
}

void clear_worker_status(int slot) {
    if (SharedState* s = shared_state()) {
        pg_atomic_write_u32(&s->worker_pids[slot], 0);
        SpinLockAcquire(&s->endpoints_lock);
        int kept = 0;
        for (int i = 0; i < s->endpoint_count; i++)
            if (s->endpoints[i].worker_slot != slot) s->endpoints[kept++] = s->endpoints[i];
        s->endpoint_count = kept;
        s->workers[slot].pid = 0;
        SpinLockRelease(&s->endpoints_lock);
    }
}

}  // namespace demper::pg
