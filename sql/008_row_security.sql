-- Optional row-level security: with it on, a seller's role sees and edits only its own stores and
-- their products, history, proposals and pushes, also through the views and the SECURITY DEFINER
-- functions.
\set SHOW_CONTEXT never
CREATE ROLE demper_rls_seller_a;
CREATE ROLE demper_rls_seller_b;
GRANT demper_admin TO demper_rls_seller_a, demper_rls_seller_b;
INSERT INTO demper.store (name, merchant_id, owner_role) VALUES
    ('Seller A', 'RLSA', 'demper_rls_seller_a'), ('Seller B', 'RLSB', 'demper_rls_seller_b');
SELECT id AS store_a FROM demper.store WHERE merchant_id = 'RLSA' \gset
SELECT id AS store_b FROM demper.store WHERE merchant_id = 'RLSB' \gset
INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price) VALUES
    (:store_a, '701', 'A-ONE', 'M', 'B', 1000, 500), (:store_b, '702', 'B-ONE', 'M', 'B', 2000, 500);
INSERT INTO demper.proposal (product_id, store_id, old_price, new_price, reason)
SELECT id, store_id, 2000, 1900, 'undercut' FROM demper.product WHERE sku = 'B-ONE';
SELECT id AS proposal_b FROM demper.proposal WHERE store_id = :store_b \gset

-- Off (the default): every demper_admin sees every store.
SET ROLE demper_rls_seller_a;
SELECT count(*) AS stores_seen_without_rls FROM demper.store WHERE merchant_id LIKE 'RLS%';
RESET ROLE;

SELECT demper.enable_row_security(true);
SET ROLE demper_rls_seller_a;
SELECT name FROM demper.store WHERE merchant_id LIKE 'RLS%';
SELECT sku FROM demper.product WHERE sku IN ('A-ONE', 'B-ONE');
SELECT sku FROM demper.product_status WHERE sku IN ('A-ONE', 'B-ONE');
UPDATE demper.product SET min_price = 600 WHERE sku = 'B-ONE';
UPDATE demper.product SET min_price = 600 WHERE sku = 'A-ONE';
-- Another seller's proposal and store do not exist for this role (no_data_found, P0002).
\set VERBOSITY sqlstate
SELECT demper.approve(:proposal_b);
SELECT demper.reject(:proposal_b);
SELECT demper.price_feed(:store_b);
\set VERBOSITY default
SELECT demper.check_now(id) FROM demper.product WHERE sku = 'B-ONE';
RESET ROLE;
SELECT status FROM demper.proposal WHERE id = :proposal_b;
SELECT min_price FROM demper.product WHERE sku = 'B-ONE';

SET ROLE demper_rls_seller_b;
SELECT name FROM demper.store WHERE merchant_id LIKE 'RLS%';
SELECT demper.reject(:proposal_b);
RESET ROLE;
SELECT status, decided_by FROM demper.proposal WHERE id = :proposal_b;

-- The engine-wide figures cover every seller's stores: with row security on, a seller may not read
-- or reset them, through any function or the status view; its backlog leaves the engine's rate out.
-- A monitoring role (pg_monitor) and the superuser may.
CREATE ROLE demper_rls_monitor;
GRANT demper_reader, pg_monitor TO demper_rls_monitor;
SET ROLE demper_rls_seller_a;
SELECT demper.engine_figures_visible();
SELECT checks_per_second IS NULL AS rate_hidden, expected_catch_up IS NULL OR due_now = 0 AS catch_up_hidden
  FROM demper.backlog;
SELECT count(*) FROM demper.demper_stats();
\set VERBOSITY sqlstate
SELECT count(*) FROM demper.http_status();
SELECT count(*) FROM demper.latency_histogram();
SELECT count(*) FROM demper.worker_status();
SELECT count(*) FROM demper.status;
SELECT length(demper.metrics()) > 0;
SELECT demper.demper_stats_reset();
\set VERBOSITY default
RESET ROLE;
SET ROLE demper_rls_monitor;
SELECT demper.engine_figures_visible();
SELECT count(*) = 1 AS stats_row FROM demper.demper_stats();
SELECT count(*) >= 0 AS status_read FROM demper.status;
SELECT length(demper.metrics()) > 0 AS metrics_read;
SELECT checks_per_second IS NOT NULL AS rate_shown FROM demper.backlog;
RESET ROLE;
SELECT demper.engine_figures_visible() AS superuser_sees;

SELECT demper.enable_row_security(false);
-- Off again: one seller, every role granted the figures sees them.
SET ROLE demper_rls_seller_a;
SELECT demper.engine_figures_visible();
SELECT count(*) = 1 AS stats_row FROM demper.demper_stats();
SELECT length(demper.metrics()) > 0 AS metrics_read;
RESET ROLE;
DROP ROLE demper_rls_monitor;
SELECT demper.enable_row_security(NULL);
DELETE FROM demper.store WHERE merchant_id LIKE 'RLS%';
DROP ROLE demper_rls_seller_a;
DROP ROLE demper_rls_seller_b;
