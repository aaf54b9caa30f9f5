// launcher.cpp: the demper launcher, the one background worker registered at server start. It
// connects to no database (it reads only the shared catalog pg_database), waits quietly until
// demper.database exists, then starts the demper.workers workers (worker.cpp) as dynamic
// background workers, starts each again when it stops (after kRestartSeconds, as long as the
// database exists), and publishes how many run, so that they share the marketplace's per-IP rate
// among the workers that actually run (max_worker_processes may admit fewer than asked).
//
// Without it, each worker connected to demper.database at start and, while that database did not
// exist, failed with FATAL every 5 seconds, forever.
#include "pg/launcher.hpp"

#include "pg/guard.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"

extern "C" {
PGDLLEXPORT void demper_launcher_main(Datum main_arg);
}

namespace demper::pg {

namespace {

constexpr int kRestartSeconds = 5;        // a stopped worker starts again after this
constexpr long kLookMilliseconds = 1000;  // how often the launcher looks when nothing wakes it

// database_exists looks demper.database up in pg_database (a shared catalog) with a heap scan, as
// PostgreSQL's autovacuum and logical replication launchers read their shared catalogs. Not
// get_database_oid(): it opens pg_database's name index, and a process bound to no database can
// open only the shared catalogs built in at its start and the relations the shared relation cache
// file (global/pg_internal.init) lists; building any other reads pg_class, which it cannot (FATAL).
// Every server start removes that file until a backend writes it again, and the launcher starts
// as the server opens, mostly before any backend has.
bool database_exists(const char* name) {
    bool exists = false;
    StartTransactionCommand();
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    for (HeapTuple tuple; !exists && (tuple = heap_getnext(scan, ForwardScanDirection)) != nullptr;)
        exists = strcmp(NameStr(reinterpret_cast<Form_pg_database>(GETSTRUCT(tuple))->datname), name) == 0;
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    CommitTransactionCommand();
    return exists;
}

// start_worker registers slot's worker; false when the postmaster has no free worker slot.
bool start_worker(int slot, BackgroundWorkerHandle** handle) {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof(worker));
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = BGW_NEVER_RESTART;  // the launcher starts it again
    strlcpy(worker.bgw_library_name, "demper", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "demper_worker_main", BGW_MAXLEN);
    snprintf(worker.bgw_name, BGW_MAXLEN, "demper worker %d", slot);
    strlcpy(worker.bgw_type, "demper worker", BGW_MAXLEN);
    worker.bgw_main_arg = Int32GetDatum(slot);
    worker.bgw_notify_pid = MyProcPid;  // the postmaster tells us when it starts and stops
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    const bool ok = RegisterDynamicBackgroundWorker(&worker, handle);
    MemoryContextSwitchTo(old);
    return ok;
}

// run_launcher is the launcher's loop; it returns when the launcher is asked to stop.
void run_launcher() {
    BackgroundWorkerHandle* handles[kMaxWorkers] = {};
    TimestampTz start_at[kMaxWorkers] = {};  // a stopped worker's restart time
    const int wanted = workers_setting() < kMaxWorkers ? workers_setting() : kMaxWorkers;
    const char* database = database_setting();
    bool said_waiting = false;
    int said_short_of = -1;  // how many ran when the postmaster last refused to start one
    SharedState* shared = shared_state();
    for (;;) {
        if (ShutdownRequestPending) return;
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        const TimestampTz now = GetCurrentTimestamp();
        int running = 0;
        for (int slot = 0; slot < wanted; slot++) {
            pid_t pid = 0;
            if (handles[slot] != nullptr && GetBackgroundWorkerPid(handles[slot], &pid) == BGWH_STOPPED) {
                pfree(handles[slot]);
                handles[slot] = nullptr;
                start_at[slot] = TimestampTzPlusMilliseconds(now, kRestartSeconds * 1000);
            }
            // A worker started by an earlier launcher (which was stopped alone) still runs: its
            // pid is in shared memory until it exits.
            if (handles[slot] != nullptr || (shared != nullptr && pg_atomic_read_u32(&shared->worker_pids[slot]) != 0))
                running++;
        }
        if (!database_exists(database)) {
            if (!said_waiting)
                ereport(LOG, (errmsg("demper is waiting for database \"%s\" to exist", database),
                              errdetail("demper.database names it; the workers start once it is created.")));
            said_waiting = true;
        } else {
            if (said_waiting)
                ereport(LOG, (errmsg("database \"%s\" exists: starting the demper workers", database)));
            said_waiting = false;
            for (int slot = 0; slot < wanted; slot++) {
                const bool occupied = handles[slot] != nullptr ||
                                      (shared != nullptr && pg_atomic_read_u32(&shared->worker_pids[slot]) != 0);
                if (occupied || now < start_at[slot]) continue;
                if (!start_worker(slot, &handles[slot])) {
                    // No free worker slot: say so once per shortage, and try again later.
                    if (running != said_short_of)
                        ereport(LOG, (errmsg("%d of the %d demper workers run: no free background worker slot", running, wanted),
                                      errhint("Raise max_worker_processes (the launcher takes one slot too) or lower demper.workers; "
                                              "the workers that run share demper.requests_per_second.")));
                    said_short_of = running;
                    break;
                }
                running++;
            }
        }
        if (running == wanted) said_short_of = -1;
        if (shared != nullptr) pg_atomic_write_u32(&shared->running_workers, static_cast<uint32>(running > 0 ? running : 1));
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kLookMilliseconds,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

}  // namespace

void register_launcher() {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof(worker));
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = kRestartSeconds;
    strlcpy(worker.bgw_library_name, "demper", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "demper_launcher_main", BGW_MAXLEN);
    strlcpy(worker.bgw_name, "demper launcher", BGW_MAXLEN);
    strlcpy(worker.bgw_type, "demper launcher", BGW_MAXLEN);
    worker.bgw_notify_pid = 0;
    RegisterBackgroundWorker(&worker);
}

}  // namespace demper::pg

void demper_launcher_main(Datum main_arg) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);  // shared catalogs only
    pgstat_report_appname("demper launcher");
    demper::pg::run_launcher();
    proc_exit(1);  // stopped on request: started again after bgw_restart_time unless the server stops
}
