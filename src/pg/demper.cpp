// demper.cpp: the library's entry points: _PG_init (settings, shared memory, the worker's
// registration) and the SQL-callable functions in C (demper_stats, demper_stats_reset,
// wake_workers). Every function PostgreSQL calls is extern "C" and keeps C++ exceptions inside
// (pg/guard.hpp).
#include <cstdio>
#include <cstring>

#include "pg/guard.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/worker.hpp"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
PG_FUNCTION_INFO_V1(demper_stats);
PG_FUNCTION_INFO_V1(demper_stats_reset);
PG_FUNCTION_INFO_V1(demper_wake_workers);
PG_FUNCTION_INFO_V1(demper_http_status);
}

namespace {

shmem_request_hook_type g_prev_shmem_request_hook = nullptr;
shmem_startup_hook_type g_prev_shmem_startup_hook = nullptr;

void demper_shmem_request() {
    if (g_prev_shmem_request_hook) g_prev_shmem_request_hook();
    demper::pg::request_shared_memory();
}

void demper_shmem_startup() {
    if (g_prev_shmem_startup_hook) g_prev_shmem_startup_hook();
    demper::pg::init_shared_memory();
}

// require_shared_state raises a clear error when the library was not preloaded.
demper::pg::SharedState* require_shared_state() {
    demper::pg::SharedState* s = demper::pg::shared_state();
    if (s == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("demper is not loaded"),
                        errhint("Add demper to shared_preload_libraries in postgresql.conf and restart the server.")));
    return s;
}

}  // namespace

void _PG_init(void) {
    demper::pg::define_settings();
    if (!process_shared_preload_libraries_in_progress) return;

    g_prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = demper_shmem_request;
    g_prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = demper_shmem_startup;

    demper::pg::register_workers();
}

Datum demper_stats(PG_FUNCTION_ARGS) {
    demper::pg::SharedState* s = require_shared_state();
    TupleDesc tupdesc;
    if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("function returning record called in context that cannot accept type record")));
    tupdesc = BlessTupleDesc(tupdesc);
    if (tupdesc->natts != demper::pg::kCounterCount + 1)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("demper_stats() has %d columns, the library expects %d", tupdesc->natts,
                               demper::pg::kCounterCount + 1),
                        errhint("Run ALTER EXTENSION demper UPDATE.")));
    Datum values[demper::pg::kCounterCount + 1];
    bool nulls[demper::pg::kCounterCount + 1] = {};
    for (int i = 0; i < demper::pg::kCounterCount; i++)
        values[i] = Int64GetDatum(static_cast<int64>(pg_atomic_read_u64(&s->counters[i])));
    values[demper::pg::kCounterCount] =
        TimestampTzGetDatum(static_cast<TimestampTz>(pg_atomic_read_u64(&s->stats_reset_at)));
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum demper_stats_reset(PG_FUNCTION_ARGS) {
    demper::pg::SharedState* s = require_shared_state();
    for (int i = 0; i < demper::pg::kCounterCount; i++) {
        if (i == demper::pg::kInFlight || i == demper::pg::kQueued) continue;  // gauges stay
        pg_atomic_write_u64(&s->counters[i], 0);
    }
    pg_atomic_write_u64(&s->stats_reset_at, static_cast<uint64>(GetCurrentTimestamp()));
    PG_RETURN_VOID();
}

Datum demper_wake_workers(PG_FUNCTION_ARGS) {
    demper::pg::SharedState* s = require_shared_state();
    for (auto& slot : s->worker_pids) {
        uint32 pid = pg_atomic_read_u32(&slot);
        if (pid == 0) continue;
        PGPROC* proc = BackendPidGetProc(static_cast<int>(pid));
        if (proc != nullptr) SetLatch(&proc->procLatch);
    }
    PG_RETURN_VOID();
}

Datum demper_http_status(PG_FUNCTION_ARGS) {
    demper::pg::SharedState* s = require_shared_state();
    // Copy the table under the spinlock (no PostgreSQL call while holding it), then build rows.
    static demper::pg::EndpointStatus copy[demper::pg::kMaxEndpoints];
    int count = 0;
    TimestampTz published_at = 0;
    SpinLockAcquire(&s->endpoints_lock);
    count = s->endpoint_count;
    published_at = s->endpoints_published_at;
    memcpy(copy, s->endpoints, sizeof(copy[0]) * static_cast<size_t>(count));
    SpinLockRelease(&s->endpoints_lock);

    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    for (int i = 0; i < count; i++) {
        const demper::pg::EndpointStatus& e = copy[i];
        Datum values[10];
        bool nulls[10] = {};
        values[0] = CStringGetTextDatum(e.is_egress ? "egress" : "host");
        values[1] = CStringGetTextDatum(e.name);
        values[2] = Float8GetDatum(e.effective_rate);
        values[3] = CStringGetTextDatum(e.state);
        values[4] = Float8GetDatum(e.cooldown_left_s);
        values[5] = Int64GetDatum(static_cast<int64>(e.bans));
        values[6] = Int64GetDatum(static_cast<int64>(e.breaker_opens));
        values[7] = Int32GetDatum(static_cast<int32>(e.in_flight));
        values[8] = Int32GetDatum(static_cast<int32>(e.queued));
        values[9] = TimestampTzGetDatum(published_at);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}
