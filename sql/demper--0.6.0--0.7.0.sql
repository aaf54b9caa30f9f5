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

-- --------------------------------------------------------------------------------------------
-- Reliability (issue 16).
-- --------------------------------------------------------------------------------------------

-- A worker that starts hands back the leases of workers that no longer exist
-- (src/pg/catalog_housekeeping.cpp, kReclaimSql); the leased rows are found through this small index.
CREATE INDEX schedule_leased_idx ON demper.schedule (lease_token) WHERE lease_token IS NOT NULL;

-- Bounds no real listing reaches, so that nothing computed from them overflows (a change_budget
-- of 2147483647 made every apply fail with "integer out of range"). An existing row beyond them
-- stops this update with the constraint's name: correct it, then update again.
ALTER TABLE demper.store
    ADD CONSTRAINT store_change_budget_sane CHECK (change_budget IS NULL OR change_budget <= 1000000),
    ADD CONSTRAINT store_change_budget_window_sane CHECK (change_budget_window <= interval '30 days');
ALTER TABLE demper.product
    ADD CONSTRAINT product_prices_sane CHECK (price <= 10000000000 AND min_price <= 10000000000
        AND (max_price IS NULL OR max_price <= 10000000000) AND step <= 10000000000
        AND (cost_price IS NULL OR cost_price <= 10000000000));

-- store_hours says whether a store is within its working hours now: 'open', 'closed', or
-- 'bad_time_zone' when its time zone no longer resolves (a tzdata upgrade can remove a name the
-- store was created with). The worker reads it once per store per claim and per apply: one store's
-- time zone never stops the others.
CREATE FUNCTION demper.store_hours(s demper.store, at timestamptz DEFAULT now()) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF s.work_start IS NULL THEN
        RETURN 'open';
    END IF;
    RETURN CASE WHEN demper.in_working_hours(s.work_start, s.work_end, s.timezone, at) THEN 'open' ELSE 'closed' END;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN 'bad_time_zone';
END
$$;
REVOKE ALL ON FUNCTION demper.store_hours(demper.store, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demper.store_hours(demper.store, timestamptz) TO demper_reader, demper_worker;

-- approve() never sets a price below the product's floor as it is now.
CREATE OR REPLACE FUNCTION demper.approve(proposal_id bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pr demper.proposal;
    current_price bigint;
    current_floor bigint;
BEGIN
    IF proposal_id IS NULL THEN
        RAISE EXCEPTION 'proposal id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO pr FROM demper.proposal WHERE id = proposal_id FOR UPDATE;
    IF NOT FOUND OR NOT demper.caller_may_manage(pr.store_id) THEN
        RAISE EXCEPTION 'proposal % does not exist', proposal_id USING ERRCODE = 'no_data_found';
    END IF;
    IF pr.status <> 'pending' THEN
        RAISE EXCEPTION 'proposal % is %, not pending', proposal_id, pr.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT price, min_price INTO current_price, current_floor FROM demper.product WHERE id = pr.product_id FOR UPDATE;
    IF current_price IS DISTINCT FROM pr.old_price THEN
        UPDATE demper.proposal SET status = 'stale', decided_at = now(), decided_by = demper.caller_role()
         WHERE id = proposal_id;
        RAISE WARNING 'proposal % is stale: the price is now %, not %', proposal_id, current_price, pr.old_price
            USING HINT = 'The next check makes a new proposal.';
        RETURN current_price;
    END IF;
    -- The floor may have been raised since the proposal was made: a price below it is never set.
    IF pr.new_price < greatest(current_floor, 10) THEN
        UPDATE demper.proposal SET status = 'stale', decided_at = now(), decided_by = demper.caller_role()
         WHERE id = proposal_id;
        RAISE WARNING 'proposal % is stale: its price % is below the floor %', proposal_id, pr.new_price, current_floor
            USING HINT = 'The next check makes a new proposal from the current floor.';
        RETURN current_price;
    END IF;
    UPDATE demper.product SET price = pr.new_price WHERE id = pr.product_id;
    INSERT INTO demper.price_history (product_id, store_id, old_price, new_price, competitor_price, reason)
    VALUES (pr.product_id, pr.store_id, pr.old_price, pr.new_price, pr.competitor_price, pr.reason || ' (approved)');
    UPDATE demper.proposal SET status = 'approved', decided_at = now(), decided_by = demper.caller_role()
     WHERE id = proposal_id;
    RETURN pr.new_price;
END
$$;

-- The validation triggers give the new bounds clear messages (the CHECK constraints' own would
-- print the whole row): validate_store here, validate_product (with the floor rule of imported
-- listings) and its trigger in the section of the seller's cabinet below.

CREATE OR REPLACE FUNCTION demper.validate_store() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF btrim(NEW.name, E' \t\r\n') = '' THEN
        RAISE EXCEPTION 'store name must not be blank' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.merchant_id !~ '^[A-Za-z0-9_-]{1,64}$' THEN
        RAISE EXCEPTION 'invalid merchant id "%"', NEW.merchant_id
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A merchant id is the seller''s id on the marketplace: 1 to 64 letters, digits, "-" or "_".';
    END IF;
    IF NEW.city_id !~ '^[0-9]{9}$' THEN
        RAISE EXCEPTION 'invalid city id "%"', NEW.city_id
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A city id is a 9-digit KATO code.',
                  HINT = 'Almaty is 750000000, Astana 710000000, Shymkent 511010000.';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(NEW.ignored_merchants) m WHERE m IS NULL OR m !~ '^[A-Za-z0-9_-]{1,64}$') THEN
        RAISE EXCEPTION 'invalid merchant id in ignored_merchants'
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A merchant id is 1 to 64 letters, digits, "-" or "_".';
    END IF;
    IF NEW.max_delivery_duration IS NOT NULL AND NEW.max_delivery_duration NOT IN
           ('EXPRESS', 'TODAY', 'TOMORROW', 'TILL_2_DAYS', 'TILL_3_DAYS', 'TILL_5_DAYS', 'TILL_7_DAYS') THEN
        RAISE EXCEPTION 'unknown delivery duration "%"', NEW.max_delivery_duration
            USING ERRCODE = 'check_violation',
                  HINT = 'Use EXPRESS, TODAY, TOMORROW, TILL_2_DAYS, TILL_3_DAYS, TILL_5_DAYS or TILL_7_DAYS.';
    END IF;
    IF NEW.outlier_share IS NOT NULL AND (NEW.outlier_share <= 0 OR NEW.outlier_share >= 1) THEN
        RAISE EXCEPTION 'outlier_share must be between 0 and 1'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Store "%s" has outlier_share %s.', NEW.name, NEW.outlier_share),
                  HINT = 'An offer below this share of the median of the cheapest five is ignored; 0.5 is usual.';
    END IF;
    IF NEW.change_budget IS NOT NULL AND NEW.change_budget < 0 THEN
        RAISE EXCEPTION 'change_budget must not be negative'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Store "%s" has change_budget %s.', NEW.name, NEW.change_budget);
    END IF;
    IF NEW.change_budget > 1000000 OR NEW.change_budget_window > interval '30 days' THEN
        RAISE EXCEPTION 'change_budget must be at most 1000000 changes per window of at most 30 days'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Store "%s" has change_budget %s per %s.', NEW.name, NEW.change_budget,
                                  NEW.change_budget_window);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.timezone) THEN
        RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
            USING ERRCODE = 'check_violation', HINT = 'Use a name such as Asia/Almaty.';
    END IF;
    IF (NEW.work_start IS NULL) <> (NEW.work_end IS NULL) THEN
        RAISE EXCEPTION 'working hours need both work_start and work_end'
            USING ERRCODE = 'check_violation';
    END IF;
    -- 24:00 is the same time of day as 00:00: compare modulo a day.
    IF NEW.work_start IS NOT NULL
       AND extract(epoch FROM NEW.work_start)::bigint % 86400 = extract(epoch FROM NEW.work_end)::bigint % 86400 THEN
        RAISE EXCEPTION 'working hours must not start and end at the same time'
            USING ERRCODE = 'check_violation',
                  HINT = 'Set both to NULL to check around the clock.';
    END IF;
    RETURN NEW;
END
$$;


-- demper_stats() gains wake_requests: how many committed transactions woke the workers (a
-- transaction calling check_now() many times wakes them once, at its commit).
DROP FUNCTION demper.demper_stats();
CREATE FUNCTION demper.demper_stats(
    OUT checks_started   bigint,
    OUT checks_ok        bigint,
    OUT checks_failed    bigint,
    OUT price_changes    bigint,
    OUT price_up         bigint,
    OUT price_down       bigint,
    OUT floor_hits       bigint,
    OUT decisions_discarded bigint,
    OUT budget_deferred  bigint,
    OUT proposals        bigint,
    OUT pushes_ok        bigint,
    OUT pushes_failed    bigint,
    OUT pushes_retried   bigint,
    OUT http_requests    bigint,
    OUT http_retries     bigint,
    OUT rate_limit_waits bigint,
    OUT bans             bigint,
    OUT breaker_opens    bigint,
    OUT egress_cooldowns bigint,
    OUT in_flight        bigint,
    OUT queued           bigint,
    OUT failed_timeout   bigint,
    OUT failed_connect   bigint,
    OUT failed_dns       bigint,
    OUT failed_tls       bigint,
    OUT failed_http_4xx  bigint,
    OUT failed_http_5xx  bigint,
    OUT failed_ban       bigint,
    OUT failed_too_large bigint,
    OUT failed_bad_body  bigint,
    OUT failed_refused_host bigint,
    OUT wake_requests    bigint,
    OUT pushes_verified  bigint,
    OUT pushes_rejected  bigint,
    OUT offers_off_sale  bigint,
    OUT catalogue_syncs  bigint,
    OUT catalogue_sync_failures bigint,
    OUT check_latency_p50_ms float8,
    OUT check_latency_p95_ms float8,
    OUT check_latency_p99_ms float8,
    OUT push_latency_p50_ms  float8,
    OUT push_latency_p95_ms  float8,
    OUT push_latency_p99_ms  float8,
    OUT checks_per_second    float8,
    OUT schedule_pressure    float8,
    OUT stats_reset      timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'demper_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION demper.demper_stats() IS 'Counters, gauges and latency percentiles of all demper workers since the last demper_stats_reset()';
REVOKE ALL ON FUNCTION demper.demper_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demper.demper_stats() TO demper_reader;
-- Metrics that lint clean (promtool check metrics): every family has HELP and TYPE, and the
-- families of prometheus-postgres-exporter's queries file (contrib/prometheus/demper-queries.yaml)
-- under the same names. Renamed: demper_http_effective_rate (now
-- demper_http_effective_rate_per_second), demper_store_at_floor (demper_store_products_at_floor),
-- demper_http_breaker_open and demper_http_bans_total gained the kind label; new: worker states,
-- backlog in check, per-store floor hits, active products and pending pushes, egress rest.
-- --------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION demper.metrics() RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    out text[] := '{}';
    family text := '';
    r record;
BEGIN
    -- Every figure below but the per-store ones is the whole engine's: refuse before reading any.
    PERFORM demper.require_engine_figures();
    FOR r IN
        WITH stats AS (SELECT * FROM demper.demper_stats()),
             backlog AS (SELECT * FROM demper.backlog),
             -- Each worker has its own row of an endpoint it uses: one series per endpoint.
             endpoint AS (
                 SELECT kind, replace(replace(replace(name, '\', '\\'), '"', '\"'), E'\n', '\n') AS name,
                        sum(effective_rate) AS effective_rate, sum(bans) AS bans,
                        sum(breaker_opens) AS breaker_opens, sum(in_flight) AS in_flight,
                        max(CASE WHEN state IN ('open', 'half_open') THEN 1 ELSE 0 END) AS breaker_open,
                        max(CASE WHEN state = 'resting' THEN 1 ELSE 0 END) AS resting
                   FROM demper.http_status() GROUP BY kind, name),
             store AS (
                 SELECT t.*, s.needs_login, coalesce(s.push_paused_until > now(), false) AS pushes_paused,
                        coalesce(o.pending, 0) AS pushes_pending,
                        coalesce(extract(epoch FROM now() - o.oldest), 0) AS oldest_pending_push_seconds
                   FROM demper.store_stats t
                   JOIN demper.store s ON s.id = t.store_id
                   LEFT JOIN (SELECT store_id, count(*) AS pending, min(created_at) AS oldest
                                FROM demper.outbox WHERE status = 'pending' GROUP BY store_id) o
                          ON o.store_id = t.store_id),
             histogram AS (
                 SELECT kind, le_seconds, sum_seconds,
                        sum(bucket_count) OVER (PARTITION BY kind ORDER BY le_seconds) AS cumulative
                   FROM demper.latency_histogram())
        -- family, type, help, sample (the family with a histogram's suffix), labels, value, and
        -- the order of families and of samples within one.
        SELECT m.* FROM stats, backlog, LATERAL (VALUES
            (1, 'demper_checks_started_total', 'counter', 'Checks started: due products claimed and their offers requested.', stats.checks_started::numeric),
            (2, 'demper_checks_ok_total', 'counter', 'Checks that ended in a decision.', stats.checks_ok),
            (3, 'demper_checks_failed_total', 'counter', 'Checks that failed and changed no price (by class: demper_checks_failed_by_class_total).', stats.checks_failed),
            (5, 'demper_price_changes_total', 'counter', 'Prices the workers changed.', stats.price_changes),
            (6, 'demper_price_up_total', 'counter', 'Price changes upwards.', stats.price_up),
            (7, 'demper_price_down_total', 'counter', 'Price changes downwards.', stats.price_down),
            (8, 'demper_floor_hits_total', 'counter', 'Decisions that stopped at the product''s floor.', stats.floor_hits),
            (9, 'demper_decisions_discarded_total', 'counter', 'Decisions dropped because a user changed the product during its check.', stats.decisions_discarded),
            (10, 'demper_budget_deferred_total', 'counter', 'Price changes deferred by a store''s change budget.', stats.budget_deferred),
            (11, 'demper_proposals_total', 'counter', 'Decisions recorded as proposals (stores in approval mode).', stats.proposals),
            (12, 'demper_pushes_ok_total', 'counter', 'Price pushes the marketplace accepted, or that a newer price replaced.', stats.pushes_ok),
            (13, 'demper_pushes_failed_total', 'counter', 'Price pushes that failed for good.', stats.pushes_failed),
            (14, 'demper_pushes_retried_total', 'counter', 'Price pushes scheduled again after a failure.', stats.pushes_retried),
            (15, 'demper_http_requests_total', 'counter', 'HTTP requests sent to the marketplace.', stats.http_requests),
            (16, 'demper_http_retries_total', 'counter', 'HTTP requests sent again after a failure.', stats.http_retries),
            (17, 'demper_rate_limit_waits_total', 'counter', 'Requests that waited for the rate limiter.', stats.rate_limit_waits),
            (18, 'demper_bans_total', 'counter', 'Ban answers from the marketplace (403, 429, 526).', stats.bans),
            (19, 'demper_breaker_opens_total', 'counter', 'Times a host''s circuit breaker opened.', stats.breaker_opens),
            (20, 'demper_egress_cooldowns_total', 'counter', 'Times an egress rested after a ban signal.', stats.egress_cooldowns),
            (21, 'demper_in_flight', 'gauge', 'HTTP requests in flight.', stats.in_flight),
            (22, 'demper_queued', 'gauge', 'HTTP requests waiting for the rate limiter or a connection slot.', stats.queued),
            (23, 'demper_checks_per_second', 'gauge', 'Checks per second of all workers (moving average).', stats.checks_per_second::numeric),
            (24, 'demper_backlog_due', 'gauge', 'Active products due for a check now.', backlog.due_now),
            (25, 'demper_backlog_oldest_due_seconds', 'gauge', 'How long the oldest due product has been due.', extract(epoch FROM backlog.oldest_due_age)),
            (26, 'demper_backlog_in_check', 'gauge', 'Active products being checked now.', backlog.in_check),
            (28, 'demper_wake_requests_total', 'counter', 'Committed transactions that woke the workers (wake_workers, check_now): one per transaction.', stats.wake_requests),
            (29, 'demper_pushes_verified_total', 'counter', 'Accepted pushes whose price the cabinet shows.', stats.pushes_verified),
            (30, 'demper_pushes_rejected_total', 'counter', 'Accepted pushes the cabinet did not show within demper.push_verify_timeout.', stats.pushes_rejected),
            (31, 'demper_offers_off_sale_total', 'counter', 'Offers the marketplace took off sale after a price push.', stats.offers_off_sale),
            (32, 'demper_catalogue_syncs_total', 'counter', 'Catalogue imports from a cabinet started.', stats.catalogue_syncs),
            (33, 'demper_catalogue_sync_failures_total', 'counter', 'Catalogue imports that ended with an error.', stats.catalogue_sync_failures),
            (34, 'demper_schedule_pressure', 'gauge', 'The adaptive schedule''s pressure: every product''s interval is stretched (above 1) or shrunk (below 1) by it to fit the request budget; 1 when demper.adaptive_intervals is off.', stats.schedule_pressure),
            (27, 'demper_active_products', 'gauge', 'Active products.', backlog.active_products)
        ) AS v(ord, family, type, help, value),
        LATERAL (SELECT v.family, v.type, v.help, v.family AS sample, '' AS labels, v.value, v.ord, 0::numeric AS seq) m
        UNION ALL
        SELECT 'demper_checks_failed_by_class_total', 'counter', 'Failed checks by error class.',
               'demper_checks_failed_by_class_total', format('{class="%s"}', substr(key, 8)), value::numeric, 4, 0
          FROM stats, jsonb_each(to_jsonb(stats)) WHERE key LIKE 'failed\_%'
        UNION ALL
        SELECT 'demper_workers_by_state', 'gauge', 'Running demper workers by state (as in demper.status).',
               'demper_workers_by_state', format('{state="%s"}', k.state), count(w.pid), 30, 0
          FROM (SELECT unnest(ARRAY['starting', 'waiting for extension', 'disabled', 'checking', 'idle'])
                UNION SELECT state FROM demper.worker_status()) k(state)
          LEFT JOIN demper.worker_status() w ON w.state = k.state
         GROUP BY k.state
        UNION ALL
        SELECT format('demper_%s_latency_seconds', kind), 'histogram',
               CASE kind WHEN 'check' THEN 'Time from a check''s request to its answer.'
                         ELSE 'Time from a push''s request to its answer.' END,
               format('demper_%s_latency_seconds_bucket', kind),
               format('{le="%s"}', CASE WHEN le_seconds = 'Infinity' THEN '+Inf' ELSE le_seconds::text END),
               cumulative, 40, le_seconds::numeric
          FROM histogram
        UNION ALL
        SELECT format('demper_%s_latency_seconds', kind), 'histogram', NULL,
               format('demper_%s_latency_seconds_%s', kind, part), '', value, 40, NULL
          FROM (SELECT kind, 'sum' AS part, max(sum_seconds)::numeric AS value FROM histogram GROUP BY kind
                UNION ALL
                SELECT kind, 'count', max(cumulative) FROM histogram GROUP BY kind) t
        UNION ALL
        SELECT 'demper_http_' || e.family, e.type, e.help, 'demper_http_' || e.family,
               format('{kind="%s",name="%s"}', kind, name), e.value, 50 + e.ord, 0
          FROM endpoint, LATERAL (VALUES
              (1, 'effective_rate_per_second', 'gauge', 'Requests per second the rate limiter admits now to the host or egress.', effective_rate::numeric, true),
              (2, 'bans_total', 'counter', 'Ban answers received through the host or egress.', bans, true),
              (3, 'in_flight', 'gauge', 'HTTP requests in flight to the host or through the egress.', in_flight, true),
              (4, 'breaker_open', 'gauge', '1 while the host''s circuit breaker is open or half open.', breaker_open, kind = 'host'),
              (5, 'breaker_opens_total', 'counter', 'Times the host''s circuit breaker opened.', breaker_opens, kind = 'host'),
              (6, 'egress_resting', 'gauge', '1 while the egress rests after a ban signal.', resting, kind = 'egress')
          ) AS e(ord, family, type, help, value, applies)
         WHERE e.applies
        UNION ALL
        SELECT 'demper_store_' || f.family, f.type, f.help, 'demper_store_' || f.family,
               format('{store_id="%s"%s}', store_id, f.label), f.value, 60 + f.ord, store_id
          FROM store, LATERAL (VALUES
              (1, 'checks_total', 'counter', 'Checks per store and outcome (ok, failed).', ',outcome="ok"', checks_ok::numeric),
              (1, 'checks_total', 'counter', 'Checks per store and outcome (ok, failed).', ',outcome="failed"', checks_failed),
              (2, 'price_changes_total', 'counter', 'Price changes per store and direction (up, down).', ',direction="up"', price_up),
              (2, 'price_changes_total', 'counter', 'Price changes per store and direction (up, down).', ',direction="down"', price_down),
              (3, 'floor_hits_total', 'counter', 'Decisions per store that stopped at the product''s floor.', '', floor_hits),
              (4, 'pushes_total', 'counter', 'Price pushes per store and outcome (ok, failed).', ',outcome="ok"', pushes_ok),
              (4, 'pushes_total', 'counter', 'Price pushes per store and outcome (ok, failed).', ',outcome="failed"', pushes_failed),
              (5, 'active_products', 'gauge', 'Active products of the store.', '', active_products),
              (6, 'products_at_floor', 'gauge', 'Active products of the store priced at their floor.', '', at_floor),
              (7, 'pushes_pending', 'gauge', 'Price changes of the store waiting to be pushed.', '', pushes_pending),
              (8, 'oldest_pending_push_seconds', 'gauge', 'How long the store''s oldest pending push has waited.', '', oldest_pending_push_seconds),
              (9, 'needs_login', 'gauge', '1 when the marketplace refused the store''s credentials (its pushes wait for new ones).', '', needs_login::int),
              (10, 'pushes_paused', 'gauge', '1 while the store''s pushes pause after a ban.', '', pushes_paused::int)
          ) AS f(ord, family, type, help, label, value)
        ORDER BY ord, family, seq, labels, sample
    LOOP
        IF r.family <> family THEN
            out := out || format('# HELP %s %s', r.family, r.help) || format('# TYPE %s %s', r.family, r.type);
            family := r.family;
        END IF;
        out := out || format('%s%s %s', r.sample, r.labels,
                             CASE r.value::text WHEN 'Infinity' THEN '+Inf' WHEN '-Infinity' THEN '-Inf'
                                                ELSE r.value::text END);
    END LOOP;
    RETURN array_to_string(out, E'\n') || E'\n';
END
$$;

-- --------------------------------------------------------------------------------------------
-- The seller's cabinet (issue 15): catalogue import, pushes as the cabinet sends them, verified.
-- --------------------------------------------------------------------------------------------
ALTER TABLE demper.store ADD COLUMN import_floor_percent numeric,
    ADD CONSTRAINT store_import_floor_percent_range CHECK (import_floor_percent IS NULL
        OR (import_floor_percent > 0 AND import_floor_percent <= 100));
ALTER TABLE demper.product ALTER COLUMN min_price DROP NOT NULL,
    ADD COLUMN availabilities jsonb,
    ADD COLUMN cabinet_synced_at timestamptz,
    ADD COLUMN cabinet_updated_at text,
    ADD COLUMN cabinet_archived boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT product_floor_before_repricing CHECK (min_price IS NOT NULL OR NOT bot_active),
    ADD CONSTRAINT product_availabilities_array CHECK (availabilities IS NULL OR jsonb_typeof(availabilities) = 'array');
COMMENT ON COLUMN demper.product.min_price IS NULL;
ALTER TABLE demper.outbox ADD COLUMN verify_status text,
    ADD COLUMN verify_after timestamptz,
    ADD COLUMN verified_at timestamptz,
    ADD COLUMN verify_detail text,
    ADD COLUMN waiting_for text,
    ADD CONSTRAINT outbox_verify_status_known CHECK (verify_status IS NULL
        OR verify_status IN ('verifying', 'verified', 'rejected', 'off_sale'));
CREATE INDEX outbox_verify_idx ON demper.outbox (verify_after) WHERE verify_status = 'verifying';

CREATE OR REPLACE FUNCTION demper.validate_product() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.price IS NOT NULL AND NEW.price < 10 THEN
        RAISE EXCEPTION 'price must be at least 10'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has price %s; the marketplace does not accept prices below 10 tenge.', NEW.sku, NEW.price);
    END IF;
    IF NEW.min_price IS NOT NULL AND NEW.min_price < 10 THEN
        RAISE EXCEPTION 'min_price must be at least 10'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has min_price %s; the marketplace does not accept prices below 10 tenge.', NEW.sku, NEW.min_price);
    END IF;
    IF NEW.max_price IS NOT NULL AND NEW.min_price IS NOT NULL AND NEW.max_price < NEW.min_price THEN
        RAISE EXCEPTION 'min_price must not be above max_price'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has min_price %s and max_price %s.', NEW.sku, NEW.min_price, NEW.max_price),
                  HINT = 'Raise max_price, lower min_price, or set max_price to NULL for no ceiling.';
    END IF;
    IF NEW.price > 10000000000 OR NEW.min_price > 10000000000 OR NEW.max_price > 10000000000
       OR NEW.step > 10000000000 OR NEW.cost_price > 10000000000 THEN
        RAISE EXCEPTION 'prices, step and cost must be at most 10000000000'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has price %s, min_price %s, max_price %s, step %s, cost_price %s.',
                                  NEW.sku, NEW.price, NEW.min_price, NEW.max_price, NEW.step, NEW.cost_price),
                  HINT = 'Prices are whole tenge; no listing costs ten billion.';
    END IF;
    IF NEW.bot_active AND NEW.min_price IS NULL THEN
        RAISE EXCEPTION 'product "%" has no floor: set min_price before it is repriced', NEW.sku
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A listing imported from the cabinet waits, inactive, until the seller gives it a floor.',
                  HINT = 'UPDATE demper.product SET min_price = ..., bot_active = true; or set the store''s import_floor_percent before importing.';
    END IF;
    IF NEW.step IS NOT NULL AND NEW.step < 1 THEN
        RAISE EXCEPTION 'step must be at least 1'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has step %s.', NEW.sku, NEW.step);
    END IF;
    IF NEW.product_code !~ '^[A-Za-z0-9_-]{1,64}$' THEN
        RAISE EXCEPTION 'invalid product code "%"', NEW.product_code
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A product code is the marketplace''s product card id: 1 to 64 letters, digits, "-" or "_".';
    END IF;
    IF btrim(NEW.sku, E' \t\r\n') = '' THEN
        RAISE EXCEPTION 'sku must not be blank' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.strategy NOT IN ('undercut', 'match', 'position', 'follow_second') THEN
        RAISE EXCEPTION 'unknown strategy "%"', NEW.strategy
            USING ERRCODE = 'check_violation',
                  HINT = 'Use undercut, match, position or follow_second.';
    END IF;
    IF NEW.floor_action NOT IN ('go_to_floor', 'hold') THEN
        RAISE EXCEPTION 'unknown floor action "%"', NEW.floor_action
            USING ERRCODE = 'check_violation', HINT = 'Use go_to_floor or hold.';
    END IF;
    IF NEW.no_competitor_action NOT IN ('to_max', 'hold') THEN
        RAISE EXCEPTION 'unknown no-competitor action "%"', NEW.no_competitor_action
            USING ERRCODE = 'check_violation', HINT = 'Use to_max or hold.';
    END IF;
    IF NEW.position < 1 OR NEW.position > 64 THEN
        RAISE EXCEPTION 'position must be between 1 and 64'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has position %s.', NEW.sku, NEW.position);
    END IF;
    IF NEW.step_percent IS NOT NULL AND (NEW.step_percent <= 0 OR NEW.step_percent > 50) THEN
        RAISE EXCEPTION 'step_percent must be above 0 and at most 50'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has step_percent %s.', NEW.sku, NEW.step_percent);
    END IF;
    IF NEW.max_change_percent IS NOT NULL AND (NEW.max_change_percent <= 0 OR NEW.max_change_percent > 100) THEN
        RAISE EXCEPTION 'max_change_percent must be above 0 and at most 100'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has max_change_percent %s.', NEW.sku, NEW.max_change_percent);
    END IF;
    IF NEW.min_margin_percent IS NOT NULL AND NEW.cost_price IS NULL THEN
        RAISE EXCEPTION 'min_margin_percent needs cost_price'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has a minimum margin but no cost price.', NEW.sku);
    END IF;
    IF NEW.city_id IS NOT NULL AND NEW.city_id !~ '^[0-9]{9}$' THEN
        RAISE EXCEPTION 'invalid city id "%"', NEW.city_id
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A city id is a 9-digit KATO code.',
                  HINT = 'Almaty is 750000000, Astana 710000000, Shymkent 511010000.';
    END IF;
    IF TG_OP = 'INSERT' AND NEW.next_check_at IS NULL THEN
        NEW.next_check_at := now() + random() * coalesce(NEW.check_interval, demper.check_interval());
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- This trigger runs on UPDATE only when an input of the rule changed (see its WHEN).
        NEW.inputs_version := OLD.inputs_version + 1;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER product_validate_update ON demper.product;
CREATE TRIGGER product_validate_update
    BEFORE UPDATE ON demper.product
    FOR EACH ROW
    WHEN (NEW.price < 10 OR NEW.price > 10000000000
          OR NEW.min_price IS DISTINCT FROM OLD.min_price
          OR (NEW.bot_active AND NEW.min_price IS NULL)
          OR NEW.max_price IS DISTINCT FROM OLD.max_price
          OR NEW.step IS DISTINCT FROM OLD.step
          OR NEW.product_code IS DISTINCT FROM OLD.product_code
          OR NEW.sku IS DISTINCT FROM OLD.sku
          OR NEW.city_id IS DISTINCT FROM OLD.city_id
          OR NEW.strategy IS DISTINCT FROM OLD.strategy
          OR NEW.step_percent IS DISTINCT FROM OLD.step_percent
          OR NEW.position IS DISTINCT FROM OLD.position
          OR NEW.cost_price IS DISTINCT FROM OLD.cost_price
          OR NEW.min_margin_percent IS DISTINCT FROM OLD.min_margin_percent
          OR NEW.floor_action IS DISTINCT FROM OLD.floor_action
          OR NEW.no_competitor_action IS DISTINCT FROM OLD.no_competitor_action
          OR NEW.max_change_percent IS DISTINCT FROM OLD.max_change_percent)
    EXECUTE FUNCTION demper.validate_product();

-- ============================================================================================
-- The seller's cabinet: catalogue import and verified pushes
-- ============================================================================================

-- catalogue_sync_state: per store, the catalogue import's state. The worker imports a store's
-- catalogue when asked (sync_catalogue) and every demper.catalogue_sync_interval.
CREATE TABLE demper.catalogue_sync_state (
    store_id      bigint      PRIMARY KEY REFERENCES demper.store (id) ON DELETE CASCADE,
    requested_at  timestamptz,          -- sync_catalogue() asked for a sync (NULL: none waiting)
    started_at    timestamptz,
    finished_at   timestamptz,
    status        text        NOT NULL DEFAULT 'never',
    listings_seen integer     NOT NULL DEFAULT 0,   -- on sale and archived, of the last sync
    added         integer     NOT NULL DEFAULT 0,
    updated       integer     NOT NULL DEFAULT 0,
    archived      integer     NOT NULL DEFAULT 0,
    price_edits   integer     NOT NULL DEFAULT 0,   -- prices the seller changed in the cabinet
    error         text,
    CONSTRAINT catalogue_sync_status_known CHECK (status IN ('never', 'running', 'done', 'failed'))
);
COMMENT ON TABLE demper.catalogue_sync_state IS
    'The catalogue import of each store from the seller''s cabinet: when, what it found, and why it failed';

-- sync_catalogue asks the worker to import a store's catalogue from its cabinet now; it returns at
-- once (the import runs in the worker, a page at a time: demper.catalogue_sync shows it).
CREATE FUNCTION demper.sync_catalogue(store_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF store_id IS NULL THEN
        RAISE EXCEPTION 'store id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM demper.store s WHERE s.id = sync_catalogue.store_id)
       OR NOT demper.caller_may_manage(store_id) THEN
        RAISE EXCEPTION 'store % does not exist', store_id USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO demper.catalogue_sync_state (store_id, requested_at) VALUES (store_id, now())
    ON CONFLICT ON CONSTRAINT catalogue_sync_state_pkey DO UPDATE SET requested_at = now();
    PERFORM demper.wake_workers();
END
$$;
COMMENT ON FUNCTION demper.sync_catalogue(bigint) IS
    'Asks the worker to import the store''s catalogue from the seller''s cabinet now (see demper.catalogue_sync)';

-- catalogue_sync: per store, the last import: when it started and finished, the listings it saw,
-- added, updated and archived, the prices the seller changed in the cabinet, and its error.
CREATE VIEW demper.catalogue_sync WITH (security_invoker = true) AS
SELECT s.id AS store_id, s.name AS store, s.merchant_id,
       coalesce(c.status, 'never') AS status, c.requested_at, c.started_at, c.finished_at,
       coalesce(c.listings_seen, 0) AS listings_seen, coalesce(c.added, 0) AS added,
       coalesce(c.updated, 0) AS updated, coalesce(c.archived, 0) AS archived,
       coalesce(c.price_edits, 0) AS price_edits, c.error,
       (SELECT count(*) FROM demper.product p
         WHERE p.store_id = s.id AND p.cabinet_synced_at IS NOT NULL AND p.min_price IS NULL) AS waiting_for_floor
  FROM demper.store s
  LEFT JOIN demper.catalogue_sync_state c ON c.store_id = s.id;

CREATE OR REPLACE VIEW demper.push_status WITH (security_invoker = true) AS
SELECT s.id AS store_id,
       s.name AS store,
       s.push_mode,
       s.credentials_key IS NOT NULL AS has_credentials,
       s.credentials_key,
       s.needs_login,
       s.push_paused_until,
       s.last_push_error,
       count(o.*) FILTER (WHERE o.status = 'pending') AS pending,
       count(o.*) FILTER (WHERE o.status = 'done') AS done,
       count(o.*) FILTER (WHERE o.status = 'failed') AS failed,
       max(o.done_at) AS last_push_at,
       count(o.*) FILTER (WHERE o.status = 'pending' AND o.waiting_for = 'pickup_points') AS waiting_for_pickup_points,
       count(o.*) FILTER (WHERE o.verify_status = 'verifying') AS verifying,
       count(o.*) FILTER (WHERE o.verify_status = 'verified') AS verified,
       count(o.*) FILTER (WHERE o.verify_status = 'rejected') AS rejected,
       count(o.*) FILTER (WHERE o.verify_status = 'off_sale') AS off_sale,
       max(o.verified_at) FILTER (WHERE o.verify_status = 'off_sale') AS last_off_sale_at
  FROM demper.store s
  LEFT JOIN demper.outbox o ON o.store_id = s.id
 GROUP BY s.id;

REVOKE ALL ON demper.catalogue_sync_state, demper.catalogue_sync FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.sync_catalogue(bigint) FROM PUBLIC;

-- The seller's cabinet (catalogue import, verified pushes): readers see the import's state, admins
-- ask for an import and set the floor rule of imported listings; the worker imports listings
-- (inserts products, their due-queue rows, and updates what the cabinet owns of them: never the
-- seller's floor, ceiling or strategy) and records what verification found.
GRANT SELECT ON demper.catalogue_sync TO demper_reader;
GRANT SELECT (import_floor_percent) ON demper.store TO demper_reader;
GRANT UPDATE (import_floor_percent) ON demper.store TO demper_admin;
GRANT EXECUTE ON FUNCTION demper.sync_catalogue(bigint) TO demper_admin;
GRANT INSERT ON demper.product, demper.schedule TO demper_worker;
GRANT DELETE ON demper.schedule TO demper_worker;
GRANT UPDATE (product_code, model, brand, city_id, bot_active, inputs_version, availabilities,
              cabinet_synced_at, cabinet_updated_at, cabinet_archived)
    ON demper.product TO demper_worker;
GRANT SELECT, INSERT, UPDATE ON demper.catalogue_sync_state TO demper_worker;
GRANT UPDATE (verify_status, verify_after, verified_at, verify_detail, waiting_for)
    ON demper.outbox TO demper_worker;


-- ============================================================================================
-- 0.7.0: the adaptive schedule (issue 17)
-- ============================================================================================
-- Stores and products gain the bounds of their checks' intervals and stores a war policy; the
-- due queue keeps each product's interval at pressure 1 and bounds for the pressure query; a
-- product keeps what its checks taught and the rival of its price war.
ALTER TABLE demper.store ADD COLUMN check_interval_min interval,
    ADD COLUMN check_interval_max interval,
    ADD COLUMN war_policy text NOT NULL DEFAULT 'follow',
    ADD CONSTRAINT store_check_interval_bounds CHECK (
        (check_interval_min IS NULL OR (check_interval_min >= interval '1 second' AND check_interval_min <= interval '7 days'))
        AND (check_interval_max IS NULL OR (check_interval_max >= interval '1 second' AND check_interval_max <= interval '7 days'))
        AND (check_interval_min IS NULL OR check_interval_max IS NULL OR check_interval_min <= check_interval_max)),
    ADD CONSTRAINT store_war_policy_known CHECK (war_policy IN ('follow', 'hold', 'keep_margin'));
ALTER TABLE demper.product ADD COLUMN check_interval_min interval,
    ADD COLUMN check_interval_max interval,
    ADD COLUMN schedule_state text,
    ADD COLUMN war_rival text,
    ADD CONSTRAINT product_check_interval_bounds CHECK (
        (check_interval_min IS NULL OR (check_interval_min >= interval '1 second' AND check_interval_min <= interval '7 days'))
        AND (check_interval_max IS NULL OR (check_interval_max >= interval '1 second' AND check_interval_max <= interval '7 days'))
        AND (check_interval_min IS NULL OR check_interval_max IS NULL OR check_interval_min <= check_interval_max));
ALTER TABLE demper.schedule ADD COLUMN base_interval_s real,
    ADD COLUMN shortest_s real,
    ADD COLUMN longest_s real;

-- validate_schedule_settings: clear errors for a store's or a product's schedule settings (the
-- tables' constraints hold the same rules).
CREATE FUNCTION demper.validate_schedule_settings() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.check_interval_min < interval '1 second' OR NEW.check_interval_min > interval '7 days'
       OR NEW.check_interval_max < interval '1 second' OR NEW.check_interval_max > interval '7 days' THEN
        RAISE EXCEPTION 'check_interval_min and check_interval_max must be between 1 second and 7 days'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('%s "%s" has check_interval_min %s and check_interval_max %s.',
                                  CASE TG_TABLE_NAME WHEN 'store' THEN 'Store' ELSE 'Product' END,
                                  coalesce(to_jsonb(NEW) ->> 'sku', to_jsonb(NEW) ->> 'name'),
                                  coalesce(NEW.check_interval_min::text, 'NULL'),
                                  coalesce(NEW.check_interval_max::text, 'NULL'));
    END IF;
    IF NEW.check_interval_min > NEW.check_interval_max THEN
        RAISE EXCEPTION 'check_interval_min must not be above check_interval_max'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('%s "%s" has check_interval_min %s and check_interval_max %s.',
                                  CASE TG_TABLE_NAME WHEN 'store' THEN 'Store' ELSE 'Product' END,
                                  coalesce(to_jsonb(NEW) ->> 'sku', to_jsonb(NEW) ->> 'name'),
                                  NEW.check_interval_min, NEW.check_interval_max),
                  HINT = 'They bound the time between two checks: the shortest comes first.';
    END IF;
    IF TG_TABLE_NAME = 'store' THEN
        IF NEW.war_policy IS DISTINCT FROM 'follow' AND NEW.war_policy IS DISTINCT FROM 'hold'
           AND NEW.war_policy IS DISTINCT FROM 'keep_margin' THEN
            RAISE EXCEPTION 'unknown war policy "%"', NEW.war_policy
                USING ERRCODE = 'check_violation',
                      HINT = 'Use follow (undercut as ever), hold (never lower the price during a price war) or keep_margin (leave the rival out of the competitors).';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER store_validate_schedule
    BEFORE INSERT OR UPDATE OF check_interval_min, check_interval_max, war_policy ON demper.store
    FOR EACH ROW EXECUTE FUNCTION demper.validate_schedule_settings();
CREATE TRIGGER product_validate_schedule
    BEFORE INSERT OR UPDATE OF check_interval_min, check_interval_max ON demper.product
    FOR EACH ROW
    WHEN (NEW.check_interval_min IS NOT NULL OR NEW.check_interval_max IS NOT NULL)
    EXECUTE FUNCTION demper.validate_schedule_settings();

COMMENT ON COLUMN demper.product.check_interval_min IS
    'Adaptive schedule: the shortest time between two checks of this product (NULL: its store''s, else demper.check_interval_min)';
COMMENT ON COLUMN demper.product.check_interval_max IS
    'Adaptive schedule: the longest time between two checks of this product (NULL: its store''s, else demper.check_interval_max)';
COMMENT ON COLUMN demper.product.schedule_state IS
    'Adaptive schedule: what the product''s checks taught (written by the worker; NULL: no information yet)';
COMMENT ON COLUMN demper.product.war_rival IS
    'The merchant id of the rival in the price war this product is in (NULL: none)';
COMMENT ON COLUMN demper.store.war_policy IS
    'What a price war does to this store''s decisions: follow, hold or keep_margin';

CREATE OR REPLACE VIEW demper.product_status WITH (security_invoker = true) AS
SELECT p.id,
       s.name  AS store,
       p.sku,
       p.product_code,
       coalesce(p.city_id, s.city_id) AS city_id,
       p.price,
       p.min_price,
       p.max_price,
       (p.price <= greatest(p.min_price, 10)) AS at_floor,
       p.last_competitor_price,
       p.last_reason,
       p.last_decided_price,
       p.last_check_time,
       p.next_check_at,
       p.check_failures,
       p.last_error_class,
       p.last_error,
       p.bot_active,
       p.strategy,
       s.approval_mode,
       demper.in_working_hours(s.work_start, s.work_end, s.timezone) AS in_working_hours,
       p.war_rival
  FROM demper.product p
  JOIN demper.store s ON s.id = p.store_id
 ORDER BY (p.price <= greatest(p.min_price, 10)) DESC, p.check_failures DESC, p.id;

CREATE OR REPLACE VIEW demper.store_stats WITH (security_invoker = true) AS
SELECT s.id AS store_id, s.name AS store, s.merchant_id,
       coalesce(c.checks_ok, 0) AS checks_ok, coalesce(c.checks_failed, 0) AS checks_failed,
       coalesce(c.price_changes, 0) AS price_changes, coalesce(c.price_up, 0) AS price_up,
       coalesce(c.price_down, 0) AS price_down, coalesce(c.floor_hits, 0) AS floor_hits,
       coalesce(c.budget_deferred, 0) AS budget_deferred, coalesce(c.proposals, 0) AS proposals,
       coalesce(c.pushes_ok, 0) AS pushes_ok, coalesce(c.pushes_failed, 0) AS pushes_failed,
       (SELECT count(*) FROM demper.product p WHERE p.store_id = s.id AND p.bot_active) AS active_products,
       (SELECT count(*) FROM demper.product p WHERE p.store_id = s.id AND p.bot_active
           AND p.price <= greatest(p.min_price, 10)) AS at_floor,
       (SELECT count(*) FROM demper.product p WHERE p.store_id = s.id AND p.bot_active
           AND p.war_rival IS NOT NULL) AS products_at_war,
       s.war_policy
  FROM demper.store s
  LEFT JOIN demper.store_counters() c ON c.store_id = s.id;

-- The adaptive schedule: readers see a store's bounds and war policy, admins set them (a product's
-- with the product); the worker writes what a check taught and the interval it chose.
GRANT SELECT (check_interval_min, check_interval_max, war_policy) ON demper.store TO demper_reader;
GRANT UPDATE (check_interval_min, check_interval_max, war_policy) ON demper.store TO demper_admin;
GRANT UPDATE (schedule_state, war_rival) ON demper.product TO demper_worker;
GRANT UPDATE (base_interval_s, shortest_s, longest_s) ON demper.schedule TO demper_worker;
REVOKE ALL ON FUNCTION demper.validate_schedule_settings() FROM PUBLIC;

-- The figures of the whole engine (demper_stats, http_status, latency_histogram, worker_status
-- and the status view, metrics, demper_stats_reset) cover every seller's stores: while row-level
-- security is on they are the operator's, and a caller that is not a superuser, the extension's
-- owner or a member of pg_monitor is refused (with row-level security off, everyone granted them
-- sees them). engine_figures_visible says whether the current role may; require_engine_figures
-- raises the refusal. Both are C, like the functions they guard, which check the same rule
-- themselves: no view or wrapper can read around it.
CREATE FUNCTION demper.engine_figures_visible() RETURNS boolean
AS 'MODULE_PATHNAME', 'demper_engine_figures_visible'
LANGUAGE C STABLE;
COMMENT ON FUNCTION demper.engine_figures_visible() IS
    'Whether the current role may see the engine-wide figures: always with row-level security off; with it on, superusers, the extension''s owner and pg_monitor';

CREATE FUNCTION demper.require_engine_figures() RETURNS void
AS 'MODULE_PATHNAME', 'demper_require_engine_figures'
LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION demper.engine_figures_visible(), demper.require_engine_figures() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demper.engine_figures_visible(), demper.require_engine_figures() TO demper_reader;

-- The backlog's rate is the whole engine's: NULL, with the catch-up time, for whoever may not see it.
CREATE OR REPLACE VIEW demper.backlog WITH (security_invoker = true) AS
SELECT b.due_now, b.oldest_due_age, b.in_check, b.active_products, r.rate AS checks_per_second,
       CASE WHEN b.due_now = 0 THEN interval '0'
            WHEN r.rate > 0 THEN make_interval(secs => b.due_now / r.rate) END AS expected_catch_up
  FROM (SELECT count(*) FILTER (WHERE q.next_check_at <= now()) AS due_now,
               coalesce(now() - min(q.next_check_at) FILTER (WHERE q.next_check_at <= now()),
                        interval '0') AS oldest_due_age,
               count(*) FILTER (WHERE q.lease_until > now()) AS in_check,
               count(*) AS active_products
          FROM demper.due_queue() q
          JOIN demper.product p ON p.id = q.product_id
         WHERE p.bot_active) b,
       (SELECT CASE WHEN demper.engine_figures_visible()
                    THEN (SELECT coalesce(sum(checks_per_second), 0) FROM demper.worker_status()) END AS rate) r;
