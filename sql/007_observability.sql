-- Observability (0.4.0): the shapes of stats, histograms, per-store counters, worker status,
-- backlog and Prometheus metrics; retention removes only old rows.
\set SHOW_CONTEXT never
SELECT count(*) AS columns FROM pg_proc p, unnest(p.proargmodes) m
 WHERE p.oid = 'demper.demper_stats'::regproc AND m = 'o';
SELECT check_latency_p50_ms >= 0 AS p50_ok, check_latency_p99_ms >= check_latency_p50_ms AS ordered,
       checks_per_second >= 0 AS rate_ok
  FROM demper.demper_stats();
SELECT kind, count(*) AS buckets, max(le_seconds) AS last_bound, min(le_seconds) AS first_bound
  FROM demper.latency_histogram() GROUP BY kind ORDER BY kind;

-- One row per running worker (its content is tested by TAP: here the worker may not have
-- connected yet).
SELECT * FROM demper.status WHERE false;

INSERT INTO demper.store (name, merchant_id) VALUES ('Observed', 'OBS1');
SELECT id AS obs FROM demper.store WHERE merchant_id = 'OBS1' \gset
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
VALUES (:obs, '901', 'O-1', 1000, 1000, now() - interval '10 minutes'),
       (:obs, '902', 'O-2', 2000, 500, now() + interval '1 hour');
SELECT store, checks_ok, price_changes, active_products, at_floor FROM demper.store_stats WHERE store_id = :obs;
SELECT due_now, oldest_due_age >= interval '10 minutes' AS stale, active_products,
       expected_catch_up IS NULL AS no_rate_yet
  FROM demper.backlog;

-- Prometheus text format: typed metrics, labelled classes, histograms and stores.
SELECT regexp_replace(line, 'store_id="' || :obs || '"', 'store_id="<obs>"') AS line
  FROM unnest(string_to_array(demper.metrics(), E'\n')) line
 WHERE line ~ '^# TYPE demper_(checks_started_total|in_flight|check_latency_seconds|backlog_due|store_products_at_floor) '
    OR line ~ '^demper_checks_failed_by_class_total\{class="(ban|timeout)"\}'
    OR line ~ '^demper_check_latency_seconds_bucket\{le="\+Inf"\}'
    OR line ~ '^demper_backlog_due '
    OR line LIKE 'demper_store_products_at_floor{store_id="' || :obs || '"}%'
    OR line LIKE 'demper_store_pushes_pending{store_id="' || :obs || '"}%'
 ORDER BY line;
SELECT right(demper.metrics(), 1) = E'\n' AS ends_with_newline,
       demper.metrics() !~ 'NULL|null' AS no_nulls;
-- Every family says what it is (HELP) and what kind it is (TYPE), once, HELP first; every sample
-- belongs to the family announced last; counters and only counters end in _total.
WITH line AS (
    SELECT n, l FROM unnest(string_to_array(rtrim(demper.metrics(), E'\n'), E'\n')) WITH ORDINALITY u(l, n)),
family AS (
    SELECT n, split_part(l, ' ', 3) AS family, split_part(l, ' ', 2) AS what, split_part(l, ' ', 4) AS type
      FROM line WHERE l LIKE '# %'),
sample AS (
    SELECT l.n, substring(l.l FROM '^[a-z_]+') AS name,
           (SELECT f.family FROM family f WHERE f.n < l.n ORDER BY f.n DESC LIMIT 1) AS family,
           (SELECT f.type FROM family f WHERE f.what = 'TYPE' AND f.n < l.n ORDER BY f.n DESC LIMIT 1) AS type
      FROM line l WHERE l.l NOT LIKE '#%')
SELECT (SELECT count(*) FROM family WHERE what = 'HELP') = (SELECT count(DISTINCT family) FROM family)
           AS one_help_each,
       (SELECT count(*) FROM family WHERE what = 'TYPE') = (SELECT count(DISTINCT family) FROM family)
           AS one_type_each,
       (SELECT count(DISTINCT family) FROM family) >= 40 AS families_listed,
       (SELECT bool_and(h.n + 1 = t.n) FROM family h JOIN family t USING (family)
         WHERE h.what = 'HELP' AND t.what = 'TYPE') AS help_then_type,
       (SELECT count(*) FROM sample
         WHERE name <> family AND NOT (type = 'histogram' AND name IN (family || '_bucket', family || '_sum', family || '_count')))
           AS strays,
       (SELECT count(*) FROM family WHERE what = 'TYPE' AND (family LIKE '%\_total') <> (type = 'counter'))
           AS misnamed_counters;

-- Retention: only rows older than the retention go; pending pushes and proposals stay.
INSERT INTO demper.price_history (product_id, store_id, changed_at, old_price, new_price, reason)
SELECT p.id, :obs, now() - (g || ' days')::interval, 1000, 999, 'undercut'
  FROM demper.product p, generate_series(1, 100) g WHERE p.sku = 'O-1';
INSERT INTO demper.outbox (product_id, store_id, price, status, done_at)
SELECT p.id, :obs, 999, 'done', now() - (g || ' days')::interval
  FROM demper.product p, generate_series(1, 100) g WHERE p.sku = 'O-1';
INSERT INTO demper.outbox (product_id, store_id, price, created_at)
SELECT p.id, :obs, 998, now() - interval '200 days' FROM demper.product p WHERE p.sku = 'O-1';
INSERT INTO demper.proposal (product_id, store_id, old_price, new_price, reason, status, decided_at)
SELECT p.id, :obs, 1000, 990, 'undercut', 'rejected', now() - (g || ' days')::interval
  FROM demper.product p, generate_series(1, 100) g WHERE p.sku = 'O-1';
SELECT demper.prune_batch('60 days', 25) AS removed_first_batch;
SELECT demper.prune_batch('60 days') AS removed_rest;
SELECT demper.prune_batch('60 days') AS removed_nothing_left;
SELECT (SELECT count(*) FROM demper.price_history WHERE store_id = :obs) AS history_left,
       (SELECT max(now() - changed_at) < interval '61 days' FROM demper.price_history WHERE store_id = :obs) AS only_recent_history,
       (SELECT count(*) FROM demper.outbox WHERE store_id = :obs AND status = 'done') AS finished_pushes_left,
       (SELECT count(*) FROM demper.outbox WHERE store_id = :obs AND status = 'pending') AS pending_pushes_left,
       (SELECT count(*) FROM demper.proposal WHERE store_id = :obs) AS proposals_left;
SELECT demper.prune_batch('0 days');
SELECT demper.prune_batch('1 day', 0);
DELETE FROM demper.store WHERE id = :obs;
