// shared_state.cpp: allocation of demper's shared memory block (shmem_request_hook and
// shmem_startup_hook of PostgreSQL 15).
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
        SpinLockInit(&g_shared->endpoints_lock);
        g_shared->endpoint_count = 0;
        g_shared->endpoints_published_at = 0;
    }
    LWLockRelease(AddinShmemInitLock);
}

}  // namespace demper::pg
