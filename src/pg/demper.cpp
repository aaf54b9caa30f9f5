// demper.cpp: the library's entry points: _PG_init (settings, shared memory hooks, the workers'
// registration) and the SQL-callable functions written in C over shared memory and plain values:
// demper_stats(), demper_stats_reset(), wake_workers(), http_status(), latency_histogram(),
// store_counters(), worker_status(), the rule on who sees the engine-wide ones
// (engine_figures_visible, require_engine_figures), and the format checks behind the product table's CHECK
// constraints (is_product_code, is_city_id). The SQL functions of publishing are in
// publish_functions.cpp. Every function PostgreSQL calls is extern "C"; these hold no C++ object,
// so their ereport(ERROR) crosses no destructor (scripts/lint-boundary.py checks it).
#include <cstdio>
#include <cstring>

#include "pg/guard.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/launcher.hpp"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
PG_FUNCTION_INFO_V1(demper_stats);
PG_FUNCTION_INFO_V1(demper_stats_reset);
PG_FUNCTION_INFO_V1(demper_wake_workers);
PG_FUNCTION_INFO_V1(demper_http_status);
PG_FUNCTION_INFO_V1(demper_latency_histogram);
PG_FUNCTION_INFO_V1(demper_store_counters);
PG_FUNCTION_INFO_V1(demper_worker_status);
PG_FUNCTION_INFO_V1(demper_is_product_code);
PG_FUNCTION_INFO_V1(demper_is_city_id);
PG_FUNCTION_INFO_V1(demper_engine_figures_visible);
PG_FUNCTION_INFO_V1(demper_require_engine_figures);
}

namespace {

shmem_request_hook_type g_prev_shmem_request_hook = nullptr;
bool g_wake_at_commit = false;  // this backend's transaction asked to wake the workers
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

// engine_figures_visible says whether the current role may see or reset the figures of the whole
// engine (every seller's checks, changes, pushes, hosts and egresses). Always while row-level
// security is off (one seller); with it on, only the operator's roles: superusers, the
// extension's owner, and members of pg_monitor (PostgreSQL's role for monitoring). "On" is
// read from demper.store in pg_class, which only its owner can change, and the role is the
// current user, as for PostgreSQL's own statistics views: a function a tenant wrote does not
// gain an operator's view by being called by one. fn_oid is any function of the extension, to
// find its schema.
bool engine_figures_visible(Oid fn_oid) {
    const Oid role = GetUserId();
    if (superuser_arg(role) || has_privs_of_role(role, ROLE_PG_MONITOR)) return true;
    const Oid extension = get_extension_oid("demper", true);
    if (OidIsValid(extension) && pg_extension_ownercheck(extension, role)) return true;
    const Oid store = get_relname_relid("store", get_func_namespace(fn_oid));
    HeapTuple tuple = OidIsValid(store) ? SearchSysCache1(RELOID, ObjectIdGetDatum(store)) : nullptr;
    if (!HeapTupleIsValid(tuple)) return false;  // no store table to ask: refuse rather than guess
    const bool row_security = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relrowsecurity;
    ReleaseSysCache(tuple);
    return !row_security;
}

void require_engine_figures(Oid fn_oid) {
    if (!engine_figures_visible(fn_oid))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied for demper's engine-wide figures"),
                        errdetail("Row security is on: these figures cover every seller's stores."),
                        errhint("Per-store figures are in demper.store_stats; an operator's monitoring "
                                "role needs pg_monitor.")));
}

// wake_workers_now sets every running worker's latch, once.
void wake_workers_now(demper::pg::SharedState* s) {
    demper::pg::counter_add(demper::pg::kWakeRequests);
    for (auto& slot : s->worker_pids) {
        uint32 pid = pg_atomic_read_u32(&slot);
        if (pid == 0) continue;
        PGPROC* proc = BackendPidGetProc(static_cast<int>(pid));
        if (proc != nullptr) SetLatch(&proc->procLatch);
    }
}

// wake_at_commit wakes the workers when the transaction that asked commits, once however many
// times it asked: until then the rows it made due are locked or invisible to them, and a statement
// calling check_now() for 20,000 products would wake them 20,000 times for nothing.
void wake_at_commit(XactEvent event, void* arg) {
    switch (event) {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
            if (g_wake_at_commit) {
                g_wake_at_commit = false;
                if (demper::pg::SharedState* s = demper::pg::shared_state()) wake_workers_now(s);
            }
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            g_wake_at_commit = false;  // nothing became due (or not yet: the workers poll)
            break;
        default:
            break;
    }
}

}  // namespace

void _PG_init(void) {
    demper::pg::define_settings();
    if (!process_shared_preload_libraries_in_progress) return;

    RegisterXactCallback(wake_at_commit, nullptr);  // inherited by every backend

    g_prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = demper_shmem_request;
    g_prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = demper_shmem_startup;

    demper::pg::register_launcher();
}

// The columns of demper_stats() after the counters: six latency percentiles, the check rate, the
// adaptive schedule's pressure and the reset time.
constexpr int kStatsExtraColumns = 9;

Datum demper_stats(PG_FUNCTION_ARGS) {
    using namespace demper::pg;
    SharedState* s = require_shared_state();
    require_engine_figures(fcinfo->flinfo->fn_oid);
    TupleDesc tupdesc;
    if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("function returning record called in context that cannot accept type record")));
    tupdesc = BlessTupleDesc(tupdesc);
    if (tupdesc->natts != kCounterCount + kStatsExtraColumns)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("demper_stats() has %d columns, the library expects %d", tupdesc->natts,
                               kCounterCount + kStatsExtraColumns),
                        errhint("Run ALTER EXTENSION demper UPDATE.")));
    Datum values[kCounterCount + kStatsExtraColumns];
    bool nulls[kCounterCount + kStatsExtraColumns] = {};
    int col = 0;
    for (int i = 0; i < kCounterCount; i++)
        values[col++] = Int64GetDatum(static_cast<int64>(pg_atomic_read_u64(&s->counters[i])));
    for (int kind = 0; kind < kLatencyKinds; kind++) {
        uint64 buckets[kLatencyBuckets];
        for (int b = 0; b < kLatencyBuckets; b++) buckets[b] = pg_atomic_read_u64(&s->latency[kind].buckets[b]);
        for (double q : {0.50, 0.95, 0.99}) values[col++] = Float8GetDatum(latency_percentile(buckets, q));
    }
    double rate = 0;
    SpinLockAcquire(&s->endpoints_lock);
    for (const WorkerStatus& w : s->workers)
        if (w.pid != 0) rate += w.checks_per_second;
    SpinLockRelease(&s->endpoints_lock);
    values[col++] = Float8GetDatum(rate);
    values[col++] = Float8GetDatum(schedule_pressure());
    values[col++] = TimestampTzGetDatum(static_cast<TimestampTz>(pg_atomic_read_u64(&s->stats_reset_at)));
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum demper_stats_reset(PG_FUNCTION_ARGS) {
    demper::pg::SharedState* s = require_shared_state();
    require_engine_figures(fcinfo->flinfo->fn_oid);
    demper::pg::reset_stats(s);
    PG_RETURN_VOID();
}

Datum demper_latency_histogram(PG_FUNCTION_ARGS) {
    using namespace demper::pg;
    SharedState* s = require_shared_state();
    require_engine_figures(fcinfo->flinfo->fn_oid);
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    const char* names[kLatencyKinds] = {"check", "push"};
    for (int kind = 0; kind < kLatencyKinds; kind++) {
        double sum_s = static_cast<double>(pg_atomic_read_u64(&s->latency[kind].sum_us)) / 1e6;
        for (int b = 0; b < kLatencyBuckets; b++) {
            Datum values[4];
            bool nulls[4] = {};
            values[0] = CStringGetTextDatum(names[kind]);
            values[1] = Float8GetDatum(b < kLatencyBuckets - 1 ? kLatencyBucketsMs[b] / 1000.0
                                                               : get_float8_infinity());
            values[2] = Int64GetDatum(static_cast<int64>(pg_atomic_read_u64(&s->latency[kind].buckets[b])));
            values[3] = Float8GetDatum(sum_s);
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        }
    }
    return (Datum)0;
}

Datum demper_store_counters(PG_FUNCTION_ARGS) {
    using namespace demper::pg;
    SharedState* s = require_shared_state();
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    for (const StoreSlot& slot : s->stores) {
        uint64 id = pg_atomic_read_u64(const_cast<pg_atomic_uint64*>(&slot.store_id));
        if (id == 0) continue;
        Datum values[1 + kStoreCounterCount];
        bool nulls[1 + kStoreCounterCount] = {};
        values[0] = Int64GetDatum(static_cast<int64>(id));
        for (int c = 0; c < kStoreCounterCount; c++)
            values[1 + c] = Int64GetDatum(static_cast<int64>(
                pg_atomic_read_u64(const_cast<pg_atomic_uint64*>(&slot.counters[c]))));
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}

Datum demper_worker_status(PG_FUNCTION_ARGS) {
    using namespace demper::pg;
    SharedState* s = require_shared_state();
    require_engine_figures(fcinfo->flinfo->fn_oid);
    static WorkerStatus copy[kMaxWorkers];
    SpinLockAcquire(&s->endpoints_lock);
    memcpy(copy, s->workers, sizeof(copy));
    SpinLockRelease(&s->endpoints_lock);
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    for (const WorkerStatus& w : copy) {
        if (w.pid == 0) continue;
        Datum values[8];
        bool nulls[8] = {};
        values[0] = Int32GetDatum(w.pid);
        values[1] = CStringGetTextDatum(w.state);
        values[2] = CStringGetTextDatum(w.database);
        values[3] = Int32GetDatum(w.in_check);
        values[4] = Float8GetDatum(w.checks_per_second);
        values[5] = TimestampTzGetDatum(w.started_at);
        values[6] = CStringGetTextDatum(w.last_error);
        nulls[6] = w.last_error[0] == '\0';
        values[7] = TimestampTzGetDatum(w.last_error_at);
        nulls[7] = w.last_error_at == 0;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}

Datum demper_wake_workers(PG_FUNCTION_ARGS) {
    demper::pg::SharedState* s = require_shared_state();
    if (IsTransactionState())
        g_wake_at_commit = true;
    else
        wake_workers_now(s);
    PG_RETURN_VOID();
}

Datum demper_http_status(PG_FUNCTION_ARGS) {
    demper::pg::SharedState* s = require_shared_state();
    require_engine_figures(fcinfo->flinfo->fn_oid);
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

// The format checks behind the product table's CHECK constraints. They run on every
// UPDATE of a product row, so they are a byte loop rather than translate(); plain C, nothing
// here can throw.
Datum demper_is_product_code(PG_FUNCTION_ARGS) {
    text* code = PG_GETARG_TEXT_PP(0);
    const char* p = VARDATA_ANY(code);
    const int n = VARSIZE_ANY_EXHDR(code);
    bool ok = n >= 1 && n <= 64;
    for (int i = 0; ok && i < n; i++) {
        const char c = p[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
             c == '-';
    }
    PG_RETURN_BOOL(ok);
}

Datum demper_is_city_id(PG_FUNCTION_ARGS) {
    text* city = PG_GETARG_TEXT_PP(0);
    const char* p = VARDATA_ANY(city);
    const int n = VARSIZE_ANY_EXHDR(city);
    bool ok = n == 9;
    for (int i = 0; ok && i < n; i++) ok = p[i] >= '0' && p[i] <= '9';
    PG_RETURN_BOOL(ok);
}

Datum demper_engine_figures_visible(PG_FUNCTION_ARGS) {
    PG_RETURN_BOOL(engine_figures_visible(fcinfo->flinfo->fn_oid));
}

Datum demper_require_engine_figures(PG_FUNCTION_ARGS) {
    require_engine_figures(fcinfo->flinfo->fn_oid);
    PG_RETURN_VOID();
}
