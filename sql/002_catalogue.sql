-- The catalogue's rules: bad input is rejected with clear messages; a new product's first check
-- is spread over one check interval.
\set SHOW_CONTEXT never
INSERT INTO demper.store (name, merchant_id) VALUES ('Shop A', '30012345') RETURNING id, city_id, active;
INSERT INTO demper.store (name, merchant_id) VALUES ('Shop A again', '30012345');
INSERT INTO demper.store (name, merchant_id) VALUES ('Bad', 'has spaces');
INSERT INTO demper.store (name, merchant_id, city_id) VALUES ('Bad city', '30099999', 'Almaty');
INSERT INTO demper.store (name, merchant_id) VALUES ('   ', '30099998');

INSERT INTO demper.product (store_id, product_code, sku, price, min_price, max_price)
VALUES (1, '101234567', 'A-1', 151990, 140000, 160000) RETURNING id, step, bot_active, check_failures;

-- Bad prices, floors, ceilings and steps.
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (1, '1', 'A-2', 5, 10);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (1, '1', 'A-2', -100, 10);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (1, '1', 'A-2', 100, 9);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, max_price) VALUES (1, '1', 'A-2', 100, 500, 400);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, step) VALUES (1, '1', 'A-2', 100, 50, 0);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (1, '../etc', 'A-2', 100, 50);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (1, '1', 'A-1', 100, 50);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (99, '1', 'A-2', 100, 50);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (1, '1', ' ', 100, 50);
\set VERBOSITY terse
INSERT INTO demper.product (store_id, product_code, sku, price) VALUES (1, '1', 'A-2', 100);
\set VERBOSITY default
UPDATE demper.product SET min_price = 170000 WHERE sku = 'A-1';
UPDATE demper.product SET max_price = NULL WHERE sku = 'A-1' RETURNING max_price;

-- A bulk import is spread over the check interval (15 minutes by default), never all due at once.
SELECT demper.check_interval();
SELECT now() AS bulk_t0 \gset
INSERT INTO demper.product (store_id, product_code, sku, price, min_price)
SELECT 1, (200000 + g)::text, 'BULK-' || g, 1000, 500 FROM generate_series(1, 1000) g;
-- Measured from before the insert (this SELECT's now() is later than the insert's: a product due
-- within those milliseconds of its insertion would look early).
SELECT count(*) AS products,
       bool_and(next_check_at BETWEEN :'bulk_t0' AND now() + demper.check_interval()) AS all_within_interval,
       count(*) FILTER (WHERE next_check_at < :'bulk_t0'::timestamptz + interval '1 minute') < 200 AS not_bunched,
       count(DISTINCT width_bucket(extract(epoch FROM next_check_at - :'bulk_t0'::timestamptz), 0, 900, 15)) = 15
           AS every_minute_used
  FROM demper.product WHERE sku LIKE 'BULK-%';

-- check_now makes a product due at once; an unknown product is an error.
UPDATE demper.product SET next_check_at = now() + interval '1 hour' WHERE sku = 'A-1';
SELECT demper.check_now(id) FROM demper.product WHERE sku = 'A-1';
SELECT next_check_at <= now() AS due_now FROM demper.product WHERE sku = 'A-1';
SELECT demper.check_now(424242);
SELECT demper.check_now(NULL);

-- The status view lists products held at their floor first.
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (1, '555', 'FLOOR-1', 700, 700);
SELECT sku, price, min_price, at_floor FROM demper.product_status ORDER BY at_floor DESC, id LIMIT 2;
SELECT (SELECT sku FROM demper.product_status LIMIT 1) AS first_row;
SELECT due_now >= 1 AS something_due, active_products FROM demper.backlog;

-- The due queue (demper.schedule) follows what users write: one row per active product, with
-- the product's next check.
SELECT count(*) = (SELECT count(*) FROM demper.product WHERE bot_active) AS one_row_per_active_product,
       bool_and(s.next_check_at = p.next_check_at) AS same_next_check
  FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id;
UPDATE demper.product SET next_check_at = now() + interval '2 hours' WHERE sku = 'A-1';
SELECT s.next_check_at = p.next_check_at AS follows_next_check
  FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id WHERE p.sku = 'A-1';
UPDATE demper.product SET bot_active = false WHERE sku = 'A-1';
SELECT count(*) AS inactive_not_queued
  FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id WHERE p.sku = 'A-1';
UPDATE demper.product SET bot_active = true WHERE sku = 'A-1';
SELECT count(*) AS active_again_queued
  FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id WHERE p.sku = 'A-1';
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, bot_active)
VALUES (1, '556', 'PAUSED-1', 900, 500, false);
SELECT count(*) AS inserted_inactive_not_queued
  FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id WHERE p.sku = 'PAUSED-1';

-- With a backlog, the claim is an ordered range scan of the due index: its cost does not grow
-- with the table.
UPDATE demper.product SET next_check_at = now() - random() * interval '1 hour';
ANALYZE demper.product, demper.schedule;
EXPLAIN (COSTS OFF)
SELECT s.product_id FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
 WHERE s.next_check_at <= now() AND p.bot_active
 ORDER BY s.next_check_at LIMIT 100 FOR UPDATE OF s SKIP LOCKED;

-- A check under way keeps its lease in the due queue (0.6.0), not in the product row: check_now
-- leaves such a product alone, in_check() and the backlog report it, and a lease that ran out no
-- longer counts. (The worker's claim writes the lease as below; see the TAP tests for the real one.)
UPDATE demper.schedule s
   SET lease_token = 42, lease_until = now() + interval '1 minute',
       next_check_at = now() + interval '1 minute'
  FROM demper.product p WHERE p.id = s.product_id AND p.sku = 'A-1';
SELECT demper.in_check(id) AS leased_in_check FROM demper.product WHERE sku = 'A-1';
SELECT bool_or(demper.in_check(id)) AS others_in_check FROM demper.product WHERE sku <> 'A-1';
SELECT demper.check_now(id) FROM demper.product WHERE sku = 'A-1';
SELECT s.next_check_at > now() AS check_now_left_it_leased, s.lease_token
  FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id WHERE p.sku = 'A-1';
SELECT in_check, due_now, active_products FROM demper.backlog;
SELECT count(*) AS leases_in_queue FROM demper.due_queue() WHERE lease_until > now();
UPDATE demper.schedule SET lease_until = now() - interval '1 second' WHERE lease_token = 42;
SELECT demper.in_check(id) AS expired_lease_in_check FROM demper.product WHERE sku = 'A-1';
SELECT demper.check_now(id) FROM demper.product WHERE sku = 'A-1';
SELECT s.next_check_at <= now() AS due_after_check_now
  FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id WHERE p.sku = 'A-1';
SELECT demper.in_check(NULL) IS NULL AS null_is_null, demper.in_check(-1) AS unknown_not_in_check;
-- Readers see the queue through the view and the functions; the table itself is not theirs.
SET ROLE demper_reader;
SELECT in_check, active_products FROM demper.backlog;
SELECT demper.in_check(id) FROM demper.product WHERE sku = 'A-1';
SELECT count(*) FROM demper.schedule;
RESET ROLE;

-- repair_queue() rebuilds the queue after a load with triggers off: a product loaded that way gets
-- its row, a row left behind by a product switched off that way goes. With only_if_empty (what the
-- worker runs at its start) it does nothing while the queue has rows.
SET session_replication_role = replica;
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
VALUES (1, '557', 'LOADED-1', 900, 500, now());
UPDATE demper.product SET bot_active = false WHERE sku = 'A-1';
RESET session_replication_role;
SELECT (SELECT count(*) FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
         WHERE p.sku = 'LOADED-1') AS loaded_queued,
       (SELECT count(*) FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
         WHERE p.sku = 'A-1') AS inactive_queued;
SELECT * FROM demper.repair_queue(true);
SELECT * FROM demper.repair_queue();
SELECT (SELECT count(*) FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
         WHERE p.sku = 'LOADED-1') AS loaded_queued,
       (SELECT count(*) FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
         WHERE p.sku = 'A-1') AS inactive_queued;
SELECT * FROM demper.repair_queue();
-- An empty queue with active products (a restore with triggers disabled) is rebuilt at once.
SET session_replication_role = replica;
DELETE FROM demper.schedule;
RESET session_replication_role;
SELECT added = (SELECT count(*) FROM demper.product WHERE bot_active) AS all_added, removed
  FROM demper.repair_queue(true);
UPDATE demper.product SET bot_active = true WHERE sku = 'A-1';
SET ROLE demper_reader;
SELECT * FROM demper.repair_queue();
RESET ROLE;

-- Deleting a store removes its products, and their places in the due queue.
DELETE FROM demper.store WHERE merchant_id = '30012345';
SELECT count(*) FROM demper.product;
SELECT count(*) AS still_queued FROM demper.schedule;
