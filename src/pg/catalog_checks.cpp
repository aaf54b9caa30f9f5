// catalog_checks.cpp: the check pipeline's SQL (check_pipeline.cpp): claim due products with their
// stores' policies, apply a batch of outcomes, release leases. Claim and apply are the only
// statements on the hot path.
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pg/catalog_statements.hpp"
#include "pg/settings.hpp"

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
// Its parameters (ClaimParam) are the push claim's too: catalog_statements.hpp.
#define DEMPER_CLAIM_COLUMNS(F)                                                                  \
    F(id, INT8OID) F(product_code, TEXTOID) F(price, INT8OID) F(min_price, INT8OID)              \
    F(max_price, INT8OID) F(step, INT8OID) F(city_id, TEXTOID) F(store_id, INT8OID)              \
    F(strategy, TEXTOID) F(step_percent, FLOAT8OID) F(position, INT4OID) F(cost_price, INT8OID)  \
    F(min_margin_percent, FLOAT8OID) F(floor_action, TEXTOID) F(no_competitor_action, TEXTOID)   \
    F(max_change_percent, FLOAT8OID) F(inputs_version, INT8OID) F(schedule_state, TEXTOID)          \
    F(own_interval_s, FLOAT8OID) F(priority, BOOLOID) F(interval_min_s, FLOAT8OID)               \
    F(interval_max_s, FLOAT8OID)
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

// The name PostgreSQL stores for why a check was skipped.
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

struct CheckStatements {
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
};

std::shared_ptr<CheckStatements> make_check_statements(std::vector<PreparedStatement*>* all) {
    auto s = std::make_shared<CheckStatements>();
    all->insert(all->end(), {&s->claim, &s->next_due, &s->stores, &s->budget_lock, &s->apply,
                             &s->release});
    return s;
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
        Rows<ClaimColumn> rows = statements_->checks->claim.run(args);
        const std::int64_t claimed_at = transaction_start_timestamp();  // the claim's now()
        std::vector<std::int64_t> store_ids;
        for (std::size_t i = 0; i < rows.size(); i++) {
            batch.products.push_back(claimed_product(rows, i, lease_token, claimed_at));
            const std::int64_t store_id = batch.products.back().store_id;
            if (std::find(store_ids.begin(), store_ids.end(), store_id) == store_ids.end())
                store_ids.push_back(store_id);
        }
        if (batch.products.size() < static_cast<std::size_t>(limit)) {
            Rows<NextDueColumn> next = statements_->checks->next_due.run(Args<NoFields>{}, 1);
            batch.next_due_in_s = next.size() == 1 && !next.is_null(0, NextDueColumn::due_in)
                                      ? next.float8(0, NextDueColumn::due_in)
                                      : kNothingDue;
        }
        if (batch.products.empty()) return;

        Args<StoresParam> store_args;
        store_args.set(StoresParam::store_ids, int8_array(store_ids));
        Rows<StoresColumn> store_rows = statements_->checks->stores.run(store_args);
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
        statements_->checks->budget_lock.run(lock_args);
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
        Rows<ApplyColumn> rows = statements_->checks->apply.run(args);
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
        statements_->checks->release.run(args);
    });
}

}  // namespace demper::pg
