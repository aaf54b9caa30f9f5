-- demper_stats(): one row of counters from shared memory, and its reset.
SELECT p.proname, pg_get_function_result(p.oid)
  FROM pg_proc p WHERE p.oid = 'demper.demper_stats'::regproc;
SELECT count(*) AS rows FROM demper.demper_stats();
SELECT demper.demper_stats_reset();
SELECT checks_started, checks_ok, checks_failed, price_changes, floor_hits, http_requests,
       stats_reset <= now() AS reset_in_past, stats_reset > now() - interval '1 minute' AS reset_recent
  FROM demper.demper_stats();
SELECT demper.wake_workers();
