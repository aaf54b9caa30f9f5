-- The pricing engine's SQL API (0.2.0): rule columns and their messages, sellers, working hours,
-- explain, and the approval flow.
\set SHOW_CONTEXT never
INSERT INTO demper.store (name, merchant_id, seller_id) VALUES ('North', 'N1', 'acme'), ('South', 'S1', 'acme')
RETURNING seller_id, timezone, approval_mode, change_budget_window;
SELECT id AS south FROM demper.store WHERE merchant_id = 'S1' \gset

-- Rule columns: defaults, then bad values with clear messages.
INSERT INTO demper.product (store_id, product_code, sku, price, min_price)
VALUES (:south, '100', 'P-1', 1000, 500)
RETURNING strategy, position, floor_action, no_competitor_action, step_percent, max_change_percent, priority;
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, strategy) VALUES (:south, '101', 'P-2', 1000, 500, 'cheapest');
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, floor_action) VALUES (:south, '101', 'P-2', 1000, 500, 'drop');
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, no_competitor_action) VALUES (:south, '101', 'P-2', 1000, 500, 'raise');
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, strategy, position) VALUES (:south, '101', 'P-2', 1000, 500, 'position', 0);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, step_percent) VALUES (:south, '101', 'P-2', 1000, 500, 75);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, max_change_percent) VALUES (:south, '101', 'P-2', 1000, 500, 0);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, min_margin_percent) VALUES (:south, '101', 'P-2', 1000, 500, 15);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, city_id) VALUES (:south, '101', 'P-2', 1000, 500, 'Astana');
UPDATE demper.product SET strategy = 'follow_second', step_percent = 1.5, cost_price = 700, min_margin_percent = 10
 WHERE sku = 'P-1' RETURNING strategy, step_percent, cost_price, min_margin_percent;

-- The same sku in another city is another listing with its own floor and price; twice the same
-- city is not.
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, city_id)
VALUES (:south, '100', 'P-1', 1100, 600, '710000000') RETURNING sku, city_id, price, min_price;
\set VERBOSITY terse
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, city_id)
VALUES (:south, '100', 'P-1', 1100, 600, '710000000');
\set VERBOSITY default

-- Stores: time zone, working hours, ignored merchants, competitor filters.
UPDATE demper.store SET timezone = 'Mars/Olympus' WHERE id = :south;
UPDATE demper.store SET work_start = '09:00' WHERE id = :south;
UPDATE demper.store SET work_start = '09:00', work_end = '09:00' WHERE id = :south;
UPDATE demper.store SET ignored_merchants = '{"bad,id"}' WHERE id = :south;
UPDATE demper.store SET max_delivery_duration = 'NEXT_WEEK' WHERE id = :south;
UPDATE demper.store SET outlier_share = 1.5 WHERE id = :south;
UPDATE demper.store SET change_budget = -1 WHERE id = :south;

-- Working hours in the store's time zone, including a window that passes midnight.
UPDATE demper.store SET work_start = '09:00', work_end = '21:00', timezone = 'Asia/Almaty' WHERE id = :south;
SELECT demper.in_working_hours(s, '2026-11-22 08:30+05') AS before_opening,
       demper.in_working_hours(s, '2026-11-22 09:00+05') AS at_opening,
       demper.in_working_hours(s, '2026-11-22 20:59+05') AS before_closing,
       demper.in_working_hours(s, '2026-11-22 21:00+05') AS at_closing,
       demper.next_opening(s, '2026-11-22 22:00+05') AT TIME ZONE 'Asia/Almaty' AS opens_next_morning,
       demper.next_opening(s, '2026-11-22 07:00+05') AT TIME ZONE 'Asia/Almaty' AS opens_this_morning
  FROM demper.store s WHERE id = :south;
UPDATE demper.store SET work_start = '20:00', work_end = '02:00' WHERE id = :south;
SELECT demper.in_working_hours(s, '2026-11-22 23:00+05') AS late_evening,
       demper.in_working_hours(s, '2026-11-23 01:59+05') AS after_midnight,
       demper.in_working_hours(s, '2026-11-23 12:00+05') AS noon
  FROM demper.store s WHERE id = :south;
UPDATE demper.store SET work_start = NULL, work_end = NULL WHERE id = :south;
SELECT demper.in_working_hours(s) AS always FROM demper.store s WHERE id = :south;

-- explain: what the last check saw and decided (here: never checked yet).
SELECT demper.explain(id) - 'last_check_time' - 'product_id' AS explained FROM demper.product WHERE sku = 'P-1' AND city_id IS NULL;
UPDATE demper.product SET last_explain = '{"reason": "undercut", "target": 999, "clamps": []}'
 WHERE sku = 'P-1' AND city_id IS NULL;
SELECT demper.explain(id) ->> 'reason' AS reason, demper.explain(id) -> 'target' AS target
  FROM demper.product WHERE sku = 'P-1' AND city_id IS NULL;
SELECT demper.explain(987654);
SELECT demper.explain(NULL);

-- Approval: a pending proposal is applied once (with history), or rejected; a stale one is not
-- applied.
INSERT INTO demper.proposal (product_id, store_id, old_price, new_price, competitor_price, reason)
SELECT id, store_id, 1000, 950, 951, 'undercut' FROM demper.product WHERE sku = 'P-1' AND city_id IS NULL
RETURNING status;
\set VERBOSITY terse
INSERT INTO demper.proposal (product_id, store_id, old_price, new_price, competitor_price, reason)
SELECT id, store_id, 1000, 940, 941, 'undercut' FROM demper.product WHERE sku = 'P-1' AND city_id IS NULL;
\set VERBOSITY default
SELECT demper.approve(id) FROM demper.proposal WHERE status = 'pending';
SELECT price FROM demper.product WHERE sku = 'P-1' AND city_id IS NULL;
SELECT old_price, new_price, competitor_price, reason FROM demper.price_history;
SELECT demper.approve(id) FROM demper.proposal;
SELECT demper.reject(id) FROM demper.proposal;
INSERT INTO demper.proposal (product_id, store_id, old_price, new_price, reason)
SELECT id, store_id, 1000, 900, 'undercut' FROM demper.product WHERE sku = 'P-1' AND city_id IS NULL;
SELECT demper.approve(id) FROM demper.proposal WHERE status = 'pending';
SELECT status FROM demper.proposal ORDER BY id;
SELECT price FROM demper.product WHERE sku = 'P-1' AND city_id IS NULL;
INSERT INTO demper.proposal (product_id, store_id, old_price, new_price, reason)
SELECT id, store_id, 950, 900, 'undercut' FROM demper.product WHERE sku = 'P-1' AND city_id IS NULL;
SELECT demper.reject(id) FROM demper.proposal WHERE status = 'pending';
SELECT status, decided_by IS NOT NULL AS decided FROM demper.proposal ORDER BY id;
SELECT demper.approve(424242);
SELECT demper.reject(424242);

-- The status view shows city, strategy and mode.
SELECT sku, city_id, strategy, approval_mode, in_working_hours FROM demper.product_status
 WHERE sku = 'P-1' ORDER BY city_id;

DELETE FROM demper.store WHERE seller_id = 'acme';
