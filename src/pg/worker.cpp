// worker.cpp: the demper worker: its registration, its main loop, its sleep, and stopping cleanly.
//
// A worker runs over the products of demper.database. Its parts do the work (each tells the loop
// when it next needs to wake):
//   CheckPipeline  claims due products, fetches their offers, decides, applies (check_pipeline.hpp)
//   Publisher      drains the outbox to the merchant cabinet API; slot 0 only (publisher.hpp)
//   Housekeeping   waits for the extension, prunes history, trims the heap (housekeeping.hpp)
//   StatusReport   demper.status, demper_stats(), http_status(), failure summaries (worker_status.hpp)
// They share one HTTP engine through a RequestRouter, which hands each answer to the part that
// sent the request (request_router.hpp), and one Catalog holding all of the worker's SQL
// (catalog.hpp). The worker sleeps on one WaitEventSet holding its latch, postmaster death and the
// engine's socket set, so SIGTERM and SIGHUP are handled while requests are in flight.
#include "pg/worker.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/crypto.hpp"
#include "core/http_engine.hpp"
#include "pg/catalog.hpp"
#include "pg/catalogue_import.hpp"
#include "pg/check_pipeline.hpp"
#include "pg/credentials.hpp"
#include "pg/guard.hpp"
#include "pg/housekeeping.hpp"
#include "pg/publisher.hpp"
#include "pg/push_verifier.hpp"
#include "pg/request_router.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/worker_status.hpp"

extern "C" {
PGDLLEXPORT void demper_worker_main(Datum main_arg);
}

namespace demper::pg {

namespace {

constexpr double kLongestSleepSeconds = 1.0;  // the loop runs at least this often
constexpr double kErrorPauseSeconds = 1.0;    // pause after a failed transaction
constexpr double kTransientPauseSeconds = 0.2; // pause after a lock timeout or a cancel
constexpr int kPublishingSlot = 0;            // one worker publishes, so merchants' budgets hold

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// proxies_of gives the proxy URLs of demper.proxies and demper.proxies_file. A problem with either
// is logged once per change (never with a URL: it may carry a password), and the file's proxies
// are left out until it is fixed.
std::vector<std::string> proxies_of(const Settings& s) {
    static std::string logged_problem;
    std::vector<std::string> proxies = split_list(s.proxies);
    std::string problem;
    for (const std::string& p : proxies) {
        const std::size_t scheme = p.find("://");
        const std::size_t at = p.find('@', scheme == std::string::npos ? 0 : scheme);
        if (at != std::string::npos && p.find('/', scheme == std::string::npos ? 0 : scheme + 3) > at)
            problem = "demper.proxies holds proxy credentials, which PostgreSQL writes to the server log "
                      "whenever the setting changes: move them to the file named by demper.proxies_file";
    }
    if (!s.proxies_file.empty()) {
        try {
            for (std::string& p : core::read_secret_lines(s.proxies_file)) proxies.push_back(std::move(p));
        } catch (const std::exception& e) {
            problem = std::string("demper.proxies_file is not used: ") + e.what();
        }
    }
    if (problem != logged_problem) {
        logged_problem = problem;
        if (!problem.empty()) {
            const char* msg = logged_problem.c_str();
            pg_guard([msg] { ereport(WARNING, (errmsg("%s", msg))); });
        }
    }
    return proxies;
}

// running_workers is how many workers the launcher runs (they share the per-IP rate).
int running_workers() {
    SharedState* s = shared_state();
    return s == nullptr ? 1 : std::max(1, static_cast<int>(pg_atomic_read_u32(&s->running_workers)));
}

core::EngineConfig engine_config(const Settings& s, int running) {
    core::EngineConfig c;
    // The marketplace's limits are per client IP: the workers that run share the per-egress budget.
    const double share = 1.0 / std::max(1, running);
    c.requests_per_second = s.requests_per_second * share;
    c.burst = std::max(1.0, s.burst * share);
    c.max_inflight = s.max_inflight;
    c.timeout_ms = s.http_timeout_ms;
    c.connect_timeout_ms = std::min<long>(s.http_timeout_ms, 5000);
    c.max_body_bytes = static_cast<std::size_t>(s.max_response_kb) * 1024;
    c.allowed_hosts = s.allowed_hosts;
    c.verify_tls = true;
    c.ca_file = s.ca_file;
    c.user_agent = s.user_agent;
    c.max_attempts = s.max_attempts;
    c.backoff_base_s = s.backoff_base_ms / 1000.0;
    c.backoff_cap_s = s.backoff_max_ms / 1000.0;
    c.max_inflight_per_host = s.max_inflight_per_host;
    c.breaker_failure_threshold = s.breaker_threshold;
    c.breaker_cooldown_s = s.breaker_cooldown_s;
    c.egress_cooldown_s = s.egress_cooldown_s;
    c.proxies = proxies_of(s);
    c.allow_private_addresses = s.allow_private_addresses;
    c.http_version = s.http_version;
    return c;
}

class Worker {
public:
    explicit Worker(int slot);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    void run();

private:
    bool handle_signals();
    void apply_session_settings();
    void do_due_work(double now);
    void recover_from(const PgError& error);
    void sleep_until_next_wake();
    void reload_settings();
    void stop_cleanly();
    WorkerState state() const;

    int slot_;
    LeaseOwner owner_;
    Settings settings_ = current_settings();
    Catalog catalog_;
    LeaseTokens tokens_{owner_};
    int running_ = running_workers();
    core::HttpEngine engine_{engine_config(settings_, running_)};
    RequestRouter router_{engine_};
    StatusReport report_;
    CheckPipeline checks_;
    Credentials credentials_{settings_};
    CabinetReadBudget cabinet_reads_{settings_};
    // The cabinet's side, one worker's (kPublishingSlot): pushes, their verification, imports.
    std::unique_ptr<Publisher> publisher_;
    std::unique_ptr<PushVerifier> verifier_;
    std::unique_ptr<CatalogueImport> import_;
    Housekeeping housekeeping_;
    WaitEventSet* wait_set_ = nullptr;
    double error_pause_until_ = 0;
};

// take_lease_owner counts this start of the slot's worker in shared memory.
LeaseOwner take_lease_owner(int slot) {
    LeaseOwner owner;
    owner.slot = static_cast<std::uint32_t>(slot);
    if (SharedState* s = shared_state()) {
        owner.generation = pg_atomic_read_u32(&s->lease_generation);
        owner.start = pg_atomic_fetch_add_u32(&s->slot_starts[slot], 1) + 1;
    }
    return owner;
}

Worker::Worker(int slot)
    : slot_(slot),
      owner_(take_lease_owner(slot)),
      report_(slot, engine_),
      checks_(settings_, catalog_, router_, report_, tokens_),
      housekeeping_(owner_, settings_, catalog_) {
    if (slot == kPublishingSlot) {
        publisher_ = std::make_unique<Publisher>(settings_, catalog_, router_, report_, tokens_, credentials_);
        verifier_ = std::make_unique<PushVerifier>(settings_, catalog_, router_, report_, credentials_, cabinet_reads_);
        import_ = std::make_unique<CatalogueImport>(settings_, catalog_, router_, report_, credentials_, cabinet_reads_);
    }
    report_.learn_hosts(settings_.offers_url, settings_.push_url);
    const int engine_fd = engine_.wait_fd();
    WaitEventSet* set = nullptr;
    pg_guard([&set, engine_fd] {
        set = CreateWaitEventSet(TopMemoryContext, 3);
        AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
        AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
        AddWaitEventToSet(set, WL_SOCKET_READABLE, engine_fd, nullptr, nullptr);
    });
    wait_set_ = set;
}

Worker::~Worker() {
    if (wait_set_ != nullptr) FreeWaitEventSet(wait_set_);
}

// run is the worker's loop, as autoprewarm_main: signals, the work that is due, the status, sleep.
// It returns when the worker was asked to stop, having stopped cleanly.
void Worker::run() {
    apply_session_settings();
    for (;;) {
        if (!handle_signals()) return;
        if (const int running = running_workers(); running != running_) {
            running_ = running;  // a worker started or stopped: the rate is shared anew
            engine_.reconfigure(engine_config(settings_, running_));
        }
        try {
            router_.deliver();
            do_due_work(now_seconds());
        } catch (const PgError& e) {
            recover_from(e);
        }
        report_.publish(now_seconds(), state(), static_cast<int>(checks_.in_check()), settings_.database);
        sleep_until_next_wake();
    }
}

// handle_signals stops cleanly on SIGTERM (returns false: the worker exits), lets a cancel
// (pg_cancel_backend) end only what it interrupted, and rereads the configuration on SIGHUP.
// SIGTERM only sets ShutdownRequestPending: it never cuts a statement short, and a statement
// waits for a lock at most demper.lock_timeout, so a stop is honoured within about a second.
bool Worker::handle_signals() {
    if (ShutdownRequestPending) {
        stop_cleanly();
        return false;
    }
    try {
        pg_guard([] { CHECK_FOR_INTERRUPTS(); });
    } catch (const PgError& e) {
        if (e.sqlerrcode() != ERRCODE_QUERY_CANCELED) throw;
        pg_guard([] { ereport(LOG, (errmsg("demper worker was asked to cancel; it goes on"))); });
    }
    if (ConfigReloadPending) {
        ConfigReloadPending = false;
        reload_settings();
    }
    return true;
}

// apply_session_settings sets the session's lock_timeout from demper.lock_timeout.
void Worker::apply_session_settings() {
    const std::string timeout = std::to_string(settings_.lock_timeout_ms);
    const char* value = timeout.c_str();
    pg_guard([value] { SetConfigOption("lock_timeout", value, PGC_SUSET, PGC_S_OVERRIDE); });
}

// do_due_work runs every step that is due, in pipeline order.
void Worker::do_due_work(double now) {
    if (now >= error_pause_until_ && housekeeping_.extension_ready(now)) {
        checks_.give_up_overdue_checks(now);
        checks_.apply_if_due(now, false);
        if (publisher_) {
            publisher_->give_up_overdue_pushes(now);
            publisher_->apply_if_due(now, false);
        }
        checks_.claim_if_room(now);
        if (publisher_) {
            publisher_->claim_if_due(now);
            publisher_->send_due(now);
            verifier_->step(now);
            import_->step(now);
        }
        engine_.perform();  // start what was just submitted
        housekeeping_.prune_if_due(now);
        housekeeping_.measure_pressure_if_due(now, engine_.egress_count());
    }
    report_.log_failure_summary(now, settings_.log_summary_interval_s);
    housekeeping_.trim_heap_if_due(now, checks_.idle());
}

// recover_from handles a failed transaction. One that had to wait (a lock held too long, a
// cancel) is tried again shortly with everything kept. Any other was rolled back for a reason
// that may not pass: the batch it wrote is dropped (those leases expire and the products come
// due again), the plans are prepared anew, and the worker pauses before looking for the
// extension again.
void Worker::recover_from(const PgError& error) {
    if (error.sqlerrcode() == ERRCODE_QUERY_CANCELED || error.sqlerrcode() == ERRCODE_LOCK_NOT_AVAILABLE ||
        error.sqlerrcode() == ERRCODE_T_R_DEADLOCK_DETECTED) {
        error_pause_until_ = now_seconds() + kTransientPauseSeconds;
        const char* msg = error.what();
        pg_guard([msg] { ereport(LOG, (errmsg("demper worker will try again shortly: %s", msg))); });
        return;
    }
    catalog_.forget_plans();
    housekeeping_.extension_lost();
    error_pause_until_ = now_seconds() + kErrorPauseSeconds;
    const char* msg = error.what();
    report_.remember_error(msg);
    pg_guard([msg] {
        ereport(WARNING, (errmsg("demper worker could not update the catalogue: %s", msg),
                          errdetail("Decisions of the batch were dropped; those products will be checked again.")));
    });
    checks_.drop_undecided();
    if (publisher_) {
        publisher_->drop_unrecorded();
        verifier_->drop_unrecorded();
    }
}

WorkerState Worker::state() const {
    if (!housekeeping_.ready()) return WorkerState::waiting_for_extension;
    if (!settings_.enabled) return WorkerState::disabled;
    if (checks_.in_check() > 0) return WorkerState::checking;
    return WorkerState::idle;
}

// sleep_until_next_wake sleeps until the earliest time any part has work that no event brings
// (an answer on a socket, the latch: check_now, reload, shutdown), at most kLongestSleepSeconds.
void Worker::sleep_until_next_wake() {
    const double now = now_seconds();
    double wake_at = now + kLongestSleepSeconds;
    if (!housekeeping_.ready()) {
        wake_at = std::min(wake_at, housekeeping_.next_look_at());
    } else {
        double parts = checks_.next_wake_at(now);
        if (publisher_) {
            parts = std::min(parts, publisher_->next_wake_at(now));
            parts = std::min(parts, verifier_->next_wake_at(now));
            parts = std::min(parts, import_->next_wake_at(now));
        }
        wake_at = std::min(wake_at, std::max(parts, error_pause_until_));
    }
    wake_at = std::min(wake_at, report_.next_wake_at());
    long timeout_ms = static_cast<long>(std::max(0.0, wake_at - now) * 1000) + 1;
    const long engine_ms = engine_.next_timeout_ms();
    if (engine_ms >= 0) timeout_ms = std::min(timeout_ms, engine_ms);
    WaitEvent events[4];
    int n = 0;
    WaitEventSet* set = wait_set_;
    pg_guard([&] { n = WaitEventSetWait(set, timeout_ms, events, 4, PG_WAIT_EXTENSION); });
    for (int i = 0; i < n; i++) {
        if (events[i].events & WL_LATCH_SET) {
            pg_guard([] { ResetLatch(MyLatch); });
            checks_.claim_soon();  // someone asked for a check now (check_now, reload, shutdown)
            if (import_) import_->look_soon();  // or for a catalogue import (sync_catalogue)
        }
    }
}

void Worker::reload_settings() {
    pg_guard([] { ProcessConfigFile(PGC_SIGHUP); });
    settings_ = current_settings();
    apply_session_settings();
    engine_.reconfigure(engine_config(settings_, running_));
    checks_.claim_soon();
    report_.publish_soon();  // show the new settings in http_status() at once
    report_.learn_hosts(settings_.offers_url, settings_.push_url);
    credentials_.reload();
    cabinet_reads_.settings_changed();
    if (publisher_) publisher_->settings_changed();
    housekeeping_.settings_changed(now_seconds());
}

// stop_cleanly runs once SIGTERM has arrived, before the worker exits: it applies the decisions
// and push results already made and hands the products still in check back, due at once.
// Interrupts are held for these short transactions only; requests in flight are abandoned.
void Worker::stop_cleanly() {
    char error[512];
    error[0] = '\0';
    try {
        // A lock someone holds must not hold the stop up: wait for none longer than this.
        pg_guard([] { SetConfigOption("lock_timeout", "250", PGC_SUSET, PGC_S_OVERRIDE); });
        if (housekeeping_.ready()) {
            checks_.hand_back_unchecked();
            if (publisher_) publisher_->apply_if_due(now_seconds(), true);
        }
    } catch (const std::exception& e) {
        strlcpy(error, e.what(), sizeof(error));
    }
    if (error[0] != '\0') {
        pg_guard([&error] {
            ereport(LOG, (errmsg("demper worker could not hand back its products before stopping: %s", error),
                          errdetail("They will be checked again when their lease expires.")));
        });
    }
}

void clear_worker_slot(int code, Datum arg) { clear_worker_status(DatumGetInt32(arg)); }

}  // namespace

// run_worker runs the worker; the C++ objects live here, below demper_worker_main, which reports
// the error this returns (the message of the exception that ended the worker).
void run_worker(int slot, char* error, size_t error_size) {
    try {
        Worker worker(slot);
        worker.run();
    } catch (const std::exception& e) {
        strlcpy(error, e.what(), error_size);
    } catch (...) {
        strlcpy(error, "unknown C++ exception", error_size);
    }
}

}  // namespace demper::pg

void demper_worker_main(Datum main_arg) {
    int slot = DatumGetInt32(main_arg);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
    BackgroundWorkerUnblockSignals();

    if (demper::pg::SharedState* s = demper::pg::shared_state()) {
        pg_atomic_write_u32(&s->worker_pids[slot], static_cast<uint32>(MyProcPid));
        on_shmem_exit(demper::pg::clear_worker_slot, Int32GetDatum(slot));
    }
    BackgroundWorkerInitializeConnection(demper::pg::database_setting(), nullptr, 0);
    pgstat_report_appname("demper worker");
    // The worker's own writes fire no trigger: its apply statement does set-based what the
    // triggers do row by row (the outbox insert of enqueue_push), its inserts reference rows it
    // holds locked (so the foreign key checks have nothing to find), and it never changes what
    // validate_product checks. CHECK constraints still hold. The row-by-row plpgsql trigger and
    // the foreign key checks cost ~10 % of the worker's CPU per check (bench/results/FINDINGS.md).
    SetConfigOption("session_replication_role", "replica", PGC_SUSET, PGC_S_OVERRIDE);
    // Short statements over a few thousand rows: compiling them would cost more than running them.
    SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    // Every name in the worker's SQL resolves in pg_catalog or is qualified with demper: nothing
    // a database user creates elsewhere (public.array_to_string, say) can stand in for a function
    // or an operator the worker calls.
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
    ereport(LOG, (errmsg("demper worker started in database \"%s\"", demper::pg::database_setting())));
    char error[1024];
    error[0] = '\0';
    demper::pg::run_worker(slot, error, sizeof(error));
    if (error[0] != '\0') ereport(FATAL, (errmsg("demper worker stopped: %s", error)));
    // Stopped on request (SIGTERM: shutdown, pg_terminate_backend). Exit code 1, as die() gave:
    // the postmaster starts the worker again after bgw_restart_time unless the server stops.
    ereport(LOG, (errmsg("demper worker stopped on request")));
    proc_exit(1);
}
