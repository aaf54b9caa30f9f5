-- Publishing (0.3.0): the XML price feed, credentials, the outbox, and the privilege model.
\set SHOW_CONTEXT never
INSERT INTO demper.store (name, merchant_id, feed_store_ids) VALUES ('Shop & "Sons"', 'FEED1', '{PP1,PP2}');
SELECT id AS feed_store FROM demper.store WHERE merchant_id = 'FEED1' \gset

-- An empty catalogue is never served: it would take every offer off sale.
SELECT demper.price_feed(:feed_store);

INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price)
VALUES (:feed_store, '501', 'A-1', 'Phone <X> 128GB', 'Acme & Co', 151990, 100000),
       (:feed_store, '502', 'B-2', 'Case ''Slim''', 'Acme', 4990, 1000);
INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price, city_id)
VALUES (:feed_store, '501', 'A-1', 'Phone <X> 128GB', 'Acme & Co', 149990, 100000, '710000000');
SELECT regexp_replace(demper.price_feed(:feed_store), 'date="[^"]*"', 'date="..."');

-- A product without brand, or a sku longer than 20 characters, makes the feed partial: refused.
INSERT INTO demper.product (store_id, product_code, sku, model, price, min_price)
VALUES (:feed_store, '503', 'NO-BRAND', 'Cable', 990, 500);
INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price)
VALUES (:feed_store, '504', 'SKU-LONGER-THAN-TWENTY', 'Charger', 'Acme', 2990, 1000);
SELECT demper.price_feed(:feed_store);
SELECT demper.price_feed(424242);

-- Credentials need the key file setting; nothing about the cookies is echoed back.
SELECT demper.set_credentials(:feed_store, 'session-cookie', 'sid-cookie');
SELECT demper.set_credentials(NULL, 'a', 'b');

-- A price change of a store that publishes through the API writes one pending push, refreshed by
-- later changes (coalescing); stores that do not publish write none.
UPDATE demper.store SET push_mode = 'api' WHERE id = :feed_store;
UPDATE demper.product SET price = 150000 WHERE sku = 'A-1' AND city_id IS NULL;
UPDATE demper.product SET price = 149000 WHERE sku = 'A-1' AND city_id IS NULL;
SELECT o.price, o.status, o.attempts FROM demper.outbox o JOIN demper.product p ON p.id = o.product_id
 WHERE p.sku = 'A-1' AND p.city_id IS NULL;
UPDATE demper.store SET push_mode = 'none' WHERE id = :feed_store;
UPDATE demper.product SET price = 4890 WHERE sku = 'B-2';
SELECT count(*) AS pushes_for_b2 FROM demper.outbox o JOIN demper.product p ON p.id = o.product_id WHERE p.sku = 'B-2';
SELECT store, push_mode, has_credentials, needs_login, pending FROM demper.push_status WHERE store_id = :feed_store;

-- Privileges: a reader sees status but no credentials and changes nothing; an admin configures
-- but cannot read credentials either; a role with neither sees nothing.
CREATE ROLE demper_regress_reader;
GRANT demper_reader TO demper_regress_reader;
CREATE ROLE demper_regress_admin;
GRANT demper_admin TO demper_regress_admin;
SET ROLE demper_regress_reader;
SELECT count(*) > 0 AS reader_sees_status FROM demper.product_status;
SELECT checks_started >= 0 AS reader_sees_stats FROM demper.demper_stats();
SELECT name FROM demper.store WHERE id = :feed_store;
SELECT credentials FROM demper.store;
UPDATE demper.product SET price = 1000 WHERE sku = 'B-2';
SELECT demper.set_credentials(:feed_store, 'a', 'b');
SELECT demper.demper_stats_reset();
RESET ROLE;
SET ROLE demper_regress_admin;
UPDATE demper.product SET min_price = 1500 WHERE sku = 'B-2' RETURNING min_price;
UPDATE demper.store SET approval_mode = true WHERE id = :feed_store RETURNING approval_mode;
SELECT credentials FROM demper.store;
UPDATE demper.store SET credentials = 'x' WHERE id = :feed_store;
SELECT demper.set_credentials(:feed_store, 'a', 'b');
SELECT demper.rotate_credentials_key('/tmp/old.key');
RESET ROLE;
DROP ROLE demper_regress_reader;
DROP ROLE demper_regress_admin;
DELETE FROM demper.store WHERE id = :feed_store;
