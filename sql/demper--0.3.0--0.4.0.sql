-- demper 0.3.0 -> 0.4.0: seeing what it does (issue 6): latency percentiles, per-store counters,
-- worker status, backlog with a catch-up estimate, Prometheus metrics, and retention.

\echo Use "ALTER EXTENSION demper UPDATE TO '0.4.0'" to load this file. \quit

-- demper_stats(): the 0.3.0 counters plus check and push latency percentiles (from fixed-bucket
-- histograms in shared memory) and the current check rate.
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
    OUT check_latency_p50_ms float8,
    OUT check_latency_p95_ms float8,
    OUT check_latency_p99_ms float8,
    OUT push_latency_p50_ms  float8,
    OUT push_latency_p95_ms  float8,
    OUT push_latency_p99_ms  float8,
    OUT checks_per_second    float8,
    OUT stats_reset      timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'demper_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION demper.demper_stats() IS 'Counters, gauges and latency percentiles of all demper workers since the last demper_stats_reset()';

-- latency_histogram: the raw buckets behind the percentiles (for Prometheus histograms).
CREATE FUNCTION demper.latency_histogram(
    OUT kind text, OUT le_seconds float8, OUT bucket_count bigint, OUT sum_seconds float8)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'demper_latency_histogram'
LANGUAGE C STRICT VOLATILE;

-- store_counters / store_stats: the counters per store, for billing and support.
CREATE FUNCTION demper.store_counters(
    OUT store_id bigint, OUT checks_ok bigint, OUT checks_failed bigint, OUT price_changes bigint,
    OUT price_up bigint, OUT price_down bigint, OUT floor_hits bigint, OUT budget_deferred bigint,
    OUT proposals bigint, OUT pushes_ok bigint, OUT pushes_failed bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'demper_store_counters'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW demper.store_stats AS
SELECT s.id AS store_id, s.name AS store, s.merchant_id,
       coalesce(c.checks_ok, 0) AS checks_ok, coalesce(c.checks_failed, 0) AS checks_failed,
       coalesce(c.price_changes, 0) AS price_changes, coalesce(c.price_up, 0) AS price_up,
       coalesce(c.price_down, 0) AS price_down, coalesce(c.floor_hits, 0) AS floor_hits,
       coalesce(c.budget_deferred, 0) AS budget_deferred, coalesce(c.proposals, 0) AS proposals,
       coalesce(c.pushes_ok, 0) AS pushes_ok, coalesce(c.pushes_failed, 0) AS pushes_failed,
       (SELECT count(*) FROM demper.product p WHERE p.store_id = s.id AND p.bot_active) AS active_products,
       (SELECT count(*) FROM demper.product p WHERE p.store_id = s.id AND p.bot_active
           AND p.price <= greatest(p.min_price, 10)) AS at_floor
  FROM demper.store s
  LEFT JOIN demper.store_counters() c ON c.store_id = s.id;

-- worker_status / status: one row per running worker.
CREATE FUNCTION demper.worker_status(
    OUT pid integer, OUT state text, OUT database text, OUT in_check integer,
    OUT checks_per_second float8, OUT started_at timestamptz, OUT last_error text,
    OUT last_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'demper_worker_status'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW demper.status AS
SELECT pid, state, database, in_check AS current_batch, checks_per_second,
       started_at, now() - started_at AS uptime, last_error, last_error_at
  FROM demper.worker_status();

-- backlog: how much is due, how stale the oldest due product is, and when the workers would
-- catch up at their current rate.
DROP VIEW demper.backlog;
CREATE VIEW demper.backlog AS
SELECT b.due_now, b.oldest_due_age, b.in_check, b.active_products, r.rate AS checks_per_second,
       CASE WHEN b.due_now = 0 THEN interval '0'
            WHEN r.rate > 0 THEN make_interval(secs => b.due_now / r.rate) END AS expected_catch_up
  FROM (SELECT count(*) FILTER (WHERE next_check_at <= now()) AS due_now,
               coalesce(now() - min(next_check_at) FILTER (WHERE next_check_at <= now()),
                        interval '0') AS oldest_due_age,
               count(*) FILTER (WHERE lease_until > now()) AS in_check,
               count(*) AS active_products
          FROM demper.product
         WHERE bot_active) b,
       (SELECT coalesce(sum(checks_per_second), 0) AS rate FROM demper.worker_status()) r;

-- Retention: finished rows older than demper.history_retention go, in small batches (the worker
-- calls prune_batch in transactions of its own every demper.prune_interval).
CREATE INDEX proposal_decided_idx ON demper.proposal (decided_at) WHERE status <> 'pending';

CREATE FUNCTION demper.prune_batch(retention interval, batch integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed integer := 0;
    n integer;
BEGIN
    IF retention IS NULL OR retention <= interval '0' THEN
        RAISE EXCEPTION 'retention must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'batch must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM demper.price_history WHERE id IN (
        SELECT id FROM demper.price_history WHERE changed_at < now() - retention
         ORDER BY changed_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;
    DELETE FROM demper.outbox WHERE id IN (
        SELECT id FROM demper.outbox WHERE status <> 'pending' AND done_at < now() - retention
         ORDER BY done_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;
    DELETE FROM demper.proposal WHERE id IN (
        SELECT id FROM demper.proposal WHERE status <> 'pending' AND decided_at < now() - retention
         ORDER BY decided_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN removed + n;
END
$$;
COMMENT ON FUNCTION demper.prune_batch(interval, integer) IS
    'Removes at most batch rows of each of price_history, finished outbox rows and decided proposals older than retention';

-- metrics: everything above in the Prometheus text exposition format.
CREATE FUNCTION demper.metrics() RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    out text[] := '{}';
    st jsonb;
    k text;
    v jsonb;
    r record;
    gauges text[] := ARRAY['in_flight', 'queued', 'checks_per_second'];
    cumulative bigint;
    last_kind text := '';
BEGIN
    SELECT to_jsonb(s) INTO st FROM demper.demper_stats() s;
    FOR k, v IN SELECT key, value FROM jsonb_each(st) ORDER BY key LOOP
        CONTINUE WHEN k = 'stats_reset' OR k LIKE '%latency%';
        IF k LIKE 'failed\_%' THEN
            CONTINUE;  -- below, as one metric with a class label
        ELSIF k = ANY (gauges) THEN
            out := out || format('# TYPE demper_%s gauge', k) || format('demper_%s %s', k, v);
        ELSE
            out := out || format('# TYPE demper_%s_total counter', k) || format('demper_%s_total %s', k, v);
        END IF;
    END LOOP;
    out := out || '# HELP demper_checks_failed_by_class_total Failed checks by error class.'::text
               || '# TYPE demper_checks_failed_by_class_total counter'::text;
    FOR k, v IN SELECT key, value FROM jsonb_each(st) WHERE key LIKE 'failed\_%' ORDER BY key LOOP
        out := out || format('demper_checks_failed_by_class_total{class="%s"} %s', substr(k, 8), v);
    END LOOP;

    FOR r IN SELECT * FROM demper.latency_histogram() ORDER BY kind, le_seconds LOOP
        IF r.kind <> last_kind THEN
            IF last_kind <> '' THEN
                out := out || format('demper_%s_latency_seconds_count %s', last_kind, cumulative);
            END IF;
            out := out || format('# TYPE demper_%s_latency_seconds histogram', r.kind);
            out := out || format('demper_%s_latency_seconds_sum %s', r.kind, r.sum_seconds);
            cumulative := 0;
            last_kind := r.kind;
        END IF;
        cumulative := cumulative + r.bucket_count;
        out := out || format('demper_%s_latency_seconds_bucket{le="%s"} %s', r.kind,
                             CASE WHEN r.le_seconds = 'Infinity' THEN '+Inf' ELSE r.le_seconds::text END,
                             cumulative);
    END LOOP;
    IF last_kind <> '' THEN
        out := out || format('demper_%s_latency_seconds_count %s', last_kind, cumulative);
    END IF;

    out := out || '# TYPE demper_http_effective_rate gauge'::text
               || '# TYPE demper_http_bans_total counter'::text
               || '# TYPE demper_http_breaker_open gauge'::text
               || '# TYPE demper_http_in_flight gauge'::text;
    FOR r IN SELECT * FROM demper.http_status() ORDER BY kind, name LOOP
        out := out
            || format('demper_http_effective_rate{kind="%s",name="%s"} %s', r.kind, r.name, r.effective_rate)
            || format('demper_http_bans_total{kind="%s",name="%s"} %s', r.kind, r.name, r.bans)
            || format('demper_http_in_flight{kind="%s",name="%s"} %s', r.kind, r.name, r.in_flight);
        IF r.kind = 'host' THEN
            out := out || format('demper_http_breaker_open{name="%s"} %s', r.name,
                                 CASE WHEN r.state = 'closed' THEN 0 ELSE 1 END);
        END IF;
    END LOOP;

    out := out || '# TYPE demper_store_checks_total counter'::text
               || '# TYPE demper_store_price_changes_total counter'::text
               || '# TYPE demper_store_pushes_total counter'::text
               || '# TYPE demper_store_at_floor gauge'::text;
    FOR r IN SELECT * FROM demper.store_stats ORDER BY store_id LOOP
        out := out
            || format('demper_store_checks_total{store_id="%s",outcome="ok"} %s', r.store_id, r.checks_ok)
            || format('demper_store_checks_total{store_id="%s",outcome="failed"} %s', r.store_id, r.checks_failed)
            || format('demper_store_price_changes_total{store_id="%s",direction="up"} %s', r.store_id, r.price_up)
            || format('demper_store_price_changes_total{store_id="%s",direction="down"} %s', r.store_id, r.price_down)
            || format('demper_store_pushes_total{store_id="%s",outcome="ok"} %s', r.store_id, r.pushes_ok)
            || format('demper_store_pushes_total{store_id="%s",outcome="failed"} %s', r.store_id, r.pushes_failed)
            || format('demper_store_at_floor{store_id="%s"} %s', r.store_id, r.at_floor);
    END LOOP;

    SELECT * INTO r FROM demper.backlog;
    out := out || '# TYPE demper_backlog_due gauge'::text || format('demper_backlog_due %s', r.due_now)
               || '# TYPE demper_backlog_oldest_due_seconds gauge'::text
               || format('demper_backlog_oldest_due_seconds %s', extract(epoch FROM r.oldest_due_age))
               || '# TYPE demper_active_products gauge'::text
               || format('demper_active_products %s', r.active_products);
    RETURN array_to_string(out, E'\n') || E'\n';
END
$$;
COMMENT ON FUNCTION demper.metrics() IS 'All demper metrics in the Prometheus text exposition format';

-- Views run with the privileges and row-level security of the role that reads them.
ALTER VIEW demper.store_stats SET (security_invoker = true);
ALTER VIEW demper.backlog SET (security_invoker = true);

REVOKE ALL ON FUNCTION demper.demper_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.latency_histogram() FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.store_counters() FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.worker_status() FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.prune_batch(interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.metrics() FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA demper FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demper.demper_stats(), demper.latency_histogram(), demper.store_counters(),
                          demper.worker_status(), demper.metrics() TO demper_reader;
GRANT SELECT ON demper.store_stats, demper.status, demper.backlog TO demper_reader;
GRANT EXECUTE ON FUNCTION demper.prune_batch(interval, integer) TO demper_admin;
