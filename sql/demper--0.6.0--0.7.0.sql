-- demper 0.7.0: security hardening, the seller's cabinet both ways, reliability, adaptive checks
-- and operators' tooling. Each section below says what it changes and why; the same objects are
-- defined in demper--0.7.0.sql for fresh installs (test/t/016_schema_equivalence.pl compares them).
\echo Use "ALTER EXTENSION demper UPDATE TO '0.7.0'" to load this file. \quit

-- --------------------------------------------------------------------------------------------
-- Security (issue 14): the worker runs as demper_worker, tenants stay apart, secrets stay out of
-- the log, a UTF8 database only.
-- --------------------------------------------------------------------------------------------

-- The worker stores the marketplace's UTF-8 as it comes: a database in another encoding would
-- hold garbage, and explain() would fail on it.
DO $$
BEGIN
    IF pg_catalog.getdatabaseencoding() OPERATOR(pg_catalog.<>) 'UTF8' THEN
        RAISE EXCEPTION 'demper needs a database with UTF8 encoding'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = pg_catalog.format('Database "%s" has encoding %s; the marketplace''s names arrive as UTF-8.',
                                             pg_catalog.current_database(), pg_catalog.getdatabaseencoding()),
                  HINT = 'Dump the catalogue, create a UTF8 database (from template0), restore it there and update.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demper_worker') THEN
        CREATE ROLE demper_worker NOLOGIN BYPASSRLS;
    END IF;
END
$$;

-- A merchant id is unique per owner role: a global key told one seller, through its violation,
-- which merchant ids other sellers registered.
ALTER TABLE demper.store DROP CONSTRAINT store_merchant_id_key;
CREATE UNIQUE INDEX store_merchant_id_key ON demper.store ((coalesce(owner_role, '')), merchant_id);

-- A dropped owner role hides its stores instead of breaking every query that reads the stores.
CREATE FUNCTION demper.is_member_of(member name, role_name name) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT pg_has_role(member, r.oid, 'MEMBER') FROM pg_roles r WHERE r.rolname = role_name),
                    false)
$$;
ALTER POLICY store_owner ON demper.store USING (demper.is_member_of(current_user, owner_role));

CREATE OR REPLACE FUNCTION demper.caller_may_manage(store_id bigint) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT (SELECT relrowsecurity FROM pg_class WHERE oid = 'demper.store'::regclass)
        OR coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = demper.caller_role()), false)
        OR EXISTS (SELECT 1 FROM demper.store s
                    WHERE s.id = caller_may_manage.store_id
                      AND demper.is_member_of(demper.caller_role(), s.owner_role))
$$;

-- The due queue, whether a product is in check, and the per-store counters: only of the stores
-- the caller may manage.
CREATE OR REPLACE FUNCTION demper.due_queue() RETURNS TABLE (product_id bigint, next_check_at timestamptz,
                                                  lease_until timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.product_id, s.next_check_at, s.lease_until
      FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
     WHERE p.store_id IN (SELECT st.id FROM demper.store st WHERE demper.caller_may_manage(st.id))
$$;
COMMENT ON FUNCTION demper.due_queue() IS
    'The due queue: next check and lease of the active products of the stores the caller may manage';

CREATE OR REPLACE FUNCTION demper.in_check(product_id bigint) RETURNS boolean
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
                    WHERE s.product_id = in_check.product_id AND s.lease_until > now()
                      AND demper.caller_may_manage(p.store_id))
$$;

CREATE FUNCTION demper.store_counters_of_all_stores(
    OUT store_id bigint, OUT checks_ok bigint, OUT checks_failed bigint, OUT price_changes bigint,
    OUT price_up bigint, OUT price_down bigint, OUT floor_hits bigint, OUT budget_deferred bigint,
    OUT proposals bigint, OUT pushes_ok bigint, OUT pushes_failed bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'demper_store_counters'
LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION demper.store_counters_of_all_stores() FROM PUBLIC;

CREATE OR REPLACE FUNCTION demper.store_counters(
    OUT store_id bigint, OUT checks_ok bigint, OUT checks_failed bigint, OUT price_changes bigint,
    OUT price_up bigint, OUT price_down bigint, OUT floor_hits bigint, OUT budget_deferred bigint,
    OUT proposals bigint, OUT pushes_ok bigint, OUT pushes_failed bigint)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.* FROM demper.store_counters_of_all_stores() c
     WHERE c.store_id IN (SELECT s.id FROM demper.store s WHERE demper.caller_may_manage(s.id))
$$;

-- An error inside set_credentials no longer logs the statement that called it, cookies and all.
ALTER FUNCTION demper.set_credentials(bigint, text, text) SET log_min_error_statement = panic;

-- The opening of working hours adds exactly pg_catalog's timestamp + interval.
CREATE OR REPLACE FUNCTION demper.next_opening(s demper.store, at timestamptz DEFAULT now()) RETURNS timestamptz
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN s.work_start IS NULL THEN at
        ELSE (SELECT CASE WHEN today > (at AT TIME ZONE s.timezone) THEN today
                          ELSE today + interval '1 day' END AT TIME ZONE s.timezone
                FROM (SELECT date_trunc('day', at AT TIME ZONE s.timezone) + s.work_start::interval AS today) t)
    END
$$;

-- prune_batch runs as the owner (demper_admin has no DELETE right) and prunes only the stores the
-- caller may manage.
CREATE OR REPLACE FUNCTION demper.prune_batch(retention interval, batch integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed integer := 0;
    n integer;
    stores bigint[];
BEGIN
    IF retention IS NULL OR retention <= interval '0' THEN
        RAISE EXCEPTION 'retention must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'batch must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    stores := ARRAY(SELECT s.id FROM demper.store s WHERE demper.caller_may_manage(s.id));
    -- Oldest first within each store, through price_history_store_idx (store_id, changed_at).
    DELETE FROM demper.price_history WHERE id IN (
        SELECT h.id
          FROM demper.store s
         CROSS JOIN LATERAL (SELECT id, changed_at FROM demper.price_history
                              WHERE store_id = s.id AND changed_at < now() - retention
                              ORDER BY changed_at LIMIT batch) h
         WHERE s.id = ANY (stores)
         ORDER BY h.changed_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;
    DELETE FROM demper.outbox WHERE id IN (
        SELECT id FROM demper.outbox WHERE status <> 'pending' AND done_at < now() - retention
           AND store_id = ANY (stores)
         ORDER BY done_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;
    DELETE FROM demper.proposal WHERE id IN (
        SELECT id FROM demper.proposal WHERE status <> 'pending' AND decided_at < now() - retention
           AND store_id = ANY (stores)
         ORDER BY decided_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN removed + n;
END
$$;

REVOKE ALL ON FUNCTION demper.is_member_of(name, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demper.is_member_of(name, name) TO demper_reader;

-- Worker: exactly what its statements need (see demper--0.7.0.sql).
GRANT USAGE ON SCHEMA demper TO demper_worker;
GRANT SELECT ON demper.store, demper.product, demper.schedule, demper.price_history, demper.proposal,
                demper.outbox TO demper_worker;
GRANT UPDATE (price, last_check_time, next_check_at, check_failures, last_error_class, last_error,
              last_reason, last_competitor_price, last_decided_price, last_explain)
    ON demper.product TO demper_worker;
GRANT UPDATE (next_check_at, lease_token, lease_until) ON demper.schedule TO demper_worker;
GRANT UPDATE (push_paused_until, last_push_error, needs_login) ON demper.store TO demper_worker;
GRANT INSERT ON demper.price_history, demper.proposal, demper.outbox TO demper_worker;
GRANT UPDATE (old_price, new_price, competitor_price, reason, created_at, status, decided_at, decided_by)
    ON demper.proposal TO demper_worker;
GRANT UPDATE (price, created_at, next_attempt_at, lease_token, lease_until, pushed_price, attempts,
              status, done_at, job_id, last_error)
    ON demper.outbox TO demper_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA demper TO demper_worker;
GRANT EXECUTE ON FUNCTION demper.in_working_hours(demper.store, timestamptz),
                          demper.in_working_hours(time, time, text, timestamptz),
                          demper.next_opening(demper.store, timestamptz), demper.repair_queue(boolean),
                          demper.prune_batch(interval, integer), demper.is_product_code(text),
                          demper.is_city_id(text), demper.check_interval(), demper.caller_role(),
                          demper.caller_may_manage(bigint), demper.is_member_of(name, name)
    TO demper_worker;
