-- 0.7.0: the adaptive schedule's settings on stores and products: defaults, clear errors for bad
-- values (also when the trigger is bypassed), and who may set them.
CREATE EXTENSION IF NOT EXISTS demper;
SET client_min_messages = warning;
INSERT INTO demper.store (name, merchant_id) VALUES ('Schedule', 'SCHED1') RETURNING id AS store \gset
SELECT war_policy, check_interval_min, check_interval_max FROM demper.store WHERE id = :store;
-- Bounds and policies a seller may set.
UPDATE demper.store SET check_interval_min = '1 second', check_interval_max = '7 days', war_policy = 'hold'
 WHERE id = :store;
UPDATE demper.store SET war_policy = 'keep_margin' WHERE id = :store;
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, check_interval_min, check_interval_max)
VALUES (:store, '100', 'S-1', 5000, 1000, '45 seconds', '45 seconds') RETURNING id AS product \gset
-- Errors: crossed bounds, out of range, unknown policy; each names the row and says what to do.
\set VERBOSITY default
UPDATE demper.store SET check_interval_min = '2 hours', check_interval_max = '1 hour' WHERE id = :store;
UPDATE demper.store SET check_interval_max = '8 days' WHERE id = :store;
UPDATE demper.store SET check_interval_min = '0.5 seconds' WHERE id = :store;
UPDATE demper.store SET war_policy = 'retaliate' WHERE id = :store;
UPDATE demper.store SET war_policy = NULL WHERE id = :store;
UPDATE demper.product SET check_interval_min = '10 minutes', check_interval_max = '1 minute' WHERE id = :product;
UPDATE demper.product SET check_interval_max = '-1 minute' WHERE id = :product;
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, check_interval_min)
VALUES (:store, '101', 'S-2', 5000, 1000, '30 days');
-- With the triggers off (a restore, say), the constraints refuse the same rows.
\set VERBOSITY terse
SET session_replication_role = replica;
UPDATE demper.store SET war_policy = 'retaliate' WHERE id = :store;
UPDATE demper.product SET check_interval_min = '10 minutes', check_interval_max = '1 minute' WHERE id = :product;
RESET session_replication_role;
-- Nothing was changed by the failed statements.
SELECT war_policy, check_interval_min, check_interval_max FROM demper.store WHERE id = :store;
SELECT check_interval_min, check_interval_max, schedule_state, war_rival FROM demper.product WHERE id = :product;
-- The store status counts products at war (the worker writes war_rival; here by hand).
UPDATE demper.product SET war_rival = 'RIVAL1' WHERE id = :product;
SELECT store, products_at_war, war_policy FROM demper.store_stats WHERE store_id = :store;
SELECT sku, war_rival FROM demper.product_status WHERE id = :product;
-- Admins set the bounds and policy; readers see them; the worker may write what a check taught.
SELECT has_column_privilege('demper_admin', 'demper.store', 'war_policy', 'UPDATE') AS admin_sets_policy,
       has_column_privilege('demper_admin', 'demper.store', 'check_interval_max', 'UPDATE') AS admin_sets_bounds,
       has_column_privilege('demper_reader', 'demper.store', 'war_policy', 'SELECT') AS reader_sees_policy,
       has_column_privilege('demper_reader', 'demper.store', 'war_policy', 'UPDATE') AS reader_sets_policy,
       has_column_privilege('demper_worker', 'demper.product', 'schedule_state', 'UPDATE') AS worker_writes_state,
       has_column_privilege('demper_worker', 'demper.schedule', 'base_interval_s', 'UPDATE') AS worker_writes_base,
       has_column_privilege('demper_worker', 'demper.store', 'war_policy', 'UPDATE') AS worker_sets_policy;
-- The pressure is 1 while demper.adaptive_intervals is off.
SELECT schedule_pressure FROM demper.demper_stats();
DELETE FROM demper.store WHERE id = :store;
