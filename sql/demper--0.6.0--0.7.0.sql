-- demper 0.7.0: security hardening, the seller's cabinet both ways, reliability, adaptive checks
-- and operators' tooling. Each section below says what it changes and why; the same objects are
-- defined in demper--0.7.0.sql for fresh installs (test/t/016_schema_equivalence.pl compares them).
\echo Use "ALTER EXTENSION demper UPDATE TO '0.7.0'" to load this file. \quit

-- --------------------------------------------------------------------------------------------
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
