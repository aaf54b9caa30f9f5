// catalog.cpp: the worker's SQL. Claim and apply are the only statements on the hot path; both
// are prepared once and run in short transactions of their own.
#include "pg/catalog.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "pg/guard.hpp"
#include "pg/settings.hpp"

namespace demper::pg {

namespace {

// Claim: lease up to $1 due products, oldest due first, skipping rows another worker (or a user's
// open transaction) holds. The due queue is demper.schedule: the claim moves the claimed rows'
// next check to the lease expiry and records the lease there (0.6.0), so the front of the due
// index holds only claimable rows and a crashed worker's products come due again by themselves.
// Only the narrow schedule row is locked and written; the product row is read, not written (in
// 0.5.0 the lease made the claim update the ~1.3 kB product row as well). A row claimed meanwhile
// by another worker is rechecked under its lock, sees its new next check and is skipped. What the
// checks need of the stores is read once per store (kStoresSql), not once per product.
constexpr const char* kClaimSql = R"SQL(
WITH due AS (
    SELECT s.product_id AS id
      FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
     WHERE s.next_check_at <= now() AND p.bot_active
     ORDER BY s.next_check_at
     LIMIT $1
       FOR UPDATE OF s SKIP LOCKED
), leased AS (
    UPDATE demper.schedule s
       SET next_check_at = now() + make_interval(secs => $3),
           lease_token = $2,
           lease_until = now() + make_interval(secs => $3)
      FROM due
     WHERE s.product_id = due.id
    RETURNING s.product_id
)
SELECT p.id, p.product_code, p.price, p.min_price, p.max_price, p.step, p.city_id,
       p.store_id, p.strategy, p.step_percent::float8, p.position, p.cost_price,
       p.min_margin_percent::float8, p.floor_action, p.no_competitor_action,
       p.max_change_percent::float8, p.inputs_version
  FROM leased JOIN demper.product p ON p.id = leased.product_id
)SQL";

// When the next product comes due (in seconds from now; negative: one is due but held by another
// transaction), asked when a claim found fewer due products than it wanted.
constexpr const char* kNextDueSql = R"SQL(
SELECT extract(epoch FROM s.next_check_at - now())::float8
  FROM demper.schedule s
 ORDER BY s.next_check_at
 LIMIT 1
)SQL";

// Repair (demper.repair_queue, 0.6.0): at the worker's start, only when the due queue is empty while
// active products exist (a restore with triggers disabled). A full comparison of catalogue and
// queue takes seconds at millions of products; users call repair_queue() after loads that need it.
constexpr const char* kRepairQueueSql = "SELECT added, removed FROM demper.repair_queue(true)";

// The policies of the stores of a claimed batch, in the claim's transaction.
constexpr const char* kStoresSql = R"SQL(
SELECT s.id, s.merchant_id, s.city_id, s.active,
       array_to_string(ARRAY(SELECT o.merchant_id FROM demper.store o
                              WHERE o.seller_id = s.seller_id) || s.ignored_merchants, ','),
       s.max_delivery_duration, s.outlier_share::float8, demper.in_working_hours(s)
  FROM demper.store s
 WHERE s.id = ANY ($1)
)SQL";

// The decision was made from the row as claimed; when a user changed any input of it since, the
// decision is dropped and the product is checked again at once with the new values.
#define DEMPER_SAME_INPUTS                                                                  \
    "(p.price = g.seen_price AND p.inputs_version = g.seen_version AND p.min_price = g.seen_min " \
    "AND p.max_price IS NOT DISTINCT FROM g.seen_max AND p.step = g.seen_step AND p.bot_active)"

// The interval until a product's next check: its own, else the priority or the global one.
#define DEMPER_INTERVAL                                                                      \
    "coalesce(p.check_interval, CASE WHEN p.priority THEN make_interval(secs => $16) "       \
    "ELSE make_interval(secs => $15) END)"

// Apply: one statement writes a whole batch: price, schedule, status, explanation, one history
// row per change, one proposal per change of a store in approval mode. Rows whose lease is no
// longer ours (expired and reclaimed) are left alone. A store's change budget is shared out in
// product id order; changes beyond it are deferred (checked again within a minute), not lost.
constexpr const char* kApplySql = R"SQL(
WITH d AS (
    SELECT *
      FROM unnest($1::int8[], $2::int8[], $3::bool[], $4::bool[], $5::int8[], $6::int8[],
                  $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::int8[],
                  $13::int8[], $17::int8[], $18::json[], $19::int8[], $20::timestamptz[])
        AS d(id, lease_token, ok, skipped, new_price, competitor_price, reason, error_class,
             error_text, seen_price, seen_min, seen_max, seen_step, store_id, explain, seen_version,
             claimed_at)
), stores AS (
    -- Once per store of the batch: its change budget left, and what the outbox and proposal
    -- steps below need (so they join a handful of rows, never the store table per product).
    SELECT s.id AS store_id, s.approval_mode,
           -- Only stores with a budget count their recent changes, and never more than they need.
           CASE WHEN s.change_budget IS NOT NULL THEN
               s.change_budget - (SELECT count(*) FROM (
                   SELECT 1 FROM demper.price_history h
                    WHERE h.store_id = s.id
                      AND h.changed_at > now() - s.change_budget_window
                    LIMIT s.change_budget + 1) recent)
           END AS remaining,
           s.push_mode = 'api' AS pushes,
           CASE WHEN s.needs_login THEN 'infinity'::timestamptz
                ELSE greatest(now(), coalesce(s.push_paused_until, now())) END AS push_at,
           EXISTS (SELECT 1 FROM demper.proposal pr
                    WHERE pr.store_id = s.id AND pr.status = 'pending') AS has_pending
      FROM demper.store s
     WHERE s.id IN (SELECT store_id FROM d)
), ranked AS (
    -- The changes of stores with a budget, numbered per store in product id order (a narrow
    -- sort: most batches have no such store, and then nothing is sorted at all).
    SELECT d.id, row_number() OVER (PARTITION BY d.store_id ORDER BY d.id) AS n
      FROM d JOIN stores b ON b.store_id = d.store_id
     WHERE d.ok AND d.new_price <> d.seen_price AND b.remaining IS NOT NULL AND NOT b.approval_mode
), g AS (
    SELECT d.*,
           coalesce(b.approval_mode, false) AS approval_mode,
           coalesce(r.n > b.remaining, false) AS over_budget
      FROM d LEFT JOIN stores b ON b.store_id = d.store_id
             LEFT JOIN ranked r ON r.id = d.id
), upd AS (
    UPDATE demper.product p
       SET price = CASE WHEN g.ok AND NOT $14 AND )SQL" DEMPER_SAME_INPUTS R"SQL(
                             AND NOT g.approval_mode AND NOT g.over_budget
                        THEN g.new_price ELSE p.price END,
           last_check_time = CASE WHEN g.skipped THEN p.last_check_time ELSE now() END,
           next_check_at = CASE
               WHEN g.ok AND NOT )SQL" DEMPER_SAME_INPUTS R"SQL( THEN now()
               WHEN g.ok AND g.over_budget AND NOT $14
                   THEN now() + least()SQL" DEMPER_INTERVAL R"SQL(, interval '1 minute')
               WHEN g.skipped AND g.reason = 'outside_hours'
                   THEN demper.next_opening((SELECT s FROM demper.store s WHERE s.id = p.store_id))
                        + random() * least()SQL" DEMPER_INTERVAL R"SQL(, interval '5 minutes')
               -- A check's interval runs from its claim, not from its apply (which waits for
               -- its batch): checks of a product start one interval apart.
               WHEN g.ok THEN greatest(now(), g.claimed_at + )SQL" DEMPER_INTERVAL R"SQL()
               WHEN g.skipped THEN now() + )SQL" DEMPER_INTERVAL R"SQL(
               ELSE now() + least()SQL" DEMPER_INTERVAL R"SQL(,
                                  make_interval(secs => 10 * power(2, least(p.check_failures, 12))))
           END,
           check_failures = CASE WHEN g.ok THEN 0 WHEN g.skipped THEN p.check_failures
                                 ELSE p.check_failures + 1 END,
           last_error_class = CASE WHEN g.ok THEN NULL WHEN g.skipped THEN p.last_error_class
                                   ELSE g.error_class END,
           last_error = CASE WHEN g.ok THEN NULL WHEN g.skipped THEN p.last_error
                             ELSE g.error_text END,
           last_reason = CASE WHEN NOT g.ok THEN g.reason
                              WHEN NOT )SQL" DEMPER_SAME_INPUTS R"SQL( THEN 'inputs_changed'
                              WHEN $14 THEN 'dry_run'
                              WHEN g.new_price <> g.seen_price AND g.approval_mode THEN 'awaiting_approval'
                              WHEN g.over_budget THEN 'budget_deferred'
                              ELSE g.reason END,
           last_competitor_price = CASE WHEN g.ok THEN g.competitor_price
                                        ELSE p.last_competitor_price END,
           last_decided_price = CASE WHEN g.ok THEN g.new_price ELSE p.last_decided_price END,
           last_explain = CASE WHEN g.ok THEN g.explain ELSE p.last_explain END
      FROM g JOIN demper.schedule s ON s.product_id = g.id AND s.lease_token = g.lease_token
     WHERE p.id = g.id
    RETURNING p.id, g.lease_token, p.store_id, g.seen_price AS old_price, p.price AS new_price,
              g.new_price AS decided_price, g.competitor_price, g.reason, p.last_reason AS outcome,
              g.ok, (g.ok AND p.last_reason = g.reason AND p.price <> g.seen_price) AS changed,
              p.next_check_at
), scheduled AS (
    -- The due queue follows the product row and the lease ends (no row: the product was
    -- deactivated meanwhile). The lease is read above from the statement's snapshot and checked
    -- again here under the row's lock.
    UPDATE demper.schedule s
       SET next_check_at = upd.next_check_at, lease_token = NULL, lease_until = NULL
      FROM upd
     WHERE s.product_id = upd.id AND s.lease_token = upd.lease_token
    RETURNING 1
), hist AS (
    INSERT INTO demper.price_history (product_id, store_id, old_price, new_price, competitor_price, reason)
    SELECT id, store_id, old_price, new_price, competitor_price, reason FROM upd WHERE changed
    RETURNING old_price, new_price
), pushed AS (
    -- What the enqueue_push trigger does for a user's price change, set-based: the worker's
    -- session runs with session_replication_role = replica, so its own writes fire no trigger.
    INSERT INTO demper.outbox (product_id, store_id, price, next_attempt_at)
    SELECT u.id, u.store_id, u.new_price, st.push_at
      FROM upd u JOIN stores st ON st.store_id = u.store_id
     WHERE u.changed AND st.pushes
    ON CONFLICT (product_id) WHERE status = 'pending'
    DO UPDATE SET price = EXCLUDED.price, created_at = now(),
                  next_attempt_at = CASE
                      WHEN demper.outbox.lease_until > now() THEN demper.outbox.next_attempt_at
                      ELSE least(demper.outbox.next_attempt_at, EXCLUDED.next_attempt_at) END
    RETURNING 1
), proposed AS (
    INSERT INTO demper.proposal (product_id, store_id, old_price, new_price, competitor_price, reason)
    SELECT id, store_id, old_price, decided_price, competitor_price, reason
      FROM upd WHERE outcome = 'awaiting_approval'
    ON CONFLICT (product_id) WHERE status = 'pending'
    DO UPDATE SET old_price = EXCLUDED.old_price, new_price = EXCLUDED.new_price,
                  competitor_price = EXCLUDED.competitor_price, reason = EXCLUDED.reason,
                  created_at = now()
    RETURNING 1
), superseded AS (
    -- A pending proposal no longer stands once a later check of its product decided otherwise.
    UPDATE demper.proposal pr
       SET status = 'superseded', decided_at = now(), decided_by = 'demper'
      FROM upd JOIN stores st ON st.store_id = upd.store_id
     WHERE (SELECT bool_or(has_pending) FROM stores)  -- once: most batches have none at all
       AND pr.product_id = upd.id AND pr.status = 'pending' AND st.has_pending
       AND upd.ok AND upd.outcome <> 'awaiting_approval'
    RETURNING 1
)
SELECT u.store_id,
       count(*),
       count(*) FILTER (WHERE u.changed AND u.new_price > u.old_price),
       count(*) FILTER (WHERE u.changed AND u.new_price < u.old_price),
       count(*) FILTER (WHERE u.outcome = 'inputs_changed'),
       count(*) FILTER (WHERE u.outcome = 'budget_deferred'),
       count(*) FILTER (WHERE u.outcome = 'awaiting_approval')
  FROM upd u
 GROUP BY u.store_id
)SQL";

// Release: products still in check when the worker stops become due again at once, so a restart
// (or another worker) checks them without waiting for their lease to expire.
constexpr const char* kReleaseSql = R"SQL(
UPDATE demper.schedule s
   SET next_check_at = now(), lease_token = NULL, lease_until = NULL
  FROM unnest($1::int8[], $2::int8[]) AS r(id, lease_token)
 WHERE s.product_id = r.id AND s.lease_token = r.lease_token
)SQL";

// Claim pushes: lease due outbox rows; the claim records the price it will push, so that a newer
// decision arriving meanwhile (which updates the pending row's price) is pushed afterwards.
constexpr const char* kClaimPushesSql = R"SQL(
WITH due AS (
    SELECT o.id
      FROM demper.outbox o
     WHERE o.status = 'pending' AND o.next_attempt_at <= now()
       AND (o.lease_until IS NULL OR o.lease_until <= now())
       AND NOT EXISTS (SELECT 1 FROM demper.store s
                        WHERE s.id = o.store_id AND s.push_paused_until > now())
     ORDER BY o.next_attempt_at
     LIMIT $1
       FOR UPDATE OF o SKIP LOCKED
)
UPDATE demper.outbox o
   SET lease_token = $2,
       lease_until = now() + make_interval(secs => $3),
       next_attempt_at = now() + make_interval(secs => $3),
       pushed_price = o.price,
       attempts = o.attempts + 1
  FROM due, demper.product p, demper.store s
 WHERE o.id = due.id AND p.id = o.product_id AND s.id = o.store_id
RETURNING o.id, o.store_id, s.merchant_id, p.sku, coalesce(p.model, p.sku),
          coalesce(p.city_id, s.city_id), o.price, s.credentials, s.push_mode, s.needs_login,
          o.attempts
)SQL";

// Apply pushes: done only when the marketplace accepted the latest price; a merchant ban pauses
// every pending push of that store; a login failure parks them until new credentials are set.
constexpr const char* kApplyPushesSql = R"SQL(
WITH r AS (
    SELECT *
      FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::float8[])
        AS r(id, lease_token, store_id, outcome, job_id, detail, delay)
), banned AS (
    UPDATE demper.store s
       SET push_paused_until = now() + make_interval(secs => $8),
           last_push_error = 'the marketplace throttled this merchant (HTTP 429)'
     WHERE s.id IN (SELECT store_id FROM r WHERE outcome = 'merchant_banned')
    RETURNING s.id, s.push_paused_until
), login AS (
    UPDATE demper.store s
       SET needs_login = true,
           last_push_error = 'the merchant cabinet session expired: set new credentials'
     WHERE s.id IN (SELECT store_id FROM r WHERE outcome = 'needs_login')
    RETURNING s.id
), upd AS (
    UPDATE demper.outbox o
       SET status = CASE
               WHEN r.outcome = 'accepted' AND o.price = o.pushed_price THEN 'done'
               WHEN r.outcome IN ('rejected', 'not_pushable') THEN 'failed'
               ELSE 'pending' END,
           done_at = CASE
               WHEN r.outcome = 'accepted' AND o.price = o.pushed_price THEN now()
               WHEN r.outcome IN ('rejected', 'not_pushable') THEN now()
               ELSE NULL END,
           job_id = CASE WHEN r.outcome = 'accepted' THEN r.job_id ELSE o.job_id END,
           last_error = CASE WHEN r.outcome = 'accepted' THEN NULL ELSE r.detail END,
           next_attempt_at = CASE
               WHEN r.outcome = 'accepted' THEN now()
               WHEN r.outcome = 'retry' THEN now() + make_interval(secs => r.delay)
               WHEN r.outcome = 'merchant_banned' THEN now() + make_interval(secs => $8)
               WHEN r.outcome = 'needs_login' THEN 'infinity'::timestamptz
               ELSE o.next_attempt_at END,
           lease_token = NULL,
           lease_until = NULL
      FROM r
     WHERE o.id = r.id AND o.lease_token = r.lease_token
    RETURNING o.status, r.outcome
), parked AS (
    UPDATE demper.outbox o
       SET next_attempt_at = CASE WHEN o.store_id IN (SELECT id FROM login) THEN 'infinity'::timestamptz
                                  ELSE now() + make_interval(secs => $8) END
     WHERE o.status = 'pending' AND o.lease_token IS NULL
       AND o.store_id IN (SELECT id FROM banned UNION SELECT id FROM login)
       AND o.id NOT IN (SELECT id FROM r)
    RETURNING 1
)
SELECT (SELECT count(*) FROM upd WHERE status = 'done'),
       (SELECT count(*) FROM upd WHERE outcome = 'accepted' AND status = 'pending'),
       (SELECT count(*) FROM upd WHERE outcome NOT IN ('accepted') AND status = 'pending'),
       (SELECT count(*) FROM upd WHERE status = 'failed'),
       (SELECT count(*) FROM parked)
)SQL";

// abort_transaction rolls back whatever transaction an error left open.
void abort_transaction() {
    pg_guard([] {
        AbortCurrentTransaction();
        pgstat_report_activity(STATE_IDLE, nullptr);
    });
}

// in_transaction runs fn in a transaction of its own with SPI connected and a snapshot set;
// on error it rolls back and rethrows. Interrupts are held meanwhile: SIGTERM is acted on between
// statements by the worker's loop (stop_cleanly applies what is decided and hands the leases
// back), never inside one, where its FATAL would leave a whole batch leased until the lease
// expires. Our statements take milliseconds; a lock wait still ends when the holder's session
// does (fast shutdown terminates it too). An ERROR resets InterruptHoldoffCount to 0
// (errfinish), so the saved count is restored, never RESUME_INTERRUPTS'd.
template <typename Fn>
void in_transaction(const char* activity, Fn&& fn) {
    const uint32 saved_holdoff = InterruptHoldoffCount;
    HOLD_INTERRUPTS();
    try {
        pg_guard([&] {
            SetCurrentStatementStartTimestamp();
            StartTransactionCommand();
            if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
            PushActiveSnapshot(GetTransactionSnapshot());
            pgstat_report_activity(STATE_RUNNING, activity);
            fn();
            SPI_finish();
            PopActiveSnapshot();
            CommitTransactionCommand();
            pgstat_report_stat(false);
            pgstat_report_activity(STATE_IDLE, nullptr);
        });
    } catch (...) {
        InterruptHoldoffCount = saved_holdoff + 1;  // still held while rolling back
        abort_transaction();
        InterruptHoldoffCount = saved_holdoff;
        throw;
    }
    InterruptHoldoffCount = saved_holdoff;
}

// prepare returns a kept plan for sql, preparing it on first use. With custom_plan, it is planned
// again for each execution with the values at hand (CURSOR_OPT_CUSTOM_PLAN), never generically.
SPIPlanPtr prepare(void*& slot, const char* sql, int nargs, Oid* argtypes, bool custom_plan = false) {
    if (slot == nullptr) {
        SPIPlanPtr plan = SPI_prepare_cursor(sql, nargs, argtypes, custom_plan ? CURSOR_OPT_CUSTOM_PLAN : 0);
        if (plan == nullptr) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
        if (SPI_keepplan(plan) != 0) elog(ERROR, "SPI_keepplan failed");
        slot = plan;
    }
    return static_cast<SPIPlanPtr>(slot);
}

double get_float8(HeapTuple tuple, TupleDesc desc, int col, bool* isnull) {
    Datum d = SPI_getbinval(tuple, desc, col, isnull);
    return *isnull ? 0 : DatumGetFloat8(d);
}

int64 get_int8(HeapTuple tuple, TupleDesc desc, int col, bool* isnull) {
    Datum d = SPI_getbinval(tuple, desc, col, isnull);
    return *isnull ? 0 : DatumGetInt64(d);
}

// The arrays of the apply statement, built from the outcomes before any PostgreSQL call.
struct ApplyColumns {
    std::vector<int64> id, lease_token, new_price, competitor_price, seen_price, seen_min, seen_max,
        seen_step;
    std::vector<bool> competitor_null, seen_max_null;
    std::vector<bool> ok, skipped;
    std::vector<std::string> reason, error_class, error_text, explain;
    std::vector<int64> store_id, seen_version, claimed_at;

    explicit ApplyColumns(const std::vector<CheckOutcome>& outcomes) {
        for (const CheckOutcome& o : outcomes) {
            claimed_at.push_back(o.product.claimed_at);
            seen_version.push_back(o.product.inputs_version);
            store_id.push_back(o.product.store_id);
            explain.push_back(o.explain.empty() ? std::string("{}") : o.explain);
            id.push_back(o.product.id);
            lease_token.push_back(o.product.lease_token);
            ok.push_back(o.ok);
            skipped.push_back(o.skipped);
            new_price.push_back(o.new_price);
            competitor_price.push_back(o.competitor_price.value_or(0));
            competitor_null.push_back(!o.competitor_price.has_value());
            reason.push_back(o.reason);
            error_class.push_back(o.error_class);
            error_text.push_back(o.error_text);
            seen_price.push_back(o.product.price);
            seen_min.push_back(o.product.min_price);
            seen_max.push_back(o.product.max_price.value_or(0));
            seen_max_null.push_back(!o.product.max_price.has_value());
            seen_step.push_back(o.product.step);
        }
    }
};

// The array builders run inside pg_guard: they palloc in the transaction's memory.
// int8_array builds an int8[] (or, with element_type TIMESTAMPTZOID, a timestamptz[]: the same
// 8-byte integers, microseconds since 2000).
Datum int8_array(const std::vector<int64>& values, const std::vector<bool>* nulls, Oid element_type = INT8OID) {
    int n = static_cast<int>(values.size());
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    bool* isnull = static_cast<bool*>(palloc(sizeof(bool) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++) {
        elems[i] = Int64GetDatum(values[i]);
        isnull[i] = nulls != nullptr && (*nulls)[i];
    }
    int dims[1] = {n};
    int lbs[1] = {1};
    return PointerGetDatum(construct_md_array(elems, isnull, 1, dims, lbs, element_type, 8,
                                              FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

Datum bool_array(const std::vector<bool>& values) {
    int n = static_cast<int>(values.size());
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++) elems[i] = BoolGetDatum(values[i]);
    return PointerGetDatum(construct_array(elems, n, BOOLOID, 1, true, TYPALIGN_CHAR));
}

// text_array builds a text[] (or, with element_type JSONOID, a json[] of JSON the worker wrote
// itself: no second parse on the way in).
Datum text_array(const std::vector<std::string>& values, Oid element_type = TEXTOID) {
    int n = static_cast<int>(values.size());
    Datum* elems = static_cast<Datum*>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    for (int i = 0; i < n; i++)
        elems[i] = PointerGetDatum(cstring_to_text_with_len(values[i].data(), static_cast<int>(values[i].size())));
    return PointerGetDatum(construct_array(elems, n, element_type, -1, false, TYPALIGN_INT));
}

}  // namespace

bool Catalog::extension_ready(std::string* version) {
    char installed[64];
    installed[0] = '\0';
    in_transaction("demper: looking for the extension", [&] {
        int rc = SPI_execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'demper'",
                             true, 1);
        if (rc == SPI_OK_SELECT && SPI_processed == 1) {
            char* v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
            if (v != nullptr) strlcpy(installed, v, sizeof(installed));
        }
    });
    *version = installed;
    return *version == kSchemaVersion;
}

QueueRepair Catalog::repair_queue() {
    QueueRepair r;
    in_transaction("demper: repairing the due queue", [&] {
        int rc = SPI_execute(kRepairQueueSql, false, 1);
        if (rc != SPI_OK_SELECT || SPI_processed != 1)
            elog(ERROR, "repairing the due queue failed: %s", SPI_result_code_string(rc));
        bool isnull = false;
        r.added = get_int8(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        r.removed = get_int8(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
    });
    return r;
}

std::vector<ClaimedProduct> Catalog::claim(int limit, std::int64_t lease_token, int lease_time_s,
                                           double* next_due_in_s) {
    std::vector<ClaimedProduct> claimed;
    claimed.reserve(static_cast<std::size_t>(limit));
    in_transaction("demper: claiming due products", [&] {
        Oid types[3] = {INT4OID, INT8OID, FLOAT8OID};
        // Custom plans only: a generic plan cannot know the LIMIT and assumes a tenth of the
        // queue, so with a large backlog (all due, just analyzed) it turned into hash joins over
        // a sequential scan of both tables: half a second per claim at 200,000 products, and a
        // 16 MB hash at 1,000,000. Planning each claim costs well under 1 us per product.
        SPIPlanPtr plan = prepare(claim_plan_, kClaimSql, 3, types, true);
        Datum args[3] = {Int32GetDatum(limit), Int64GetDatum(lease_token),
                         Float8GetDatum(static_cast<double>(lease_time_s))};
        int rc = SPI_execute_plan(plan, args, nullptr, false, 0);
        if (rc != SPI_OK_SELECT)
            elog(ERROR, "claim failed: %s", SPI_result_code_string(rc));
        TupleDesc desc = SPI_tuptable->tupdesc;
        const int64 claimed_at = GetCurrentTransactionStartTimestamp();  // the claim's now()
        std::vector<int64> store_ids;
        for (uint64 i = 0; i < SPI_processed; i++) {
            HeapTuple t = SPI_tuptable->vals[i];
            bool isnull = false;
            claimed.emplace_back();
            ClaimedProduct& c = claimed.back();
            c.lease_token = lease_token;
            c.id = get_int8(t, desc, 1, &isnull);
            c.product_code = SPI_getvalue(t, desc, 2);
            c.price = get_int8(t, desc, 3, &isnull);
            c.min_price = get_int8(t, desc, 4, &isnull);
            int64 max_price = get_int8(t, desc, 5, &isnull);
            if (!isnull) c.max_price = max_price;
            c.step = get_int8(t, desc, 6, &isnull);
            if (char* city = SPI_getvalue(t, desc, 7)) c.city_id = city;
            c.store_id = get_int8(t, desc, 8, &isnull);
            c.strategy = SPI_getvalue(t, desc, 9);
            double step_percent = get_float8(t, desc, 10, &isnull);
            c.step_percent = isnull ? 0 : step_percent;
            c.position = DatumGetInt32(SPI_getbinval(t, desc, 11, &isnull));
            int64 cost = get_int8(t, desc, 12, &isnull);
            if (!isnull) c.cost_price = cost;
            double margin = get_float8(t, desc, 13, &isnull);
            if (!isnull) c.min_margin_percent = margin;
            c.floor_action = SPI_getvalue(t, desc, 14);
            c.no_competitor_action = SPI_getvalue(t, desc, 15);
            double max_change = get_float8(t, desc, 16, &isnull);
            if (!isnull) c.max_change_percent = max_change;
            c.inputs_version = get_int8(t, desc, 17, &isnull);
            c.claimed_at = claimed_at;
            if (std::find(store_ids.begin(), store_ids.end(), c.store_id) == store_ids.end())
                store_ids.push_back(c.store_id);
        }
        if (next_due_in_s != nullptr && claimed.size() < static_cast<std::size_t>(limit)) {
            SPIPlanPtr next_plan = prepare(next_due_plan_, kNextDueSql, 0, nullptr);
            rc = SPI_execute_plan(next_plan, nullptr, nullptr, true, 1);
            if (rc != SPI_OK_SELECT) elog(ERROR, "next due failed: %s", SPI_result_code_string(rc));
            bool isnull = true;
            double in_s = SPI_processed == 1 ? get_float8(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
            *next_due_in_s = isnull ? kNothingDue : in_s;
        }
        if (claimed.empty()) return;

        Oid store_types[1] = {INT8ARRAYOID};
        SPIPlanPtr stores_plan = prepare(stores_plan_, kStoresSql, 1, store_types);
        Datum store_args[1] = {int8_array(store_ids, nullptr)};
        // Not read-only: a fresh snapshot, which sees a store that a product claimed in its latest
        // version (moved to another store just now) belongs to.
        rc = SPI_execute_plan(stores_plan, store_args, nullptr, false, 0);
        if (rc != SPI_OK_SELECT) elog(ERROR, "reading stores failed: %s", SPI_result_code_string(rc));
        std::vector<std::shared_ptr<StorePolicy>> stores;
        desc = SPI_tuptable->tupdesc;
        for (uint64 i = 0; i < SPI_processed; i++) {
            HeapTuple t = SPI_tuptable->vals[i];
            bool isnull = false;
            auto s = std::make_shared<StorePolicy>();
            s->id = get_int8(t, desc, 1, &isnull);
            s->merchant_id = SPI_getvalue(t, desc, 2);
            s->city_id = SPI_getvalue(t, desc, 3);
            s->active = DatumGetBool(SPI_getbinval(t, desc, 4, &isnull));
            if (char* excluded = SPI_getvalue(t, desc, 5)) s->excluded_merchants = split_list(excluded);
            if (char* delivery = SPI_getvalue(t, desc, 6)) s->max_delivery_duration = delivery;
            double share = get_float8(t, desc, 7, &isnull);
            if (!isnull) s->outlier_share = share;
            s->in_working_hours = DatumGetBool(SPI_getbinval(t, desc, 8, &isnull));
            stores.push_back(std::move(s));
        }
        for (ClaimedProduct& c : claimed) {
            for (const auto& s : stores) {
                if (s->id == c.store_id) {
                    c.store = s;
                    break;
                }
            }
            // The store cannot go away under the claim's lock on its product (ON DELETE CASCADE);
            // should it all the same, the claim is rolled back and the product claimed again.
            if (!c.store) elog(ERROR, "the store %lld of product %lld was not found",
                               static_cast<long long>(c.store_id), static_cast<long long>(c.id));
            if (c.city_id.empty()) c.city_id = c.store->city_id;
        }
    });
    return claimed;
}

ApplyResult Catalog::apply(const std::vector<CheckOutcome>& outcomes,
                           const ScheduleSettings& schedule) {
    ApplyResult result;
    if (outcomes.empty()) return result;
    const ApplyColumns cols(outcomes);
    in_transaction("demper: applying decisions", [&] {
        Oid types[20] = {INT8ARRAYOID, INT8ARRAYOID, BOOLARRAYOID, BOOLARRAYOID, INT8ARRAYOID,
                         INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID,
                         INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, BOOLOID, FLOAT8OID, FLOAT8OID,
                         INT8ARRAYOID, JSONARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
        SPIPlanPtr plan = prepare(apply_plan_, kApplySql, 20, types);
        Datum args[20] = {int8_array(cols.id, nullptr),
                          int8_array(cols.lease_token, nullptr),
                          bool_array(cols.ok),
                          bool_array(cols.skipped),
                          int8_array(cols.new_price, nullptr),
                          int8_array(cols.competitor_price, &cols.competitor_null),
                          text_array(cols.reason),
                          text_array(cols.error_class),
                          text_array(cols.error_text),
                          int8_array(cols.seen_price, nullptr),
                          int8_array(cols.seen_min, nullptr),
                          int8_array(cols.seen_max, &cols.seen_max_null),
                          int8_array(cols.seen_step, nullptr),
                          BoolGetDatum(schedule.dry_run),
                          Float8GetDatum(static_cast<double>(schedule.check_interval_s)),
                          Float8GetDatum(static_cast<double>(schedule.priority_interval_s)),
                          int8_array(cols.store_id, nullptr),
                          text_array(cols.explain, JSONOID),
                          int8_array(cols.seen_version, nullptr),
                          int8_array(cols.claimed_at, nullptr, TIMESTAMPTZOID)};
        int rc = SPI_execute_plan(plan, args, nullptr, false, 0);
        if (rc != SPI_OK_SELECT) elog(ERROR, "apply failed: %s", SPI_result_code_string(rc));
        TupleDesc desc = SPI_tuptable->tupdesc;
        for (uint64 i = 0; i < SPI_processed; i++) {
            HeapTuple t = SPI_tuptable->vals[i];
            bool isnull = false;
            result.by_store.emplace_back();
            StoreApplyCounts& c = result.by_store.back();
            c.store_id = get_int8(t, desc, 1, &isnull);
            result.applied += get_int8(t, desc, 2, &isnull);
            c.price_up = get_int8(t, desc, 3, &isnull);
            c.price_down = get_int8(t, desc, 4, &isnull);
            result.discarded += get_int8(t, desc, 5, &isnull);
            c.deferred = get_int8(t, desc, 6, &isnull);
            c.proposed = get_int8(t, desc, 7, &isnull);
            result.price_up += c.price_up;
            result.price_down += c.price_down;
            result.deferred += c.deferred;
            result.proposed += c.proposed;
        }
    });
    return result;
}

void Catalog::release(const std::vector<ClaimedProduct>& products) {
    if (products.empty()) return;
    std::vector<int64> ids, tokens;
    for (const ClaimedProduct& p : products) {
        ids.push_back(p.id);
        tokens.push_back(p.lease_token);
    }
    in_transaction("demper: releasing leases", [&] {
        Oid types[2] = {INT8ARRAYOID, INT8ARRAYOID};
        SPIPlanPtr plan = prepare(release_plan_, kReleaseSql, 2, types);
        Datum args[2] = {int8_array(ids, nullptr), int8_array(tokens, nullptr)};
        int rc = SPI_execute_plan(plan, args, nullptr, false, 0);
        if (rc != SPI_OK_UPDATE) elog(ERROR, "release failed: %s", SPI_result_code_string(rc));
    });
}

std::vector<PushJob> Catalog::claim_pushes(int limit, std::int64_t lease_token, int lease_time_s) {
    std::vector<PushJob> jobs;
    in_transaction("demper: claiming pushes", [&] {
        Oid types[3] = {INT4OID, INT8OID, FLOAT8OID};
        SPIPlanPtr plan = prepare(claim_pushes_plan_, kClaimPushesSql, 3, types, true);  // LIMIT: as the claim
        Datum args[3] = {Int32GetDatum(limit), Int64GetDatum(lease_token),
                         Float8GetDatum(static_cast<double>(lease_time_s))};
        int rc = SPI_execute_plan(plan, args, nullptr, false, 0);
        if (rc != SPI_OK_UPDATE_RETURNING) elog(ERROR, "push claim failed: %s", SPI_result_code_string(rc));
        TupleDesc desc = SPI_tuptable->tupdesc;
        for (uint64 i = 0; i < SPI_processed; i++) {
            HeapTuple t = SPI_tuptable->vals[i];
            bool isnull = false;
            jobs.emplace_back();
            PushJob& j = jobs.back();
            j.lease_token = lease_token;
            j.outbox_id = get_int8(t, desc, 1, &isnull);
            j.store_id = get_int8(t, desc, 2, &isnull);
            j.merchant_id = SPI_getvalue(t, desc, 3);
            j.sku = SPI_getvalue(t, desc, 4);
            j.model = SPI_getvalue(t, desc, 5);
            j.city_id = SPI_getvalue(t, desc, 6);
            j.price = get_int8(t, desc, 7, &isnull);
            Datum cred = SPI_getbinval(t, desc, 8, &isnull);
            if (!isnull) {
                bytea* b = DatumGetByteaPP(cred);
                j.sealed_credentials.assign(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
            }
            j.push_mode = SPI_getvalue(t, desc, 9);
            j.needs_login = DatumGetBool(SPI_getbinval(t, desc, 10, &isnull));
            j.attempts = DatumGetInt32(SPI_getbinval(t, desc, 11, &isnull));
        }
    });
    return jobs;
}

PushApplyResult Catalog::apply_pushes(const std::vector<PushResultRow>& results, int ban_pause_s) {
    PushApplyResult result;
    if (results.empty()) return result;
    std::vector<int64> ids, tokens, stores;
    std::vector<std::string> outcomes, job_ids, details;
    std::vector<double> delays;
    for (const PushResultRow& r : results) {
        ids.push_back(r.outbox_id);
        tokens.push_back(r.lease_token);
        stores.push_back(r.store_id);
        outcomes.push_back(r.outcome);
        job_ids.push_back(r.job_id);
        details.push_back(r.detail);
        delays.push_back(r.delay_s);
    }
    in_transaction("demper: recording pushes", [&] {
        Oid types[8] = {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
                        TEXTARRAYOID, FLOAT8ARRAYOID, FLOAT8OID};
        SPIPlanPtr plan = prepare(apply_pushes_plan_, kApplyPushesSql, 8, types);
        int n = static_cast<int>(delays.size());
        Datum* delay_elems = static_cast<Datum*>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
        for (int i = 0; i < n; i++) delay_elems[i] = Float8GetDatum(delays[i]);
        Datum args[8] = {int8_array(ids, nullptr), int8_array(tokens, nullptr), int8_array(stores, nullptr),
                         text_array(outcomes), text_array(job_ids), text_array(details),
                         PointerGetDatum(construct_array(delay_elems, n, FLOAT8OID, 8, FLOAT8PASSBYVAL,
                                                         TYPALIGN_DOUBLE)),
                         Float8GetDatum(static_cast<double>(ban_pause_s))};
        int rc = SPI_execute_plan(plan, args, nullptr, false, 1);
        if (rc != SPI_OK_SELECT || SPI_processed != 1)
            elog(ERROR, "recording pushes failed: %s", SPI_result_code_string(rc));
        HeapTuple t = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull = false;
        result.done = get_int8(t, desc, 1, &isnull);
        result.superseded = get_int8(t, desc, 2, &isnull);
        result.retried = get_int8(t, desc, 3, &isnull);
        result.failed = get_int8(t, desc, 4, &isnull);
    });
    return result;
}

std::int64_t Catalog::prune(int retention_s, int batch) {
    std::int64_t removed = 0;
    in_transaction("demper: pruning old history", [&] {
        Oid types[2] = {FLOAT8OID, INT4OID};
        SPIPlanPtr plan = prepare(prune_plan_,
                                  "SELECT demper.prune_batch(make_interval(secs => $1), $2)", 2, types);
        Datum args[2] = {Float8GetDatum(static_cast<double>(retention_s)), Int32GetDatum(batch)};
        int rc = SPI_execute_plan(plan, args, nullptr, false, 1);
        if (rc != SPI_OK_SELECT || SPI_processed != 1) elog(ERROR, "prune failed: %s", SPI_result_code_string(rc));
        bool isnull = false;
        removed = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    });
    return removed;
}

void Catalog::forget_plans() {
    for (void** slot : {&claim_plan_, &stores_plan_, &next_due_plan_, &apply_plan_, &release_plan_, &claim_pushes_plan_,
                        &apply_pushes_plan_, &prune_plan_}) {
        if (*slot != nullptr) {
            SPIPlanPtr plan = static_cast<SPIPlanPtr>(*slot);
            *slot = nullptr;
            pg_guard([plan] { SPI_freeplan(plan); });
        }
    }
}

}  // namespace demper::pg
