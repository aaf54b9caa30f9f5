// shared_state.cpp: allocation of demper's shared memory block (shmem_request_hook and
// shmem_startup_hook of PostgreSQL 15).
#include <algorithm>
#include <cstring>

#include "pg/shared_state.hpp"

namespace demper::pg {

namespace {
SharedState* g_shared = nullptr;
}

SharedState* shared_state() { return g_shared; }

void request_shared_memory() { RequestAddinShmemSpace(MAXALIGN(sizeof(SharedState))); }

void init_shared_memory() {
    bool found = false;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    g_shared = static_cast<SharedState*>(ShmemInitStruct("demper", sizeof(SharedState), &found));
    if (!found) {
        for (auto& c : g_shared->counters) pg_atomic_init_u64(&c, 0);
        pg_atomic_init_u64(&g_shared->stats_reset_at, static_cast<uint64>(GetCurrentTimestamp()));
        for (auto& p : g_shared->worker_pids) pg_atomic_init_u32(&p, 0);
        for (auto& h : g_shared->latency) {
            for (auto& b : h.buckets) pg_atomic_init_u64(&b, 0);
            pg_atomic_init_u64(&h.sum_us, 0);
        }
        for (auto& slot : g_shared->stores) {
            pg_atomic_init_u64(&slot.store_id, 0);
            for (auto& c : slot.counters) pg_atomic_init_u64(&c, 0);
        }
        pg_atomic_init_u64(&g_shared->untracked_store_updates, 0);
        memset(g_shared->workers, 0, sizeof(g_shared->workers));
        SpinLockInit(&g_shared->endpoints_lock);
        g_shared->endpoint_count = 0;
        g_shared->endpoints_published_at = 0;
        // Leases taken before this life of shared memory belong to workers that are gone.
        const uint64 seed = static_cast<uint64>(GetCurrentTimestamp()) ^ (static_cast<uint64>(MyProcPid) << 20);
        uint32 generation = static_cast<uint32>((seed ^ (seed >> 16) ^ (seed >> 32)) & 0xFFFF);
        if (generation == 0) generation = 1;
        pg_atomic_init_u32(&g_shared->lease_generation, generation);
        for (auto& n : g_shared->slot_starts) pg_atomic_init_u32(&n, 0);
        pg_atomic_init_u32(&g_shared->running_workers, 1);
        set_schedule_pressure(1.0);
    }
    LWLockRelease(AddinShmemInitLock);
}

void record_latency(LatencyKind kind, double ms) {
    SharedState* s = shared_state();
    if (s == nullptr || !(ms >= 0)) return;
    int bucket = kLatencyBuckets - 1;
    for (int i = 0; i < kLatencyBuckets - 1; i++) {
        if (ms <= kLatencyBucketsMs[i]) {
            bucket = i;
            break;
        }
    }
    pg_atomic_fetch_add_u64(&s->latency[kind].buckets[bucket], 1);
    pg_atomic_fetch_add_u64(&s->latency[kind].sum_us, static_cast<uint64>(ms * 1000.0));
}

void store_counter_add(std::int64_t store_id, StoreCounter c, std::uint64_t n) {
    SharedState* s = shared_state();
    if (s == nullptr || store_id <= 0 || n == 0) return;
    const uint64 key = static_cast<uint64>(store_id);
    uint64 start = (key * 0x9E3779B97F4A7C15ULL) % kMaxStoreSlots;
    for (int probe = 0; probe < kMaxStoreSlots; probe++) {
        StoreSlot& slot = s->stores[(start + probe) % kMaxStoreSlots];
        uint64 current = pg_atomic_read_u64(&slot.store_id);
        if (current == 0) {
            uint64 expected = 0;
            if (pg_atomic_compare_exchange_u64(&slot.store_id, &expected, key)) current = key;
            else current = expected;  // another process took the slot: look at whose it is
        }
        if (current == key) {
            pg_atomic_fetch_add_u64(&slot.counters[c], n);
            return;
        }
    }
    pg_atomic_fetch_add_u64(&s->untracked_store_updates, n);
}

double latency_percentile(const std::uint64_t* buckets, double q) {
    std::uint64_t total = 0;
    for (int i = 0; i < kLatencyBuckets; i++) total += buckets[i];
    if (total == 0) return 0;
    const double rank = q * static_cast<double>(total);
    std::uint64_t below = 0;
    for (int i = 0; i < kLatencyBuckets; i++) {
        if (buckets[i] > 0 && static_cast<double>(below + buckets[i]) >= rank) {
            double lo = i == 0 ? 0 : kLatencyBucketsMs[i - 1];
            if (i == kLatencyBuckets - 1) return lo;  // beyond the last bound: report the bound
            double hi = kLatencyBucketsMs[i];
            double within = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
            return lo + (hi - lo) * std::clamp(within, 0.0, 1.0);
        }
        below += buckets[i];
    }
    return kLatencyBucketsMs[kLatencyBuckets - 2];
}

void reset_stats(SharedState* s) {
    for (int i = 0; i < kCounterCount; i++) {
        if (i == kInFlight || i == kQueued) continue;  // gauges stay
        pg_atomic_write_u64(&s->counters[i], 0);
    }
    for (auto& h : s->latency) {
        for (auto& b : h.buckets) pg_atomic_write_u64(&b, 0);
        pg_atomic_write_u64(&h.sum_us, 0);
    }
    for (auto& slot : s->stores)
        for (auto& c : slot.counters) pg_atomic_write_u64(&c, 0);
    pg_atomic_write_u64(&s->untracked_store_updates, 0);
    pg_atomic_write_u64(&s->stats_reset_at, static_cast<uint64>(GetCurrentTimestamp()));
}

}  // namespace demper::pg
