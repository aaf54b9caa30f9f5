// shared_state.hpp: demper's shared memory: the counters behind demper_stats() and what a
// backend needs to wake the workers. Only atomics and plain integers live here: no pointer to
// process-local memory, no file descriptor (DESIGN.md).
#pragma once

#include <cstdint>
#include <cstring>

#include "pg/pg_includes.hpp"

namespace demper::pg {

// Counter names the monotonic counters and gauges of demper_stats(), in its column order.
enum Counter : int {
    kChecksStarted,
    kChecksOk,
    kChecksFailed,
    kPriceChanges,
    kPriceUp,
    kPriceDown,
    kFloorHits,
    kDecisionsDiscarded,
    kBudgetDeferred,
    kProposals,
    kPushesOk,
    kPushesFailed,
    kPushesRetried,
    kHttpRequests,
    kHttpRetries,
    kRateLimitWaits,
    kBans,
    kBreakerOpens,
    kEgressCooldowns,
    kInFlight,  // gauge
    kQueued,    // gauge
    kFailedTimeout,
    kFailedConnect,
    kFailedDns,
    kFailedTls,
    kFailedHttp4xx,
    kFailedHttp5xx,
    kFailedBan,
    kFailedTooLarge,
    kFailedBadBody,
    kFailedRefusedHost,
    kWakeRequests,  // times a committed transaction woke the workers (wake_workers, check_now)
    kPushesVerified,       // accepted pushes whose price the cabinet shows
    kPushesRejected,       // accepted pushes the cabinet did not apply within push_verify_timeout
    kOffersOffSale,        // offers the marketplace took off sale after a push
    kCatalogueSyncs,       // catalogue imports started
    kCatalogueSyncFailures,  // imports that ended with an error
    kCounterCount
};

constexpr int kMaxWorkers = 64;
constexpr int kMaxEndpoints = 64;      // hosts + egresses published by the workers
constexpr int kEndpointNameLen = 96;

// EndpointStatus is one target host or one egress of a worker's HTTP engine, as last published.
struct EndpointStatus {
    int worker_slot;
    bool is_egress;
    char name[kEndpointNameLen];  // host:port, or the egress with credentials removed
    double effective_rate;        // requests per second the engine admits now
    char state[16];               // breaker state of a host; "resting"/"ready" for an egress
    double cooldown_left_s;
    uint64 bans;
    uint64 breaker_opens;
    uint32 in_flight;
    uint32 queued;
};

// Latency histograms: fixed buckets (upper bounds in milliseconds; the last is +inf).
constexpr double kLatencyBucketsMs[] = {5,   10,  25,  50,   75,   100,  150,  200,   250,
                                       300, 400, 500, 750, 1000, 2500, 5000, 10000, 30000};
constexpr int kLatencyBuckets = sizeof(kLatencyBucketsMs) / sizeof(kLatencyBucketsMs[0]) + 1;
enum LatencyKind : int { kCheckLatency, kPushLatency, kLatencyKinds };

struct LatencyHistogram {
    pg_atomic_uint64 buckets[kLatencyBuckets];
    pg_atomic_uint64 sum_us;
};

// Per-store counters live in a fixed open-addressing table keyed by store id.
enum StoreCounter : int {
    kStoreChecksOk,
    kStoreChecksFailed,
    kStorePriceChanges,
    kStorePriceUp,
    kStorePriceDown,
    kStoreFloorHits,
    kStoreBudgetDeferred,
    kStoreProposals,
    kStorePushesOk,
    kStorePushesFailed,
    kStoreCounterCount
};
constexpr int kMaxStoreSlots = 4096;

struct StoreSlot {
    pg_atomic_uint64 store_id;  // 0 = free
    pg_atomic_uint64 counters[kStoreCounterCount];
};

// WorkerStatus is what a worker says about itself (guarded by endpoints_lock).
struct WorkerStatus {
    int pid;
    char state[32];
    char database[64];
    int in_check;
    double checks_per_second;
    TimestampTz started_at;
    char last_error[256];
    TimestampTz last_error_at;
};

struct SharedState {
    pg_atomic_uint64 counters[kCounterCount];
    pg_atomic_uint64 stats_reset_at;         // TimestampTz
    pg_atomic_uint32 worker_pids[kMaxWorkers];  // 0 = slot free
    slock_t endpoints_lock;                   // guards the endpoint table below
    int endpoint_count;
    TimestampTz endpoints_published_at;
    EndpointStatus endpoints[kMaxEndpoints];
    LatencyHistogram latency[kLatencyKinds];
    StoreSlot stores[kMaxStoreSlots];
    pg_atomic_uint64 untracked_store_updates;  // the store table was full
    WorkerStatus workers[kMaxWorkers];       // by worker slot; pid 0 = not running
    // Lease ownership (LeaseOwner, catalog.hpp): a random number for this life of shared memory
    // (a server start or a crash restart), and how many times each slot's worker has started in it.
    pg_atomic_uint32 lease_generation;
    pg_atomic_uint32 slot_starts[kMaxWorkers];
    // How many workers run (the launcher's count): they share the per-IP rate among themselves.
    pg_atomic_uint32 running_workers;
    // The adaptive schedule's pressure (a double's bits): worker 0 measures it every minute, every
    // worker schedules with it (1: every product at its own base interval).
    pg_atomic_uint64 schedule_pressure_bits;
};

// shared_state returns the shared memory block, or nullptr when demper was not preloaded.
SharedState* shared_state();
void request_shared_memory();
void init_shared_memory();

// schedule_pressure is the adaptive schedule's pressure (1 when demper was not preloaded).
inline double schedule_pressure() {
    SharedState* s = shared_state();
    if (s == nullptr) return 1.0;
    const std::uint64_t bits = pg_atomic_read_u64(&s->schedule_pressure_bits);
    double value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}
inline void set_schedule_pressure(double value) {
    SharedState* s = shared_state();
    if (s == nullptr) return;
    std::uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    pg_atomic_write_u64(&s->schedule_pressure_bits, bits);
}

inline void counter_add(Counter c, std::uint64_t n = 1) {
    if (SharedState* s = shared_state()) pg_atomic_fetch_add_u64(&s->counters[c], n);
}
// record_latency adds one observation to a latency histogram.
void record_latency(LatencyKind kind, double ms);
// store_counter_add adds to a store's counter (dropped, and counted, when the table is full).
void store_counter_add(std::int64_t store_id, StoreCounter c, std::uint64_t n = 1);
// latency_percentile estimates a percentile (0..1) in milliseconds from a histogram snapshot.
double latency_percentile(const std::uint64_t* buckets, double q);
// reset_stats zeroes counters, histograms and store counters (gauges stay).
void reset_stats(SharedState* s);

inline void gauge_set(Counter c, std::uint64_t v) {
    if (SharedState* s = shared_state()) pg_atomic_write_u64(&s->counters[c], v);
}

}  // namespace demper::pg
