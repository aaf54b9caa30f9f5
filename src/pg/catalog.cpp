// catalog.cpp: the worker's SQL, and the only place its enums become the text PostgreSQL stores.
// Claim and apply are the only statements on the hot path. Each statement is declared once: its
// named parameters and its result columns with their types (statement.hpp).
#include "pg/catalog.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "pg/settings.hpp"
#include "pg/statement.hpp"

namespace demper::pg {

namespace {

// ── Claim ────────────────────────────────────────────────────────────────────────────────────
// Lease up to $limit due products, oldest due first, skipping rows another worker (or a user's
// open transaction) holds. The due queue is demper.schedule: the claim moves the claimed rows'
// next check to the lease expiry and records the lease there, so the front of the due index
// holds only claimable rows and a crashed worker's products come due again by themselves. Only
// the narrow schedule row is locked and written; the product row is read. A row claimed meanwhile
// by another worker is rechecked under its lock, sees its new next check and is skipped.
constexpr const char* kClaimSql = R"SQL(
WITH due AS (
    SELECT s.product_id AS id
      FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
     WHERE s.next_check_at <= now() AND p.bot_active
     ORDER BY s.next_check_at
     LIMIT $limit
       FOR UPDATE OF s SKIP LOCKED
), leased AS (
    UPDATE demper.schedule s
       SET next_check_at = now() + make_interval(secs => $lease_seconds),
           lease_token = $lease_token,
           lease_until = now() + make_interval(secs => $lease_seconds)
      FROM due
     WHERE s.product_id = due.id
    RETURNING s.product_id
)
SELECT p.id, p.product_code, p.price, p.min_price, p.max_price, p.step, p.city_id,
       p.store_id, p.strategy, p.step_percent::float8 AS step_percent, p.position, p.cost_price,
       p.min_margin_percent::float8 AS min_margin_percent, p.floor_action, p.no_competitor_action,
       p.max_change_percent::float8 AS max_change_percent, p.inputs_version, p.schedule_state,
       extract(epoch FROM p.check_interval)::float8 AS own_interval_s, p.priority,
       extract(epoch FROM p.check_interval_min)::float8 AS interval_min_s,
       extract(epoch FROM p.check_interval_max)::float8 AS interval_max_s
  FROM leased JOIN demper.product p ON p.id = leased.product_id
)SQL";
#define DEMPER_CLAIM_PARAMS(F) F(limit, INT4OID) F(lease_token, INT8OID) F(lease_seconds, FLOAT8OID)
#define DEMPER_CLAIM_COLUMNS(F)                                                                  \
    F(id, INT8OID) F(product_code, TEXTOID) F(price, INT8OID) F(min_price, INT8OID)              \
    F(max_price, INT8OID) F(step, INT8OID) F(city_id, TEXTOID) F(store_id, INT8OID)              \
    F(strategy, TEXTOID) F(step_percent, FLOAT8OID) F(position, INT4OID) F(cost_price, INT8OID)  \
    F(min_margin_percent, FLOAT8OID) F(floor_action, TEXTOID) F(no_competitor_action, TEXTOID)   \
    F(max_change_percent, FLOAT8OID) F(inputs_version, INT8OID) F(schedule_state, TEXTOID)          \
    F(own_interval_s, FLOAT8OID) F(priority, BOOLOID) F(interval_min_s, FLOAT8OID)               \
    F(interval_max_s, FLOAT8OID)
DEMPER_DECLARE_FIELDS(ClaimParam, DEMPER_CLAIM_PARAMS)
DEMPER_DECLARE_FIELDS(ClaimColumn, DEMPER_CLAIM_COLUMNS)

// When the next product comes due (seconds from now; negative: one is due but held by another
// transaction), asked when a claim found fewer due products than it wanted.
constexpr const char* kNextDueSql = R"SQL(
SELECT extract(epoch FROM s.next_check_at - now())::float8 AS due_in
  FROM demper.schedule s
 ORDER BY s.next_check_at
 LIMIT 1
)SQL";
#define DEMPER_NEXT_DUE_COLUMNS(F) F(due_in, FLOAT8OID)
DEMPER_DECLARE_FIELDS(NextDueColumn, DEMPER_NEXT_DUE_COLUMNS)

// The policies of the stores of a claimed batch, read in the claim's transaction, once per store.
// A seller's own merchant ids are those of its stores under the same owner role: with row-level
// security on, a store another tenant inserted with this seller_id must not hide a competitor.
constexpr const char* kStoresSql = R"SQL(
SELECT s.id, s.merchant_id, s.city_id, s.active,
       pg_catalog.array_to_string(ARRAY(SELECT o.merchant_id FROM demper.store o
                                         WHERE o.seller_id = s.seller_id
                                           AND o.owner_role IS NOT DISTINCT FROM s.owner_role)
                                  || s.ignored_merchants, ',') AS excluded_merchants,
       s.max_delivery_duration, s.outlier_share::float8 AS outlier_share,
       demper.store_hours(s) AS hours,
       extract(epoch FROM s.check_interval_min)::float8 AS interval_min_s,
       extract(epoch FROM s.check_interval_max)::float8 AS interval_max_s, s.war_policy
  FROM demper.store s
 WHERE s.id = ANY ($store_ids)
)SQL";
#define DEMPER_STORES_PARAMS(F) F(store_ids, INT8ARRAYOID)
#define DEMPER_STORES_COLUMNS(F)                                                            \
    F(id, INT8OID) F(merchant_id, TEXTOID) F(city_id, TEXTOID) F(active, BOOLOID)           \
    F(excluded_merchants, TEXTOID) F(max_delivery_duration, TEXTOID) F(outlier_share, FLOAT8OID) \
    F(hours, TEXTOID) F(interval_min_s, FLOAT8OID) F(interval_max_s, FLOAT8OID) F(war_policy, TEXTOID)
DEMPER_DECLARE_FIELDS(StoresParam, DEMPER_STORES_PARAMS)
DEMPER_DECLARE_FIELDS(StoresColumn, DEMPER_STORES_COLUMNS)

// ── Apply ────────────────────────────────────────────────────────────────────────────────────
// The decision was made from the row as claimed; when a user changed any input of it since, the
// decision is dropped and the product is checked again at once with the new values.
#define DEMPER_SAME_INPUTS                                                                  \
    "(p.price = g.seen_price AND p.inputs_version = g.seen_version AND p.min_price = g.seen_min " \
    "AND p.max_price IS NOT DISTINCT FROM g.seen_max AND p.step = g.seen_step AND p.bot_active)"

// A price written by the apply is never below the product's floor as it is now, whatever the
// decision says (the rule never goes below the floor it saw, and the floor it saw is the floor now
// or the decision is dropped: this is the last line of defence). The floor is the rule's own
// (core::configured_floor and the marketplace's 10 tenge): min_price, and the cost plus the least
// margin, rounded up, the margin to the millionth of a percent the rule reads it at.
#define DEMPER_ABOVE_FLOOR                                                                    \
    "(g.new_price = g.seen_price OR g.new_price >= greatest(p.min_price, 10, "                \
    "ceil(p.cost_price::numeric * (100 + round(coalesce(p.min_margin_percent, 0), 6)) / 100)))"

// A decision stands (its price written, proposed, or recorded in a dry run) unless the inputs
// changed, it fell below the floor, or the store's change budget deferred it (inside the upd of
// the apply, where p is the row before the update).
#define DEMPER_DECISION_STANDS                                                               \
    "(" DEMPER_SAME_INPUTS " AND " DEMPER_ABOVE_FLOOR " AND (NOT g.over_budget OR $dry_run))"

// The interval until a product's next check: its own, else the priority or the global one.
#define DEMPER_INTERVAL                                                                      \
    "coalesce(p.check_interval, CASE WHEN p.priority THEN make_interval(secs => $priority_interval_s) " \
    "ELSE make_interval(secs => $check_interval_s) END)"

// One statement writes a whole batch: price, schedule, status, explanation, one history row per
// change, one outbox row per change to publish, one proposal per change of a store in approval
// mode. Rows whose lease is no longer ours (expired and reclaimed) are left alone. A store's
// change budget is shared out in product id order; changes beyond it are deferred (checked
// again within a minute), not lost.
constexpr const char* kApplySql = R"SQL(
WITH raw AS (
    SELECT *
      FROM unnest($ids::int8[], $lease_tokens::int8[], $ok::bool[], $skipped::bool[],
                  $new_prices::int8[], $competitor_prices::int8[], $reasons::text[],
                  $error_classes::text[], $error_texts::text[], $seen_prices::int8[],
                  $seen_mins::int8[], $seen_maxes::int8[], $seen_steps::int8[], $store_ids::int8[],
                  $explains::json[], $seen_versions::int8[], $claimed_ats::timestamptz[],
                  $schedule_states::text[], $next_intervals::float8[], $base_intervals::float8[],
                  $shortests::float8[], $longests::float8[], $war_rivals::text[])
        AS raw(id, lease_token, ok, skipped, new_price, competitor_price, reason, error_class,
               error_text, seen_price, seen_min, seen_max, seen_step, store_id, explain, seen_version,
               claimed_at, schedule_state, next_interval, base_interval, shortest, longest, war_rival)
), stores AS (
    -- Once per store of the batch: whether it is open now, its change budget left, and what the
    -- outbox and proposal steps below need (so they join a handful of rows, never the store table
    -- per product). The budget is counted in bigint: any change_budget the table admits fits.
    SELECT s.id AS store_id, s.approval_mode, s.active AND demper.store_hours(s) = 'open' AS open,
           -- the reason a closed store's products are skipped with (a claim's names)
           CASE WHEN NOT s.active THEN 'store_inactive'
                WHEN demper.store_hours(s) = 'closed' THEN 'outside_hours'
                ELSE demper.store_hours(s) END AS closed_reason,
           -- Only stores with a budget count their recent changes, and never more than they need.
           CASE WHEN s.change_budget IS NOT NULL THEN
               s.change_budget::int8 - (SELECT count(*) FROM (
                   SELECT 1 FROM demper.price_history h
                    WHERE h.store_id = s.id
                      AND h.changed_at > now() - s.change_budget_window
                    LIMIT s.change_budget::int8 + 1) recent)
           END AS remaining,
           s.push_mode = 'api' AS pushes,
           CASE WHEN s.needs_login THEN 'infinity'::timestamptz
                ELSE greatest(now(), coalesce(s.push_paused_until, now())) END AS push_at,
           EXISTS (SELECT 1 FROM demper.proposal pr
                    WHERE pr.store_id = s.id AND pr.status = 'pending') AS has_pending
      FROM demper.store s
     WHERE s.id IN (SELECT store_id FROM raw)
), d AS (
    -- A decision of a store that is no longer active, or outside its working hours now, is not
    -- applied: the product is skipped, as a claim would have skipped it.
    SELECT raw.id, raw.lease_token,
           raw.ok AND coalesce(b.open, false) AS ok,
           raw.skipped OR (raw.ok AND NOT coalesce(b.open, false)) AS skipped,
           raw.new_price, raw.competitor_price,
           CASE WHEN raw.ok AND NOT coalesce(b.open, false)
                THEN coalesce(b.closed_reason, 'store_inactive') ELSE raw.reason END AS reason,
           raw.error_class, raw.error_text, raw.seen_price, raw.seen_min, raw.seen_max,
           raw.seen_step, raw.store_id, raw.explain, raw.seen_version, raw.claimed_at,
           -- the adaptive schedule's outcome ('' and 0: none, the fixed interval)
           nullif(raw.schedule_state, '') AS schedule_state,
           CASE WHEN raw.next_interval > 0 THEN raw.next_interval END AS next_interval,
           raw.base_interval, raw.shortest, raw.longest, nullif(raw.war_rival, '') AS war_rival
      FROM raw LEFT JOIN stores b ON b.store_id = raw.store_id
), locked AS (
    -- A product row a user's open transaction holds is skipped, not waited for: its outcome is
    -- applied with a later batch (busy_ids below), and the rest of this one goes on. The outcomes
    -- of the rows locked go on from here, so that nothing below joins two of these CTEs on the
    -- product id: a generic plan, which cannot see the batch's size, loops over one for each row
    -- of the other (a batch of 1,000 took 0.3 s).
    SELECT d.* FROM d JOIN demper.product p ON p.id = d.id
       FOR NO KEY UPDATE OF p SKIP LOCKED
), g AS (
    -- The changes of stores with a budget (not in approval mode, which proposes instead) are
    -- numbered per store in product id order, over the rows locked: a row a user holds is not
    -- written with this batch, and a number it took would defer a change that can be written
    -- while its share of the budget went unspent. It is applied with a later batch, against the
    -- store's changes counted again then, so the budget still holds. The numbering is a window
    -- over this batch's rows, never a join of another CTE to them on the product id (see locked).
    SELECT c.*,
           c.budgeted AND row_number() OVER (PARTITION BY c.store_id, c.budgeted ORDER BY c.id) > c.remaining
               AS over_budget
      FROM (SELECT l.*, coalesce(b.approval_mode, false) AS approval_mode, b.remaining,
                   coalesce(l.ok AND l.new_price <> l.seen_price AND b.remaining IS NOT NULL
                            AND NOT b.approval_mode, false) AS budgeted
              FROM locked l LEFT JOIN stores b ON b.store_id = l.store_id) c
), upd AS (
    UPDATE demper.product p
       SET price = CASE WHEN g.ok AND NOT $dry_run AND )SQL" DEMPER_SAME_INPUTS R"SQL(
                             AND )SQL" DEMPER_ABOVE_FLOOR R"SQL( AND NOT g.approval_mode AND NOT g.over_budget
                        THEN g.new_price ELSE p.price END,
           last_check_time = CASE WHEN g.skipped THEN p.last_check_time ELSE now() END,
           next_check_at = CASE
               WHEN g.ok AND NOT )SQL" DEMPER_SAME_INPUTS R"SQL( THEN now()
               WHEN g.ok AND g.over_budget AND NOT $dry_run
                   THEN now() + least()SQL" DEMPER_INTERVAL R"SQL(, interval '1 minute')
               -- Refused below the floor: checked again soon, at most once a minute (a rule that
               -- keeps deciding below its floor must not spin).
               WHEN g.ok AND NOT )SQL" DEMPER_ABOVE_FLOOR R"SQL(
                   THEN now() + least()SQL" DEMPER_INTERVAL R"SQL(, interval '1 minute')
               WHEN g.skipped AND g.reason = 'outside_hours'
                   THEN demper.next_opening((SELECT s FROM demper.store s WHERE s.id = p.store_id))
                        + random() * least()SQL" DEMPER_INTERVAL R"SQL(, interval '5 minutes')
               -- A check's interval runs from its claim, not from its apply (which waits for
               -- its batch): checks of a product start one interval apart. The adaptive
               -- schedule's interval when it chose one.
               WHEN g.ok THEN greatest(now(), g.claimed_at + coalesce(make_interval(secs => g.next_interval),
                                                                      )SQL" DEMPER_INTERVAL R"SQL())
               WHEN g.skipped THEN now() + )SQL" DEMPER_INTERVAL R"SQL(
               ELSE now() + least()SQL" DEMPER_INTERVAL R"SQL(,
                                  make_interval(secs => 10 * pg_catalog.power(2, least(p.check_failures, 12))))
           END,
           check_failures = CASE WHEN g.ok THEN 0 WHEN g.skipped THEN p.check_failures
                                 ELSE least(p.check_failures, 1000000) + 1 END,
           last_error_class = CASE WHEN g.ok THEN NULL WHEN g.skipped THEN p.last_error_class
                                   ELSE g.error_class END,
           last_error = CASE WHEN g.ok THEN NULL WHEN g.skipped THEN p.last_error
                             ELSE g.error_text END,
           last_reason = CASE WHEN NOT g.ok THEN g.reason
                              WHEN NOT )SQL" DEMPER_SAME_INPUTS R"SQL( THEN 'inputs_changed'
                              WHEN NOT )SQL" DEMPER_ABOVE_FLOOR R"SQL( THEN 'below_floor_refused'
                              WHEN $dry_run THEN 'dry_run'
                              WHEN g.new_price <> g.seen_price AND g.approval_mode THEN 'awaiting_approval'
                              WHEN g.over_budget THEN 'budget_deferred'
                              ELSE g.reason END,
           last_competitor_price = CASE WHEN g.ok THEN g.competitor_price
                                        ELSE p.last_competitor_price END,
           last_decided_price = CASE WHEN g.ok THEN g.new_price ELSE p.last_decided_price END,
           last_explain = CASE WHEN g.ok THEN g.explain ELSE p.last_explain END,
           -- What the check taught the schedule stays only with a decision that stands (applied,
           -- proposed or dry run); a dropped, deferred or refused one leaves it as it was.
           schedule_state = CASE WHEN g.ok AND g.next_interval IS NOT NULL AND )SQL" DEMPER_DECISION_STANDS R"SQL(
                                 THEN g.schedule_state ELSE p.schedule_state END,
           war_rival = CASE WHEN g.ok AND )SQL" DEMPER_DECISION_STANDS R"SQL( THEN g.war_rival ELSE p.war_rival END
      -- The lease is compared with IS NOT DISTINCT FROM, and the batch's token is not NULL: together
      -- "=". A batch's rows share one token, and with "=" the planner merge-joins on it through
      -- schedule_leased_idx, comparing every row of the batch with every other (0.27 s for a batch
      -- of 1,000); a condition on the queue's token picks that partial index, estimated nearly
      -- empty, for a nested loop. So the join is on the product id alone.
      FROM g JOIN demper.schedule s ON s.product_id = g.id AND s.lease_token IS NOT DISTINCT FROM g.lease_token
     WHERE p.id = g.id AND g.lease_token IS NOT NULL
    RETURNING p.id, g.lease_token, p.store_id, g.seen_price AS old_price, p.price AS new_price,
              g.new_price AS decided_price, g.competitor_price, g.reason, p.last_reason AS outcome,
              g.ok, (g.ok AND p.last_reason = g.reason AND p.price <> g.seen_price) AS changed,
              p.next_check_at,
              (g.ok AND g.next_interval IS NOT NULL
               AND p.last_reason NOT IN ('inputs_changed', 'below_floor_refused', 'budget_deferred')) AS schedule_written,
              g.base_interval, g.shortest, g.longest
), scheduled AS (
    -- The due queue follows the product row and the lease ends (no row: the product was
    -- deactivated meanwhile). The lease is read above from the statement's snapshot and checked
    -- again here under the row's lock.
    UPDATE demper.schedule s
       SET next_check_at = upd.next_check_at, lease_token = NULL, lease_until = NULL,
           base_interval_s = CASE WHEN upd.schedule_written THEN upd.base_interval ELSE s.base_interval_s END,
           shortest_s = CASE WHEN upd.schedule_written THEN upd.shortest ELSE s.shortest_s END,
           longest_s = CASE WHEN upd.schedule_written THEN upd.longest ELSE s.longest_s END
      FROM upd
     WHERE s.product_id = upd.id AND s.lease_token IS NOT DISTINCT FROM upd.lease_token  -- "=", as above
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
       count(*) AS applied,
       count(*) FILTER (WHERE u.changed AND u.new_price > u.old_price) AS price_up,
       count(*) FILTER (WHERE u.changed AND u.new_price < u.old_price) AS price_down,
       count(*) FILTER (WHERE u.outcome = 'inputs_changed') AS discarded,
       count(*) FILTER (WHERE u.outcome = 'budget_deferred') AS deferred,
       count(*) FILTER (WHERE u.outcome = 'awaiting_approval') AS proposed,
       NULL::int8[] AS busy_ids
  FROM upd u
 GROUP BY u.store_id
UNION ALL
-- One more row when products were busy (locked by someone else; deleted ones are not busy).
SELECT NULL, 0, 0, 0, 0, 0, 0, busy.ids
  FROM (SELECT ARRAY(SELECT d.id FROM d
                      WHERE d.id NOT IN (SELECT id FROM locked)
                        AND EXISTS (SELECT 1 FROM demper.product p WHERE p.id = d.id)) AS ids) busy
 WHERE cardinality(busy.ids) > 0
)SQL";
#define DEMPER_APPLY_PARAMS(F)                                                                   \
    F(ids, INT8ARRAYOID) F(lease_tokens, INT8ARRAYOID) F(ok, BOOLARRAYOID)                       \
    F(skipped, BOOLARRAYOID) F(new_prices, INT8ARRAYOID) F(competitor_prices, INT8ARRAYOID)      \
    F(reasons, TEXTARRAYOID) F(error_classes, TEXTARRAYOID) F(error_texts, TEXTARRAYOID)         \
    F(seen_prices, INT8ARRAYOID) F(seen_mins, INT8ARRAYOID) F(seen_maxes, INT8ARRAYOID)          \
    F(seen_steps, INT8ARRAYOID) F(dry_run, BOOLOID) F(check_interval_s, FLOAT8OID)               \
    F(priority_interval_s, FLOAT8OID) F(store_ids, INT8ARRAYOID) F(explains, JSONARRAYOID)       \
    F(seen_versions, INT8ARRAYOID) F(claimed_ats, TIMESTAMPTZARRAYOID)                           \
    F(schedule_states, TEXTARRAYOID) F(next_intervals, FLOAT8ARRAYOID)                           \
    F(base_intervals, FLOAT8ARRAYOID) F(shortests, FLOAT8ARRAYOID) F(longests, FLOAT8ARRAYOID)   \
    F(war_rivals, TEXTARRAYOID)
#define DEMPER_APPLY_COLUMNS(F)                                                                  \
    F(store_id, INT8OID) F(applied, INT8OID) F(price_up, INT8OID) F(price_down, INT8OID)         \
    F(discarded, INT8OID) F(deferred, INT8OID) F(proposed, INT8OID) F(busy_ids, INT8ARRAYOID)
DEMPER_DECLARE_FIELDS(ApplyParam, DEMPER_APPLY_PARAMS)
DEMPER_DECLARE_FIELDS(ApplyColumn, DEMPER_APPLY_COLUMNS)

// Release: products still in check when the worker stops become due again at once, so a restart
// (or another worker) checks them without waiting for their lease to expire; a product whose
// outcome could not be written comes due again after $delay_s.
constexpr const char* kReleaseSql = R"SQL(
UPDATE demper.schedule s
   SET next_check_at = now() + make_interval(secs => $delay_s), lease_token = NULL, lease_until = NULL
  FROM unnest($ids::int8[], $lease_tokens::int8[]) AS r(id, lease_token)
 WHERE s.product_id = r.id AND r.lease_token IS NOT NULL
   AND s.lease_token IS NOT DISTINCT FROM r.lease_token  -- "=", as in kApplySql
)SQL";
#define DEMPER_RELEASE_PARAMS(F) F(ids, INT8ARRAYOID) F(lease_tokens, INT8ARRAYOID) F(delay_s, FLOAT8OID)

// Stores with a change budget are locked, in id order, before the apply statement counts their
// recent changes: two workers applying changes of the same store take turns, and the second
// counts the first's (the apply's snapshot is taken after the lock is granted).
constexpr const char* kBudgetLockSql = R"SQL(
SELECT s.id FROM demper.store s
 WHERE s.id = ANY ($store_ids) AND s.change_budget IS NOT NULL
 ORDER BY s.id
   FOR NO KEY UPDATE
)SQL";
#define DEMPER_BUDGET_LOCK_COLUMNS(F) F(id, INT8OID)
DEMPER_DECLARE_FIELDS(BudgetLockColumn, DEMPER_BUDGET_LOCK_COLUMNS)
DEMPER_DECLARE_FIELDS(ReleaseParam, DEMPER_RELEASE_PARAMS)

// ── Pushes ───────────────────────────────────────────────────────────────────────────────────
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
     LIMIT $limit
       FOR UPDATE OF o SKIP LOCKED
)
UPDATE demper.outbox o
   SET lease_token = $lease_token,
       lease_until = now() + make_interval(secs => $lease_seconds),
       next_attempt_at = now() + make_interval(secs => $lease_seconds),
       pushed_price = o.price,
       attempts = o.attempts + 1
  FROM due, demper.product p, demper.store s
 WHERE o.id = due.id AND p.id = o.product_id AND s.id = o.store_id
RETURNING o.id, o.store_id, o.product_id, s.merchant_id, p.sku, coalesce(p.model, p.sku) AS model,
          coalesce(p.city_id, s.city_id) AS city_id, o.price, s.credentials,
          s.push_mode = 'api' AS pushes_through_api, s.needs_login, o.attempts,
          p.availabilities::text AS availabilities,
          -- Every city the listing is sold in, at its current price: one push carries them all.
          (SELECT string_agg(coalesce(q.city_id, s.city_id) || ':' || q.price, ','
                             ORDER BY coalesce(q.city_id, s.city_id))
             FROM demper.product q
            WHERE q.store_id = p.store_id AND q.sku = p.sku AND NOT q.cabinet_archived) AS city_prices
)SQL";
#define DEMPER_CLAIM_PUSHES_COLUMNS(F)                                                            \
    F(id, INT8OID) F(store_id, INT8OID) F(product_id, INT8OID) F(merchant_id, TEXTOID) F(sku, TEXTOID) \
    F(model, TEXTOID) \
    F(city_id, TEXTOID) F(price, INT8OID) F(credentials, BYTEAOID) F(pushes_through_api, BOOLOID) \
    F(needs_login, BOOLOID) F(attempts, INT4OID) F(availabilities, TEXTOID) F(city_prices, TEXTOID)
DEMPER_DECLARE_FIELDS(ClaimPushesColumn, DEMPER_CLAIM_PUSHES_COLUMNS)

// Apply pushes: done only when the marketplace accepted the latest price; a merchant ban pauses
// every pending push of that store; a login failure parks them until new credentials are set.
constexpr const char* kApplyPushesSql = R"SQL(
WITH r AS (
    SELECT *
      FROM unnest($ids::int8[], $lease_tokens::int8[], $store_ids::int8[], $verdicts::text[], $job_ids::text[],
                  $details::text[], $delays::float8[])
        AS r(id, lease_token, store_id, outcome, job_id, detail, delay)
), banned AS (
    UPDATE demper.store s
       SET push_paused_until = now() + make_interval(secs => $ban_pause_s),
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
               WHEN r.outcome = 'merchant_banned' THEN now() + make_interval(secs => $ban_pause_s)
               WHEN r.outcome IN ('needs_login', 'waiting') THEN 'infinity'::timestamptz
               ELSE o.next_attempt_at END,
           -- A listing whose pickup points are unknown waits for a catalogue sync (which makes
           -- it due again); an accepted push of the latest price is verified in the cabinet.
           waiting_for = CASE WHEN r.outcome = 'waiting' THEN 'pickup_points' END,
           verify_status = CASE WHEN r.outcome = 'accepted' AND o.price = o.pushed_price THEN 'verifying' END,
           verify_after = CASE WHEN r.outcome = 'accepted' AND o.price = o.pushed_price
                               THEN now() + make_interval(secs => $verify_delay_s) END,
           lease_token = NULL,
           lease_until = NULL
      FROM r
     WHERE o.id = r.id AND o.lease_token = r.lease_token
    RETURNING o.status, r.outcome
), parked AS (
    UPDATE demper.outbox o
       SET next_attempt_at = CASE WHEN o.store_id IN (SELECT id FROM login) THEN 'infinity'::timestamptz
                                  ELSE now() + make_interval(secs => $ban_pause_s) END
     WHERE o.status = 'pending' AND o.lease_token IS NULL
       AND o.store_id IN (SELECT id FROM banned UNION SELECT id FROM login)
       AND o.id NOT IN (SELECT id FROM r)
    RETURNING 1
)
SELECT (SELECT count(*) FROM upd WHERE status = 'done') AS done,
       (SELECT count(*) FROM upd WHERE outcome = 'accepted' AND status = 'pending') AS superseded,
       (SELECT count(*) FROM upd WHERE outcome NOT IN ('accepted', 'waiting') AND status = 'pending') AS retried,
       (SELECT count(*) FROM upd WHERE status = 'failed') AS failed,
       (SELECT count(*) FROM parked) AS parked
)SQL";
#define DEMPER_APPLY_PUSHES_PARAMS(F)                                                          \
    F(ids, INT8ARRAYOID) F(lease_tokens, INT8ARRAYOID) F(store_ids, INT8ARRAYOID)              \
    F(verdicts, TEXTARRAYOID) F(job_ids, TEXTARRAYOID) F(details, TEXTARRAYOID)                \
    F(delays, FLOAT8ARRAYOID) F(ban_pause_s, FLOAT8OID) F(verify_delay_s, FLOAT8OID)
#define DEMPER_APPLY_PUSHES_COLUMNS(F) \
    F(done, INT8OID) F(superseded, INT8OID) F(retried, INT8OID) F(failed, INT8OID) F(parked, INT8OID)
DEMPER_DECLARE_FIELDS(ApplyPushesParam, DEMPER_APPLY_PUSHES_PARAMS)
DEMPER_DECLARE_FIELDS(ApplyPushesColumn, DEMPER_APPLY_PUSHES_COLUMNS)

// ── The seller's cabinet ─────────────────────────────────────────────────────────────────────
// The store whose catalogue is due for an import: asked for (sync_catalogue), or last imported
// longer ago than the interval (0: only when asked); one that has been "running" for an hour
// belonged to a worker that is gone. It needs credentials that a login still holds.
constexpr const char* kClaimSyncSql = R"SQL(
WITH due AS (
    SELECT s.id
      FROM demper.store s LEFT JOIN demper.catalogue_sync_state c ON c.store_id = s.id
     WHERE s.credentials IS NOT NULL AND NOT s.needs_login
       AND (c.requested_at IS NOT NULL
            OR ($sync_interval_s > 0
                AND (c.finished_at IS NULL OR c.finished_at < now() - make_interval(secs => $sync_interval_s))))
       AND (c.status IS DISTINCT FROM 'running' OR c.started_at < now() - interval '1 hour')
     ORDER BY c.requested_at NULLS LAST, c.finished_at NULLS FIRST, s.id
     LIMIT 1
), started AS (
    INSERT INTO demper.catalogue_sync_state (store_id, status, started_at)
    SELECT id, 'running', now() FROM due
    ON CONFLICT (store_id) DO UPDATE SET status = 'running', started_at = now(), requested_at = NULL, error = NULL
    RETURNING store_id
)
SELECT s.id, s.merchant_id, s.city_id, s.credentials
  FROM started JOIN demper.store s ON s.id = started.store_id
)SQL";
#define DEMPER_CLAIM_SYNC_PARAMS(F) F(sync_interval_s, FLOAT8OID)
#define DEMPER_CLAIM_SYNC_COLUMNS(F) F(id, INT8OID) F(merchant_id, TEXTOID) F(city_id, TEXTOID) F(credentials, BYTEAOID)
DEMPER_DECLARE_FIELDS(ClaimSyncParam, DEMPER_CLAIM_SYNC_PARAMS)
DEMPER_DECLARE_FIELDS(ClaimSyncColumn, DEMPER_CLAIM_SYNC_COLUMNS)

constexpr const char* kKnownListingsSql = R"SQL(
SELECT DISTINCT ON (p.sku) p.sku, coalesce(p.cabinet_updated_at, '') AS updated_at
  FROM demper.product p
 WHERE p.store_id = $store_id AND p.cabinet_synced_at IS NOT NULL
 ORDER BY p.sku
)SQL";
#define DEMPER_STORE_PARAMS(F) F(store_id, INT8OID)
#define DEMPER_KNOWN_COLUMNS(F) F(sku, TEXTOID) F(updated_at, TEXTOID)
DEMPER_DECLARE_FIELDS(StoreParam, DEMPER_STORE_PARAMS)
DEMPER_DECLARE_FIELDS(KnownColumn, DEMPER_KNOWN_COLUMNS)

// A listing the seller entered by hand without a city is sold in the store's city: before an
// import it becomes that city's row, so the cabinet's row for the city updates it (one row per
// sku and city) instead of standing beside it.
constexpr const char* kClaimCitiesSql = R"SQL(
UPDATE demper.product p SET city_id = s.city_id
  FROM demper.store s
 WHERE s.id = $store_id AND p.store_id = s.id AND p.city_id IS NULL AND p.sku = ANY ($skus)
   AND NOT EXISTS (SELECT 1 FROM demper.product q
                    WHERE q.store_id = s.id AND q.sku = p.sku AND q.city_id = s.city_id)
)SQL";
#define DEMPER_CLAIM_CITIES_PARAMS(F) F(store_id, INT8OID) F(skus, TEXTARRAYOID)
DEMPER_DECLARE_FIELDS(ClaimCitiesParam, DEMPER_CLAIM_CITIES_PARAMS)

// Import: one row per listing and city. What the cabinet owns is written (card id, title, brand,
// pickup points, archived or not); the seller's settings never are. A new listing has no floor
// (it waits, inactive) unless its store has a floor rule (import_floor_percent). A price that
// differs from ours while no push of ours is pending or unconfirmed is the seller's own edit in the
// cabinet: it becomes the current price, with a history row, and a decision made from the old
// price is dropped (inputs_version). The worker's session fires no trigger: the due queue and the
// pushes waiting for pickup points are written here.
constexpr const char* kImportSql = R"SQL(
WITH l AS (
    SELECT *
      FROM unnest($skus::text[], $city_ids::text[], $product_codes::text[], $models::text[],
                  $brands::text[], $prices::int8[], $availabilities::text[], $updated_ats::text[],
                  $archived::bool[])
        AS l(sku, city_id, product_code, model, brand, price, availabilities, updated_at, archived)
), st AS (
    SELECT s.id, s.import_floor_percent FROM demper.store s WHERE s.id = $store_id
), old AS (
    SELECT p.id, p.price, p.bot_active,
           NOT EXISTS (SELECT 1 FROM demper.outbox o
                        WHERE o.product_id = p.id AND (o.status = 'pending' OR o.verify_status = 'verifying'))
               AS price_is_the_cabinets
      FROM demper.product p JOIN l ON p.store_id = $store_id AND p.sku = l.sku AND p.city_id = l.city_id
), up AS (
    INSERT INTO demper.product AS p (store_id, product_code, sku, model, brand, price, min_price, city_id,
                                     bot_active, next_check_at, availabilities, cabinet_synced_at,
                                     cabinet_updated_at, cabinet_archived)
    SELECT st.id, l.product_code, l.sku, nullif(l.model, ''), nullif(l.brand, ''), l.price,
           CASE WHEN st.import_floor_percent IS NOT NULL
                THEN greatest(10, ceil(l.price * st.import_floor_percent / 100))::int8 END,
           l.city_id, st.import_floor_percent IS NOT NULL AND NOT l.archived,
           -- due from the moment the seller gives it a floor (the rate limit paces a bulk start)
           now(),
           l.availabilities::jsonb, now(), nullif(l.updated_at, ''), l.archived
      FROM l, st
    ON CONFLICT (store_id, sku, (coalesce(city_id, ''))) DO UPDATE
       SET product_code = EXCLUDED.product_code,
           model = coalesce(EXCLUDED.model, p.model),
           brand = coalesce(EXCLUDED.brand, p.brand),
           availabilities = EXCLUDED.availabilities,
           cabinet_synced_at = now(),
           cabinet_updated_at = EXCLUDED.cabinet_updated_at,
           cabinet_archived = EXCLUDED.cabinet_archived,
           -- Archived in the cabinet: not repriced. Back on sale: repriced again if it has a floor.
           bot_active = CASE WHEN EXCLUDED.cabinet_archived THEN false
                             WHEN p.cabinet_archived AND p.min_price IS NOT NULL THEN true
                             ELSE p.bot_active END,
           price = CASE WHEN NOT EXCLUDED.cabinet_archived
                             AND (SELECT o.price_is_the_cabinets FROM old o WHERE o.id = p.id)
                        THEN EXCLUDED.price ELSE p.price END,
           inputs_version = p.inputs_version + 1
    RETURNING p.id, (p.xmax = 0) AS added, p.price, p.bot_active, p.next_check_at, p.cabinet_archived
), hist AS (
    INSERT INTO demper.price_history (product_id, store_id, old_price, new_price, reason)
    SELECT up.id, $store_id, old.price, up.price, 'cabinet_edit'
      FROM up JOIN old ON old.id = up.id
     WHERE NOT up.added AND old.price <> up.price
    RETURNING 1
), queued AS (
    INSERT INTO demper.schedule (product_id, next_check_at)
    SELECT id, next_check_at FROM up WHERE bot_active
    ON CONFLICT (product_id) DO NOTHING
    RETURNING 1
), unqueued AS (
    DELETE FROM demper.schedule s WHERE s.product_id IN (SELECT id FROM up WHERE NOT bot_active)
    RETURNING 1
), woken AS (
    -- Pushes that waited for these listings' pickup points may go now.
    UPDATE demper.outbox o SET next_attempt_at = now(), waiting_for = NULL
     WHERE o.status = 'pending' AND o.waiting_for = 'pickup_points' AND o.product_id IN (SELECT id FROM up)
    RETURNING 1
)
SELECT count(*) FILTER (WHERE up.added) AS added,
       count(*) FILTER (WHERE NOT up.added) AS updated,
       (SELECT count(*) FROM hist) AS price_edits,
       count(*) FILTER (WHERE NOT up.added AND up.cabinet_archived
                          AND (SELECT o.bot_active FROM old o WHERE o.id = up.id)) AS deactivated
  FROM up
)SQL";
#define DEMPER_IMPORT_PARAMS(F)                                                                     \
    F(store_id, INT8OID) F(skus, TEXTARRAYOID) F(city_ids, TEXTARRAYOID) F(product_codes, TEXTARRAYOID) \
    F(models, TEXTARRAYOID) F(brands, TEXTARRAYOID) F(prices, INT8ARRAYOID) F(availabilities, TEXTARRAYOID) \
    F(updated_ats, TEXTARRAYOID) F(archived, BOOLARRAYOID)
#define DEMPER_IMPORT_COLUMNS(F) \
    F(added, INT8OID) F(updated, INT8OID) F(price_edits, INT8OID) F(deactivated, INT8OID)
DEMPER_DECLARE_FIELDS(ImportParam, DEMPER_IMPORT_PARAMS)
DEMPER_DECLARE_FIELDS(ImportColumn, DEMPER_IMPORT_COLUMNS)

// The end of an import. Only a complete one (both lists read to their end) deactivates what the
// cabinet no longer has on sale: a page that failed must never take a listing off repricing.
constexpr const char* kFinishSyncSql = R"SQL(
WITH gone AS (
    UPDATE demper.product p SET bot_active = false, cabinet_archived = true
     WHERE $complete AND p.store_id = $store_id AND p.cabinet_synced_at IS NOT NULL
       AND NOT p.cabinet_archived AND NOT (p.sku = ANY ($live_skus))
    RETURNING p.id
), unqueued AS (
    DELETE FROM demper.schedule s WHERE s.product_id IN (SELECT id FROM gone)
    RETURNING 1
), recorded AS (
    UPDATE demper.catalogue_sync_state
       SET status = CASE WHEN $error = '' THEN 'done' ELSE 'failed' END, finished_at = now(),
           listings_seen = $seen, added = $added, updated = $updated,
           archived = $deactivated + (SELECT count(*) FROM gone), price_edits = $price_edits,
           error = nullif($error, '')
     WHERE store_id = $store_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS archived
)SQL";
#define DEMPER_FINISH_SYNC_PARAMS(F)                                                            \
    F(store_id, INT8OID) F(live_skus, TEXTARRAYOID) F(complete, BOOLOID) F(seen, INT4OID)       \
    F(added, INT4OID) F(updated, INT4OID) F(deactivated, INT4OID) F(price_edits, INT4OID) F(error, TEXTOID)
#define DEMPER_FINISH_SYNC_COLUMNS(F) F(archived, INT8OID)
DEMPER_DECLARE_FIELDS(FinishSyncParam, DEMPER_FINISH_SYNC_PARAMS)
DEMPER_DECLARE_FIELDS(FinishSyncColumn, DEMPER_FINISH_SYNC_COLUMNS)

// Accepted pushes due for a look at the cabinet (their next look is pushed a lease ahead).
constexpr const char* kClaimVerificationsSql = R"SQL(
WITH due AS (
    SELECT o.id FROM demper.outbox o
     WHERE o.verify_status = 'verifying' AND o.verify_after <= now()
     ORDER BY o.verify_after
     LIMIT $limit
       FOR UPDATE OF o SKIP LOCKED
)
UPDATE demper.outbox o SET verify_after = now() + make_interval(secs => $lease_seconds)
  FROM due, demper.product p, demper.store s
 WHERE o.id = due.id AND p.id = o.product_id AND s.id = o.store_id
RETURNING o.id, o.store_id, s.merchant_id, s.credentials, p.sku, coalesce(p.city_id, s.city_id) AS city_id,
          o.pushed_price, coalesce(o.job_id, '') AS job_id,
          extract(epoch FROM now() - coalesce(o.done_at, now()))::float8 AS age_s
)SQL";
#define DEMPER_CLAIM_VERIFY_PARAMS(F) F(limit, INT4OID) F(lease_seconds, FLOAT8OID)
#define DEMPER_CLAIM_VERIFY_COLUMNS(F)                                                           \
    F(id, INT8OID) F(store_id, INT8OID) F(merchant_id, TEXTOID) F(credentials, BYTEAOID)         \
    F(sku, TEXTOID) F(city_id, TEXTOID) F(pushed_price, INT8OID) F(job_id, TEXTOID) F(age_s, FLOAT8OID)
DEMPER_DECLARE_FIELDS(ClaimVerifyParam, DEMPER_CLAIM_VERIFY_PARAMS)
DEMPER_DECLARE_FIELDS(ClaimVerifyColumn, DEMPER_CLAIM_VERIFY_COLUMNS)

constexpr const char* kApplyVerificationsSql = R"SQL(
WITH r AS (
    SELECT * FROM unnest($ids::int8[], $results::text[], $details::text[]) AS r(id, result, detail)
), upd AS (
    UPDATE demper.outbox o
       SET verify_status = CASE WHEN r.result = 'again' THEN 'verifying' ELSE r.result END,
           verify_after = CASE WHEN r.result = 'again' THEN now() + make_interval(secs => $again_s) END,
           verified_at = CASE WHEN r.result = 'again' THEN NULL ELSE now() END,
           verify_detail = nullif(r.detail, '')
      FROM r
     WHERE o.id = r.id AND o.verify_status = 'verifying'
    RETURNING r.result
)
SELECT count(*) FILTER (WHERE result = 'verified') AS verified,
       count(*) FILTER (WHERE result = 'rejected') AS rejected,
       count(*) FILTER (WHERE result = 'off_sale') AS off_sale
  FROM upd
)SQL";
#define DEMPER_APPLY_VERIFY_PARAMS(F) \
    F(ids, INT8ARRAYOID) F(results, TEXTARRAYOID) F(details, TEXTARRAYOID) F(again_s, FLOAT8OID)
#define DEMPER_APPLY_VERIFY_COLUMNS(F) F(verified, INT8OID) F(rejected, INT8OID) F(off_sale, INT8OID)
DEMPER_DECLARE_FIELDS(ApplyVerifyParam, DEMPER_APPLY_VERIFY_PARAMS)
DEMPER_DECLARE_FIELDS(ApplyVerifyColumn, DEMPER_APPLY_VERIFY_COLUMNS)

// ── Housekeeping ─────────────────────────────────────────────────────────────────────────────
// The leases of workers that no longer exist: another generation of shared memory (the server
// restarted, after a crash or not), or an earlier start of this worker's own slot (it exited
// without handing them back). The partial index on leased rows keeps this cheap at any size.
#define DEMPER_DEAD_LEASE                                                                       \
    "((lease_token >> 47) <> $generation OR ((lease_token >> 41) & 63 = $slot "               \
    "AND ((lease_token >> 31) & 1023) <> $start))"
constexpr const char* kReclaimSql = R"SQL(
WITH products AS (
    UPDATE demper.schedule
       SET next_check_at = now(), lease_token = NULL, lease_until = NULL
     WHERE lease_token IS NOT NULL AND )SQL" DEMPER_DEAD_LEASE R"SQL(
    RETURNING 1
), pushes AS (
    UPDATE demper.outbox
       SET next_attempt_at = now(), lease_token = NULL, lease_until = NULL
     WHERE status = 'pending' AND lease_token IS NOT NULL AND )SQL" DEMPER_DEAD_LEASE R"SQL(
    RETURNING 1
)
SELECT (SELECT count(*) FROM products) AS products, (SELECT count(*) FROM pushes) AS pushes
)SQL";
#define DEMPER_RECLAIM_PARAMS(F) F(generation, INT8OID) F(slot, INT8OID) F(start, INT8OID)
#define DEMPER_RECLAIM_COLUMNS(F) F(products, INT8OID) F(pushes, INT8OID)
DEMPER_DECLARE_FIELDS(ReclaimParam, DEMPER_RECLAIM_PARAMS)
DEMPER_DECLARE_FIELDS(ReclaimColumn, DEMPER_RECLAIM_COLUMNS)

constexpr const char* kInstalledVersionSql =
    "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'demper'";
#define DEMPER_VERSION_COLUMNS(F) F(extversion, TEXTOID)
DEMPER_DECLARE_FIELDS(VersionColumn, DEMPER_VERSION_COLUMNS)

// Only when the due queue is empty while active products exist (a restore with triggers
// disabled): a full comparison of catalogue and queue takes seconds at millions of products, and
// users call demper.repair_queue() after loads that need it.
constexpr const char* kRepairQueueSql = "SELECT added, removed FROM demper.repair_queue(true)";
#define DEMPER_REPAIR_COLUMNS(F) F(added, INT8OID) F(removed, INT8OID)
DEMPER_DECLARE_FIELDS(RepairColumn, DEMPER_REPAIR_COLUMNS)

constexpr const char* kPruneSql =
    "SELECT demper.prune_batch(make_interval(secs => $retention_s), $batch) AS removed";
#define DEMPER_PRUNE_PARAMS(F) F(retention_s, FLOAT8OID) F(batch, INT4OID)
#define DEMPER_PRUNE_COLUMNS(F) F(removed, INT4OID)
DEMPER_DECLARE_FIELDS(PruneParam, DEMPER_PRUNE_PARAMS)
DEMPER_DECLARE_FIELDS(PruneColumn, DEMPER_PRUNE_COLUMNS)

// The adaptive schedule's demand: the due queue grouped by base interval (rounded to 1/8 in log
// space: a hundred-odd groups) and bounds, for the pressure solver. One scan of the narrow queue.
constexpr const char* kScheduleDemandSql = R"SQL(
SELECT exp(round(ln(greatest(coalesce(s.base_interval_s, $default_s), 1)) * 8) / 8)::float8 AS base_interval_s,
       coalesce(s.shortest_s, $shortest_s)::float8 AS shortest_s,
       coalesce(s.longest_s, $longest_s)::float8 AS longest_s,
       count(*)::float8 AS products
  FROM demper.schedule s
 GROUP BY 1, 2, 3
)SQL";
#define DEMPER_DEMAND_PARAMS(F) F(default_s, FLOAT8OID) F(shortest_s, FLOAT8OID) F(longest_s, FLOAT8OID)
#define DEMPER_DEMAND_COLUMNS(F) \
    F(base_interval_s, FLOAT8OID) F(shortest_s, FLOAT8OID) F(longest_s, FLOAT8OID) F(products, FLOAT8OID)
DEMPER_DECLARE_FIELDS(DemandParam, DEMPER_DEMAND_PARAMS)
DEMPER_DECLARE_FIELDS(DemandColumn, DEMPER_DEMAND_COLUMNS)

// After the pressure fell: the products whose next check lies beyond the interval the new
// pressure asks for come forward to core::latest_next_check_s, the same formula in SQL with its
// constants passed from core/schedule.hpp (TAP 024 compares the rows with it). Only what a check
// under the adaptive schedule put there moves: not a leased row, not one without a base interval,
// not a failing product (its back-off decides), not one beyond its longest interval (a store's
// closed hours, a user's postponement). A row someone holds is skipped, not waited for.
// product.next_check_at, what users read, follows the queue.
constexpr const char* kBringForwardSql = R"SQL(
WITH due AS (
    SELECT s.product_id AS id,
           now() + make_interval(secs => i.interval_s * ($spread_low + (1 - $spread_low)
                   * (((s.product_id & $hash_mask) * $hash_multiplier) % $hash_buckets)::float8
                   / $hash_buckets::float8)) AS bound
      FROM demper.schedule s
           JOIN demper.product p ON p.id = s.product_id
           CROSS JOIN LATERAL (
               SELECT greatest(1, CASE WHEN coalesce(s.longest_s, $longest_s) > 0
                                       THEN coalesce(s.longest_s, $longest_s) ELSE 7200 END)::float8 AS longest,
                      CASE WHEN coalesce(s.shortest_s, $shortest_s) > 0
                           THEN coalesce(s.shortest_s, $shortest_s) ELSE 1 END::float8 AS shortest_wanted
           ) b
           CROSS JOIN LATERAL (
               SELECT least(b.longest, greatest(1, b.shortest_wanted)) AS shortest
           ) lo
           CROSS JOIN LATERAL (
               SELECT least(greatest(CASE WHEN s.base_interval_s > 0 THEN s.base_interval_s ELSE b.longest END
                                     * $pressure, lo.shortest),
                            greatest(lo.shortest, b.longest * (1 - $slack))) AS interval_s
           ) i
     WHERE s.lease_token IS NULL AND s.base_interval_s IS NOT NULL AND p.check_failures = 0
       AND s.next_check_at > now() + make_interval(secs => i.interval_s)
       AND s.next_check_at <= now() + make_interval(secs => b.longest)
       FOR UPDATE OF s SKIP LOCKED
       FOR NO KEY UPDATE OF p SKIP LOCKED
), moved AS (
    UPDATE demper.schedule s
       SET next_check_at = least(s.next_check_at, due.bound)
      FROM due
     WHERE s.product_id = due.id
    RETURNING s.product_id, s.next_check_at
), shown AS (
    UPDATE demper.product p
       SET next_check_at = moved.next_check_at
      FROM moved
     WHERE p.id = moved.product_id AND p.next_check_at > moved.next_check_at
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved) AS moved
)SQL";
#define DEMPER_BRING_FORWARD_PARAMS(F)                                                              \
    F(pressure, FLOAT8OID) F(slack, FLOAT8OID) F(shortest_s, FLOAT8OID) F(longest_s, FLOAT8OID)     \
    F(spread_low, FLOAT8OID) F(hash_mask, INT8OID) F(hash_multiplier, INT8OID) F(hash_buckets, INT8OID)
#define DEMPER_BRING_FORWARD_COLUMNS(F) F(moved, INT8OID)
DEMPER_DECLARE_FIELDS(BringForwardParam, DEMPER_BRING_FORWARD_PARAMS)
DEMPER_DECLARE_FIELDS(BringForwardColumn, DEMPER_BRING_FORWARD_COLUMNS)

// The names PostgreSQL stores for the worker's enums.
const char* skip_reason_name(SkipReason r) {
    switch (r) {
        case SkipReason::store_inactive:
            return "store_inactive";
        case SkipReason::outside_hours:
            return "outside_hours";
        case SkipReason::bad_time_zone:
            return "bad_time_zone";
    }
    return "store_inactive";
}

const char* push_verdict_name(PushVerdict v) {
    switch (v) {
        case PushVerdict::accepted:
            return "accepted";
        case PushVerdict::retry:
            return "retry";
        case PushVerdict::merchant_banned:
            return "merchant_banned";
        case PushVerdict::needs_login:
            return "needs_login";
        case PushVerdict::rejected:
            return "rejected";
        case PushVerdict::not_pushable:
            return "not_pushable";
        case PushVerdict::waiting:
            return "waiting";
    }
    return "retry";
}

// The apply statement's arrays, one element per outcome.
struct ApplyColumns {
    std::vector<std::int64_t> id, lease_token, new_price, competitor_price, seen_price, seen_min, seen_max,
        seen_step, store_id, seen_version, claimed_at;
    std::vector<bool> competitor_null, seen_max_null, ok, skipped;
    std::vector<std::string> reason, error_class, error_text, explain, schedule_state, war_rival;
    std::vector<double> next_interval, base_interval, shortest, longest;

    explicit ApplyColumns(const std::vector<CheckOutcome>& outcomes) {
        for (const CheckOutcome& o : outcomes) {
            const ClaimedProduct& p = o.product;
            id.push_back(p.id);
            lease_token.push_back(p.lease_token);
            store_id.push_back(p.store_id);
            claimed_at.push_back(p.claimed_at);
            seen_price.push_back(p.price);
            seen_min.push_back(p.min_price);
            seen_max.push_back(p.max_price.value_or(0));
            seen_max_null.push_back(!p.max_price.has_value());
            seen_step.push_back(p.step);
            seen_version.push_back(p.inputs_version);
            ok.push_back(o.result == CheckResult::decided);
            skipped.push_back(o.result == CheckResult::skipped);
            new_price.push_back(o.new_price);
            competitor_price.push_back(o.competitor_price.value_or(0));
            competitor_null.push_back(!o.competitor_price.has_value());
            switch (o.result) {
                case CheckResult::decided:
                    reason.push_back(o.war_effect == WarEffect::hold          ? core::kReasonWarHold
                                     : o.war_effect == WarEffect::keep_margin ? core::kReasonWarKeepMargin
                                                                              : core::reason_name(o.reason));
                    error_class.emplace_back();
                    break;
                case CheckResult::failed:
                    reason.push_back("check_failed");
                    error_class.push_back(core::error_class_name(o.error));
                    break;
                case CheckResult::skipped:
                    reason.push_back(skip_reason_name(o.skip));
                    error_class.emplace_back();
                    break;
            }
            error_text.push_back(o.error_text);
            explain.push_back(o.explain.empty() ? std::string("{}") : o.explain);
            const ScheduleOutcome none;
            const ScheduleOutcome& sched = o.schedule ? *o.schedule : none;
            schedule_state.push_back(sched.state);
            war_rival.push_back(sched.war_rival);
            next_interval.push_back(o.schedule ? std::max(sched.interval_s, 0.001) : 0.0);
            base_interval.push_back(sched.base_interval_s);
            shortest.push_back(sched.shortest_s);
            longest.push_back(sched.longest_s);
        }
    }
};

}  // namespace

struct Catalog::Statements {
    Statement<NoFields, VersionColumn> installed_version{"installed_version", kInstalledVersionSql,
                                                         kNoFieldsFields, kVersionColumnFields};
    Statement<NoFields, RepairColumn> repair_queue{"repair_queue", kRepairQueueSql, kNoFieldsFields,
                                                   kRepairColumnFields};
    // Planned for each execution: a generic plan cannot know the LIMIT and assumes a tenth of the
    // queue, so with a large backlog (all due, just analyzed) it turned into hash joins over a
    // sequential scan of both tables: half a second per claim at 200,000 products. Planning each
    // claim costs well under 1 us per product.
    Statement<ClaimParam, ClaimColumn> claim{"claim", kClaimSql, kClaimParamFields, kClaimColumnFields, true};
    Statement<NoFields, NextDueColumn> next_due{"next_due", kNextDueSql, kNoFieldsFields, kNextDueColumnFields};
    Statement<StoresParam, StoresColumn> stores{"stores", kStoresSql, kStoresParamFields, kStoresColumnFields};
    Statement<StoresParam, BudgetLockColumn> budget_lock{"budget_lock", kBudgetLockSql, kStoresParamFields,
                                                         kBudgetLockColumnFields};
    Statement<ApplyParam, ApplyColumn> apply{"apply", kApplySql, kApplyParamFields, kApplyColumnFields};
    Statement<ReleaseParam, NoFields> release{"release", kReleaseSql, kReleaseParamFields, kNoFieldsFields};
    Statement<ClaimParam, ClaimPushesColumn> claim_pushes{"claim_pushes", kClaimPushesSql, kClaimParamFields,
                                                          kClaimPushesColumnFields, true};
    Statement<ApplyPushesParam, ApplyPushesColumn> apply_pushes{"apply_pushes", kApplyPushesSql,
                                                                kApplyPushesParamFields,
                                                                kApplyPushesColumnFields};
    Statement<PruneParam, PruneColumn> prune{"prune", kPruneSql, kPruneParamFields, kPruneColumnFields};
    Statement<DemandParam, DemandColumn> schedule_demand{"schedule_demand", kScheduleDemandSql, kDemandParamFields,
                                                         kDemandColumnFields};
    Statement<BringForwardParam, BringForwardColumn> bring_forward{"bring_forward", kBringForwardSql,
                                                                   kBringForwardParamFields,
                                                                   kBringForwardColumnFields};
    Statement<ReclaimParam, ReclaimColumn> reclaim{"reclaim", kReclaimSql, kReclaimParamFields,
                                                   kReclaimColumnFields};
    Statement<ClaimSyncParam, ClaimSyncColumn> claim_sync{"claim_sync", kClaimSyncSql, kClaimSyncParamFields,
                                                          kClaimSyncColumnFields};
    Statement<StoreParam, KnownColumn> known_listings{"known_listings", kKnownListingsSql, kStoreParamFields,
                                                      kKnownColumnFields};
    Statement<ClaimCitiesParam, NoFields> claim_cities{"claim_cities", kClaimCitiesSql, kClaimCitiesParamFields,
                                                       kNoFieldsFields};
    Statement<ImportParam, ImportColumn> import{"import", kImportSql, kImportParamFields, kImportColumnFields};
    Statement<FinishSyncParam, FinishSyncColumn> finish_sync{"finish_sync", kFinishSyncSql, kFinishSyncParamFields,
                                                             kFinishSyncColumnFields};
    Statement<ClaimVerifyParam, ClaimVerifyColumn> claim_verifications{
        "claim_verifications", kClaimVerificationsSql, kClaimVerifyParamFields, kClaimVerifyColumnFields, true};
    Statement<ApplyVerifyParam, ApplyVerifyColumn> apply_verifications{
        "apply_verifications", kApplyVerificationsSql, kApplyVerifyParamFields, kApplyVerifyColumnFields};

    std::vector<PreparedStatement*> all() {
        return {&installed_version, &repair_queue, &claim, &next_due, &stores, &budget_lock, &apply,
                &release, &claim_pushes, &apply_pushes, &prune, &reclaim, &claim_sync, &known_listings,
                &claim_cities, &import, &finish_sync, &claim_verifications, &apply_verifications,
                &schedule_demand, &bring_forward};
    }
};

Catalog::Catalog() : statements_(std::make_unique<Statements>()) {}
Catalog::~Catalog() = default;

std::string Catalog::installed_version() {
    std::string version;
    in_transaction(
        "demper: looking for the extension",
        [&] {
            Rows<VersionColumn> rows = statements_->installed_version.run(Args<NoFields>{}, 1);
            if (rows.size() == 1) version = rows.text(0, VersionColumn::extversion);
        },
        RunAs::session_user);
    return version;
}

QueueRepair Catalog::repair_queue() {
    QueueRepair r;
    in_transaction("demper: repairing the due queue", [&] {
        Rows<RepairColumn> rows = statements_->repair_queue.run(Args<NoFields>{}, 1);
        if (rows.size() != 1) throw std::runtime_error("repairing the due queue returned no row");
        r.added = rows.int8(0, RepairColumn::added);
        r.removed = rows.int8(0, RepairColumn::removed);
    });
    return r;
}

ReclaimedLeases Catalog::reclaim_dead_leases(const LeaseOwner& me) {
    ReclaimedLeases r;
    in_transaction("demper: reclaiming the leases of workers that are gone", [&] {
        Args<ReclaimParam> args;
        args.set(ReclaimParam::generation, Int64GetDatum(static_cast<std::int64_t>(me.generation & 0xFFFF)));
        args.set(ReclaimParam::slot, Int64GetDatum(static_cast<std::int64_t>(me.slot & 63)));
        args.set(ReclaimParam::start, Int64GetDatum(static_cast<std::int64_t>(me.start & 1023)));
        Rows<ReclaimColumn> rows = statements_->reclaim.run(args, 1);
        if (rows.size() == 1) {
            r.products = rows.int8(0, ReclaimColumn::products);
            r.pushes = rows.int8(0, ReclaimColumn::pushes);
        }
    });
    return r;
}

namespace {

// claimed_product reads one row of the claim.
ClaimedProduct claimed_product(const Rows<ClaimColumn>& rows, std::size_t i, std::int64_t lease_token,
                               std::int64_t claimed_at) {
    using C = ClaimColumn;
    ClaimedProduct c;
    c.lease_token = lease_token;
    c.claimed_at = claimed_at;
    c.id = rows.int8(i, C::id);
    c.store_id = rows.int8(i, C::store_id);
    c.product_code = rows.text(i, C::product_code);
    c.city_id = rows.text(i, C::city_id);
    c.price = rows.int8(i, C::price);
    c.min_price = rows.int8(i, C::min_price);
    c.max_price = rows.maybe_int8(i, C::max_price);
    c.step = rows.int8(i, C::step);
    c.inputs_version = rows.int8(i, C::inputs_version);
    // The table's CHECK constraints admit only the names these parse; the defaults are theirs.
    c.strategy = core::parse_strategy(rows.text(i, C::strategy)).value_or(core::Strategy::undercut);
    c.step_percent = rows.float8(i, C::step_percent);
    c.position = rows.int4(i, C::position);
    c.cost_price = rows.maybe_int8(i, C::cost_price);
    c.min_margin_percent = rows.maybe_float8(i, C::min_margin_percent);
    c.floor_action = core::parse_floor_action(rows.text(i, C::floor_action)).value_or(core::FloorAction::go_to_floor);
    c.no_competitor_action = core::parse_no_competitor_action(rows.text(i, C::no_competitor_action))
                                 .value_or(core::NoCompetitorAction::to_max);
    c.max_change_percent = rows.maybe_float8(i, C::max_change_percent);
    c.schedule_state = rows.text(i, C::schedule_state);
    c.own_interval_s = rows.maybe_float8(i, C::own_interval_s);
    c.priority = rows.boolean(i, C::priority);
    c.interval_min_s = rows.maybe_float8(i, C::interval_min_s);
    c.interval_max_s = rows.maybe_float8(i, C::interval_max_s);
    return c;
}

std::shared_ptr<StorePolicy> store_policy(const Rows<StoresColumn>& rows, std::size_t i) {
    using C = StoresColumn;
    auto s = std::make_shared<StorePolicy>();
    s->id = rows.int8(i, C::id);
    s->merchant_id = rows.text(i, C::merchant_id);
    s->city_id = rows.text(i, C::city_id);
    s->active = rows.boolean(i, C::active);
    s->excluded_merchants = split_list(rows.text(i, C::excluded_merchants));
    s->max_delivery_duration = rows.text(i, C::max_delivery_duration);
    s->outlier_share = rows.maybe_float8(i, C::outlier_share);
    const std::string hours = rows.text(i, C::hours);
    s->hours = hours == "open" ? StoreHours::open : hours == "closed" ? StoreHours::closed : StoreHours::bad_time_zone;
    s->interval_min_s = rows.maybe_float8(i, C::interval_min_s);
    s->interval_max_s = rows.maybe_float8(i, C::interval_max_s);
    s->war_policy = core::parse_war_policy(rows.text(i, C::war_policy)).value_or(core::WarPolicy::follow);
    return s;
}

}  // namespace

ClaimBatch Catalog::claim(int limit, std::int64_t lease_token, int lease_time_s) {
    ClaimBatch batch;
    batch.products.reserve(static_cast<std::size_t>(limit));
    in_transaction("demper: claiming due products", [&] {
        Args<ClaimParam> args;
        args.set(ClaimParam::limit, Int32GetDatum(limit));
        args.set(ClaimParam::lease_token, Int64GetDatum(lease_token));
        args.set(ClaimParam::lease_seconds, Float8GetDatum(static_cast<double>(lease_time_s)));
        Rows<ClaimColumn> rows = statements_->claim.run(args);
        const std::int64_t claimed_at = transaction_start_timestamp();  // the claim's now()
        std::vector<std::int64_t> store_ids;
        for (std::size_t i = 0; i < rows.size(); i++) {
            batch.products.push_back(claimed_product(rows, i, lease_token, claimed_at));
            const std::int64_t store_id = batch.products.back().store_id;
            if (std::find(store_ids.begin(), store_ids.end(), store_id) == store_ids.end())
                store_ids.push_back(store_id);
        }
        if (batch.products.size() < static_cast<std::size_t>(limit)) {
            Rows<NextDueColumn> next = statements_->next_due.run(Args<NoFields>{}, 1);
            batch.next_due_in_s = next.size() == 1 && !next.is_null(0, NextDueColumn::due_in)
                                      ? next.float8(0, NextDueColumn::due_in)
                                      : kNothingDue;
        }
        if (batch.products.empty()) return;

        Args<StoresParam> store_args;
        store_args.set(StoresParam::store_ids, int8_array(store_ids));
        Rows<StoresColumn> store_rows = statements_->stores.run(store_args);
        std::vector<std::shared_ptr<StorePolicy>> stores;
        for (std::size_t i = 0; i < store_rows.size(); i++) stores.push_back(store_policy(store_rows, i));
        for (ClaimedProduct& c : batch.products) {
            for (const auto& s : stores) {
                if (s->id == c.store_id) {
                    c.store = s;
                    break;
                }
            }
            // The store cannot go away under the claim's lock on its product (ON DELETE CASCADE);
            // should it all the same, the claim is rolled back and the product claimed again.
            if (!c.store)
                throw std::runtime_error("the store " + std::to_string(c.store_id) + " of product " +
                                         std::to_string(c.id) + " was not found");
            if (c.city_id.empty()) c.city_id = c.store->city_id;
        }
    });
    return batch;
}

ApplyResult Catalog::apply(const std::vector<CheckOutcome>& outcomes, const ScheduleSettings& schedule) {
    ApplyResult result;
    if (outcomes.empty()) return result;
    const ApplyColumns cols(outcomes);
    std::vector<std::int64_t> store_ids;
    for (std::int64_t id : cols.store_id)
        if (std::find(store_ids.begin(), store_ids.end(), id) == store_ids.end()) store_ids.push_back(id);
    in_transaction("demper: applying decisions", [&] {
        Args<StoresParam> lock_args;
        lock_args.set(StoresParam::store_ids, int8_array(store_ids));
        statements_->budget_lock.run(lock_args);
        using P = ApplyParam;
        Args<P> args;
        args.set(P::ids, int8_array(cols.id));
        args.set(P::lease_tokens, int8_array(cols.lease_token));
        args.set(P::ok, bool_array(cols.ok));
        args.set(P::skipped, bool_array(cols.skipped));
        args.set(P::new_prices, int8_array(cols.new_price));
        args.set(P::competitor_prices, int8_array(cols.competitor_price, &cols.competitor_null));
        args.set(P::reasons, text_array(cols.reason));
        args.set(P::error_classes, text_array(cols.error_class));
        args.set(P::error_texts, text_array(cols.error_text));
        args.set(P::seen_prices, int8_array(cols.seen_price));
        args.set(P::seen_mins, int8_array(cols.seen_min));
        args.set(P::seen_maxes, int8_array(cols.seen_max, &cols.seen_max_null));
        args.set(P::seen_steps, int8_array(cols.seen_step));
        args.set(P::store_ids, int8_array(cols.store_id));
        args.set(P::explains, json_array(cols.explain));
        args.set(P::seen_versions, int8_array(cols.seen_version));
        args.set(P::claimed_ats, timestamptz_array(cols.claimed_at));
        args.set(P::schedule_states, text_array(cols.schedule_state));
        args.set(P::next_intervals, float8_array(cols.next_interval));
        args.set(P::base_intervals, float8_array(cols.base_interval));
        args.set(P::shortests, float8_array(cols.shortest));
        args.set(P::longests, float8_array(cols.longest));
        args.set(P::war_rivals, text_array(cols.war_rival));
        args.set(P::dry_run, BoolGetDatum(schedule.dry_run));
        args.set(P::check_interval_s, Float8GetDatum(static_cast<double>(schedule.check_interval_s)));
        args.set(P::priority_interval_s, Float8GetDatum(static_cast<double>(schedule.priority_interval_s)));
        Rows<ApplyColumn> rows = statements_->apply.run(args);
        for (std::size_t i = 0; i < rows.size(); i++) {
            using C = ApplyColumn;
            if (rows.is_null(i, C::store_id)) {  // the busy products' row
                result.busy_ids = rows.int8_array(i, C::busy_ids);
                continue;
            }
            StoreApplyCounts c;
            c.store_id = rows.int8(i, C::store_id);
            c.price_up = rows.int8(i, C::price_up);
            c.price_down = rows.int8(i, C::price_down);
            c.deferred = rows.int8(i, C::deferred);
            c.proposed = rows.int8(i, C::proposed);
            result.applied += rows.int8(i, C::applied);
            result.discarded += rows.int8(i, C::discarded);
            result.price_up += c.price_up;
            result.price_down += c.price_down;
            result.deferred += c.deferred;
            result.proposed += c.proposed;
            result.by_store.push_back(c);
        }
    });
    return result;
}

void Catalog::release(const std::vector<ClaimedProduct>& products, double delay_s) {
    if (products.empty()) return;
    std::vector<std::int64_t> ids, tokens;
    for (const ClaimedProduct& p : products) {
        ids.push_back(p.id);
        tokens.push_back(p.lease_token);
    }
    in_transaction("demper: releasing leases", [&] {
        Args<ReleaseParam> args;
        args.set(ReleaseParam::ids, int8_array(ids));
        args.set(ReleaseParam::lease_tokens, int8_array(tokens));
        args.set(ReleaseParam::delay_s, Float8GetDatum(delay_s));
        statements_->release.run(args);
    });
}

std::vector<PushJob> Catalog::claim_pushes(int limit, std::int64_t lease_token, int lease_time_s) {
    std::vector<PushJob> jobs;
    in_transaction("demper: claiming pushes", [&] {
        Args<ClaimParam> args;
        args.set(ClaimParam::limit, Int32GetDatum(limit));
        args.set(ClaimParam::lease_token, Int64GetDatum(lease_token));
        args.set(ClaimParam::lease_seconds, Float8GetDatum(static_cast<double>(lease_time_s)));
        Rows<ClaimPushesColumn> rows = statements_->claim_pushes.run(args);
        for (std::size_t i = 0; i < rows.size(); i++) {
            using C = ClaimPushesColumn;
            PushJob j;
            j.lease_token = lease_token;
            j.outbox_id = rows.int8(i, C::id);
            j.store_id = rows.int8(i, C::store_id);
            j.product_id = rows.int8(i, C::product_id);
            j.merchant_id = rows.text(i, C::merchant_id);
            j.sku = rows.text(i, C::sku);
            j.model = rows.text(i, C::model);
            j.city_id = rows.text(i, C::city_id);
            j.price = rows.int8(i, C::price);
            j.sealed_credentials = rows.text(i, C::credentials);
            j.pushes_through_api = rows.boolean(i, C::pushes_through_api);
            j.needs_login = rows.boolean(i, C::needs_login);
            j.attempts = rows.int4(i, C::attempts);
            if (!rows.is_null(i, C::availabilities)) j.availabilities = rows.text(i, C::availabilities);
            // "750000000:1999,710000000:2050" (city ids are digits, prices whole numbers)
            for (const std::string& entry : split_list(rows.text(i, C::city_prices))) {
                const std::size_t colon = entry.find(':');
                if (colon == std::string::npos) continue;
                j.city_prices.emplace_back(entry.substr(0, colon), std::stoll(entry.substr(colon + 1)));
            }
            jobs.push_back(std::move(j));
        }
    });
    return jobs;
}

PushApplyResult Catalog::apply_pushes(const std::vector<PushResultRow>& results, int ban_pause_s,
                                      int verify_delay_s) {
    PushApplyResult result;
    if (results.empty()) return result;
    std::vector<std::int64_t> ids, tokens, stores;
    std::vector<std::string> verdicts, job_ids, details;
    std::vector<double> delays;
    for (const PushResultRow& r : results) {
        ids.push_back(r.outbox_id);
        tokens.push_back(r.lease_token);
        stores.push_back(r.store_id);
        verdicts.push_back(push_verdict_name(r.verdict));
        job_ids.push_back(r.job_id);
        details.push_back(r.detail);
        delays.push_back(r.delay_s);
    }
    in_transaction("demper: recording pushes", [&] {
        using P = ApplyPushesParam;
        Args<P> args;
        args.set(P::ids, int8_array(ids));
        args.set(P::lease_tokens, int8_array(tokens));
        args.set(P::store_ids, int8_array(stores));
        args.set(P::verdicts, text_array(verdicts));
        args.set(P::job_ids, text_array(job_ids));
        args.set(P::details, text_array(details));
        args.set(P::delays, float8_array(delays));
        args.set(P::ban_pause_s, Float8GetDatum(static_cast<double>(ban_pause_s)));
        args.set(P::verify_delay_s, Float8GetDatum(static_cast<double>(verify_delay_s)));
        Rows<ApplyPushesColumn> rows = statements_->apply_pushes.run(args, 1);
        if (rows.size() != 1) throw std::runtime_error("recording pushes returned no row");
        using C = ApplyPushesColumn;
        result.done = rows.int8(0, C::done);
        result.superseded = rows.int8(0, C::superseded);
        result.retried = rows.int8(0, C::retried);
        result.failed = rows.int8(0, C::failed);
    });
    return result;
}

std::optional<StoreToSync> Catalog::claim_sync(int sync_interval_s) {
    std::optional<StoreToSync> store;
    in_transaction("demper: starting a catalogue import", [&] {
        Args<ClaimSyncParam> args;
        args.set(ClaimSyncParam::sync_interval_s, Float8GetDatum(static_cast<double>(sync_interval_s)));
        Rows<ClaimSyncColumn> rows = statements_->claim_sync.run(args, 1);
        if (rows.size() != 1) return;
        using C = ClaimSyncColumn;
        StoreToSync s;
        s.id = rows.int8(0, C::id);
        s.merchant_id = rows.text(0, C::merchant_id);
        s.city_id = rows.text(0, C::city_id);
        s.sealed_credentials = rows.text(0, C::credentials);
        store = std::move(s);
    });
    return store;
}

std::vector<std::pair<std::string, std::string>> Catalog::known_listings(std::int64_t store_id) {
    std::vector<std::pair<std::string, std::string>> known;
    in_transaction("demper: reading the imported listings", [&] {
        Args<StoreParam> args;
        args.set(StoreParam::store_id, Int64GetDatum(store_id));
        Rows<KnownColumn> rows = statements_->known_listings.run(args);
        for (std::size_t i = 0; i < rows.size(); i++)
            known.emplace_back(rows.text(i, KnownColumn::sku), rows.text(i, KnownColumn::updated_at));
    });
    return known;
}

ImportCounts Catalog::import_listings(std::int64_t store_id, const std::vector<ImportedListing>& rows_in) {
    ImportCounts counts;
    if (rows_in.empty()) return counts;
    std::vector<std::string> skus, city_ids, codes, models, brands, availabilities, updated_ats;
    std::vector<std::int64_t> prices;
    std::vector<bool> archived;
    for (const ImportedListing& l : rows_in) {
        skus.push_back(l.sku);
        city_ids.push_back(l.city_id);
        codes.push_back(l.product_code);
        models.push_back(l.model);
        brands.push_back(l.brand);
        prices.push_back(l.price);
        availabilities.push_back(l.availabilities);
        updated_ats.push_back(l.updated_at);
        archived.push_back(l.archived);
    }
    in_transaction("demper: importing listings", [&] {
        Args<ClaimCitiesParam> cities;
        cities.set(ClaimCitiesParam::store_id, Int64GetDatum(store_id));
        cities.set(ClaimCitiesParam::skus, text_array(skus));
        statements_->claim_cities.run(cities);
        using P = ImportParam;
        Args<P> args;
        args.set(P::store_id, Int64GetDatum(store_id));
        args.set(P::skus, text_array(skus));
        args.set(P::city_ids, text_array(city_ids));
        args.set(P::product_codes, text_array(codes));
        args.set(P::models, text_array(models));
        args.set(P::brands, text_array(brands));
        args.set(P::prices, int8_array(prices));
        args.set(P::availabilities, text_array(availabilities));
        args.set(P::updated_ats, text_array(updated_ats));
        args.set(P::archived, bool_array(archived));
        Rows<ImportColumn> rows = statements_->import.run(args, 1);
        if (rows.size() != 1) return;
        counts.added = rows.int8(0, ImportColumn::added);
        counts.updated = rows.int8(0, ImportColumn::updated);
        counts.price_edits = rows.int8(0, ImportColumn::price_edits);
        counts.deactivated = rows.int8(0, ImportColumn::deactivated);
    });
    return counts;
}

std::int64_t Catalog::finish_sync(std::int64_t store_id, const std::vector<std::string>& live_skus,
                                  const SyncResult& result) {
    std::int64_t archived = 0;
    in_transaction("demper: finishing a catalogue import", [&] {
        using P = FinishSyncParam;
        Args<P> args;
        args.set(P::store_id, Int64GetDatum(store_id));
        args.set(P::live_skus, text_array(live_skus));
        args.set(P::complete, BoolGetDatum(result.complete));
        args.set(P::seen, Int32GetDatum(static_cast<int32>(result.seen)));
        args.set(P::added, Int32GetDatum(static_cast<int32>(result.counts.added)));
        args.set(P::updated, Int32GetDatum(static_cast<int32>(result.counts.updated)));
        args.set(P::deactivated, Int32GetDatum(static_cast<int32>(result.counts.deactivated)));
        args.set(P::price_edits, Int32GetDatum(static_cast<int32>(result.counts.price_edits)));
        args.set(P::error, text_datum(result.error));
        Rows<FinishSyncColumn> rows = statements_->finish_sync.run(args, 1);
        if (rows.size() == 1) archived = rows.int8(0, FinishSyncColumn::archived);
    });
    return archived;
}

std::vector<PushToVerify> Catalog::claim_verifications(int limit, int lease_time_s) {
    std::vector<PushToVerify> out;
    in_transaction("demper: claiming push verifications", [&] {
        Args<ClaimVerifyParam> args;
        args.set(ClaimVerifyParam::limit, Int32GetDatum(limit));
        args.set(ClaimVerifyParam::lease_seconds, Float8GetDatum(static_cast<double>(lease_time_s)));
        Rows<ClaimVerifyColumn> rows = statements_->claim_verifications.run(args);
        for (std::size_t i = 0; i < rows.size(); i++) {
            using C = ClaimVerifyColumn;
            PushToVerify v;
            v.outbox_id = rows.int8(i, C::id);
            v.store_id = rows.int8(i, C::store_id);
            v.merchant_id = rows.text(i, C::merchant_id);
            v.sealed_credentials = rows.text(i, C::credentials);
            v.sku = rows.text(i, C::sku);
            v.city_id = rows.text(i, C::city_id);
            v.pushed_price = rows.int8(i, C::pushed_price);
            v.job_id = rows.text(i, C::job_id);
            v.age_s = rows.float8(i, C::age_s);
            out.push_back(std::move(v));
        }
    });
    return out;
}

VerifyCounts Catalog::apply_verifications(const std::vector<VerifyRow>& rows_in, int again_s) {
    VerifyCounts counts;
    if (rows_in.empty()) return counts;
    std::vector<std::int64_t> ids;
    std::vector<std::string> results, details;
    for (const VerifyRow& r : rows_in) {
        ids.push_back(r.outbox_id);
        details.push_back(r.detail);
        switch (r.result) {
            case VerifyResult::verified:
                results.emplace_back("verified");
                break;
            case VerifyResult::rejected:
                results.emplace_back("rejected");
                break;
            case VerifyResult::off_sale:
                results.emplace_back("off_sale");
                break;
            case VerifyResult::again:
                results.emplace_back("again");
                break;
        }
    }
    in_transaction("demper: recording push verifications", [&] {
        Args<ApplyVerifyParam> args;
        args.set(ApplyVerifyParam::ids, int8_array(ids));
        args.set(ApplyVerifyParam::results, text_array(results));
        args.set(ApplyVerifyParam::details, text_array(details));
        args.set(ApplyVerifyParam::again_s, Float8GetDatum(static_cast<double>(again_s)));
        Rows<ApplyVerifyColumn> rows = statements_->apply_verifications.run(args, 1);
        if (rows.size() != 1) return;
        counts.verified = rows.int8(0, ApplyVerifyColumn::verified);
        counts.rejected = rows.int8(0, ApplyVerifyColumn::rejected);
        counts.off_sale = rows.int8(0, ApplyVerifyColumn::off_sale);
    });
    return counts;
}

std::int64_t Catalog::prune(int retention_s, int batch) {
    std::int64_t removed = 0;
    in_transaction("demper: pruning old history", [&] {
        Args<PruneParam> args;
        args.set(PruneParam::retention_s, Float8GetDatum(static_cast<double>(retention_s)));
        args.set(PruneParam::batch, Int32GetDatum(batch));
        Rows<PruneColumn> rows = statements_->prune.run(args, 1);
        if (rows.size() == 1) removed = rows.int4(0, PruneColumn::removed);
    });
    return removed;
}

std::vector<core::DemandGroup> Catalog::schedule_demand(double default_s, double shortest_s, double longest_s) {
    std::vector<core::DemandGroup> groups;
    in_transaction("demper: measuring the schedule's demand", [&] {
        Args<DemandParam> args;
        args.set(DemandParam::default_s, Float8GetDatum(default_s));
        args.set(DemandParam::shortest_s, Float8GetDatum(shortest_s));
        args.set(DemandParam::longest_s, Float8GetDatum(longest_s));
        Rows<DemandColumn> rows = statements_->schedule_demand.run(args);
        groups.reserve(rows.size());
        for (std::size_t i = 0; i < rows.size(); i++) {
            core::DemandGroup g;
            g.base_interval_s = rows.float8(i, DemandColumn::base_interval_s);
            g.shortest_s = rows.float8(i, DemandColumn::shortest_s);
            g.longest_s = rows.float8(i, DemandColumn::longest_s);
            g.products = rows.float8(i, DemandColumn::products);
            groups.push_back(g);
        }
    });
    return groups;
}

std::int64_t Catalog::bring_forward(double pressure, double shortest_s, double longest_s,
                                    const core::ScheduleTuning& tuning) {
    std::int64_t moved = 0;
    const double slack =
        std::isfinite(tuning.deadline_slack_share) ? std::clamp(tuning.deadline_slack_share, 0.0, 0.5) : 0.0;
    in_transaction("demper: bringing products forward", [&] {
        Args<BringForwardParam> args;
        args.set(BringForwardParam::pressure, Float8GetDatum(pressure));
        args.set(BringForwardParam::slack, Float8GetDatum(slack));
        args.set(BringForwardParam::shortest_s, Float8GetDatum(shortest_s));
        args.set(BringForwardParam::longest_s, Float8GetDatum(longest_s));
        args.set(BringForwardParam::spread_low, Float8GetDatum(core::kBringForwardSpreadLow));
        args.set(BringForwardParam::hash_mask, Int64GetDatum(static_cast<std::int64_t>(core::kProductHashMask)));
        args.set(BringForwardParam::hash_multiplier,
                 Int64GetDatum(static_cast<std::int64_t>(core::kProductHashMultiplier)));
        args.set(BringForwardParam::hash_buckets, Int64GetDatum(static_cast<std::int64_t>(core::kProductHashBuckets)));
        Rows<BringForwardColumn> rows = statements_->bring_forward.run(args, 1);
        if (rows.size() == 1) moved = rows.int8(0, BringForwardColumn::moved);
    });
    return moved;
}

void Catalog::forget_plans() {
    for (PreparedStatement* s : statements_->all()) s->forget();
}

}  // namespace demper::pg
