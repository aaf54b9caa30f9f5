-- Hostile input to the SQL API (issue 7): every function called with NULLs, negative, absurd and
-- wrongly typed arguments; absurd values in every input column of the catalogue; a role without
-- rights (or with reader or admin rights only) reaching for credentials, another store, forged
-- history or admin functions; SSRF through the settings and product codes. Each attempt either
-- works as documented or fails with a clear error; none crashes the backend, changes a price or
-- reveals a credential.
\set SHOW_CONTEXT never
INSERT INTO demper.store (name, merchant_id) VALUES ('Hostile A', 'HOSTILE-A'), ('Hostile B', 'HOSTILE-B');
SELECT id AS store_a FROM demper.store WHERE merchant_id = 'HOSTILE-A' \gset
SELECT id AS store_b FROM demper.store WHERE merchant_id = 'HOSTILE-B' \gset
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, max_price)
VALUES (:store_a, '7001', 'H-1', 5000, 1000, 9000) RETURNING price, min_price, max_price;
SELECT id AS prod_a FROM demper.product WHERE sku = 'H-1' \gset
INSERT INTO demper.product (store_id, product_code, sku, price, min_price)
VALUES (:store_b, '7002', 'H-2', 6000, 1000);
SELECT id AS prod_b FROM demper.product WHERE sku = 'H-2' \gset

-- 1. Functions with NULLs: a clear error, or NULL from a STRICT function; never a crash.
SELECT demper.check_now(NULL);
SELECT demper.explain(NULL);
SELECT demper.approve(NULL);
SELECT demper.reject(NULL);
SELECT demper.set_credentials(:store_a, NULL, 'sid');
SELECT demper.set_credentials(:store_a, 'session', NULL);
SELECT demper.rotate_credentials_key(NULL) IS NULL AS rotate_null_is_null;
SELECT demper.price_feed(NULL) IS NULL AS feed_null_is_null;
SELECT demper.in_working_hours(NULL::demper.store) AS hours_of_null_store;
SELECT demper.in_working_hours(s, NULL) AS hours_at_null_time FROM demper.store s WHERE id = :store_a;
SELECT demper.next_opening(NULL::demper.store) = now() AS null_store_opens_now;

-- 2. Negative, zero and absurd ids: "does not exist", nothing changed.
SELECT demper.check_now(-1);
SELECT demper.check_now(0);
SELECT demper.check_now(9223372036854775807);
SELECT demper.explain(-9223372036854775808);
SELECT demper.approve(-1);
SELECT demper.reject(0);
SELECT demper.price_feed(-1);
SELECT demper.set_credentials(-1, 'session', 'sid');

-- 3. Wrong types: refused by the parser before any demper code runs.
SELECT demper.check_now('abc');
SELECT demper.check_now(1.5);
SELECT demper.check_now(99999999999999999999);
SELECT demper.check_now(true);
SELECT demper.explain('1; DROP TABLE demper.product');
SELECT demper.approve(ARRAY[1]);
SELECT demper.price_feed('{"store":1}'::jsonb);
SELECT demper.set_credentials('x', 'session', 'sid');
SELECT demper.demper_stats(1);
SELECT demper.check_now(1, 2);

-- 4. Absurd values in the catalogue's inputs (002 and 004 cover the ordinary bad values).
-- Bigint extremes and overflow.
UPDATE demper.product SET price = 9223372036854775807 WHERE id = :prod_a RETURNING price;
UPDATE demper.product SET price = 9223372036854775808 WHERE id = :prod_a;
UPDATE demper.product SET price = -9223372036854775808 WHERE id = :prod_a;
UPDATE demper.product SET price = 1e300 WHERE id = :prod_a;
UPDATE demper.product SET price = 'NaN'::float8 WHERE id = :prod_a;
UPDATE demper.product SET price = 'Infinity'::float8 WHERE id = :prod_a;
UPDATE demper.product SET price = 5000.4 WHERE id = :prod_a RETURNING price;
UPDATE demper.product SET price = 5000 WHERE id = :prod_a;
UPDATE demper.product SET min_price = 9223372036854775807 WHERE id = :prod_a;
UPDATE demper.product SET max_price = 9223372036854775807, step = 9223372036854775807 WHERE id = :prod_a RETURNING max_price, step;
UPDATE demper.product SET max_price = 9000, step = 1 WHERE id = :prod_a;
UPDATE demper.product SET cost_price = 9223372036854775807, min_margin_percent = 1000 WHERE id = :prod_a RETURNING cost_price, min_margin_percent;
UPDATE demper.product SET cost_price = NULL, min_margin_percent = NULL WHERE id = :prod_a;
UPDATE demper.product SET min_margin_percent = 'NaN' WHERE id = :prod_a;
UPDATE demper.product SET step_percent = 'NaN' WHERE id = :prod_a;
UPDATE demper.product SET max_change_percent = 'NaN' WHERE id = :prod_a;
UPDATE demper.product SET step_percent = 1e-300 WHERE id = :prod_a RETURNING step_percent > 0 AS tiny_step_percent_accepted;
UPDATE demper.product SET step_percent = NULL WHERE id = :prod_a;
UPDATE demper.product SET position = 2147483647 WHERE id = :prod_a;
UPDATE demper.product SET position = -2147483648 WHERE id = :prod_a;
-- Intervals: negative, zero, huge, infinite (terse: a failing row's text holds ids and times).
\set VERBOSITY terse
UPDATE demper.product SET check_interval = '-1 hour' WHERE id = :prod_a;
UPDATE demper.product SET check_interval = '0' WHERE id = :prod_a;
UPDATE demper.product SET check_interval = '1000 years' WHERE id = :prod_a;
UPDATE demper.store SET change_budget_window = '-1 minute' WHERE id = :store_a;
UPDATE demper.store SET change_budget_window = '0' WHERE id = :store_a;
UPDATE demper.store SET change_budget = 2147483647 WHERE id = :store_a RETURNING change_budget;
UPDATE demper.store SET change_budget = NULL WHERE id = :store_a;
UPDATE demper.product SET next_check_at = 'infinity' WHERE id = :prod_a RETURNING next_check_at;
UPDATE demper.product SET next_check_at = '-infinity' WHERE id = :prod_a RETURNING next_check_at;
UPDATE demper.product SET next_check_at = NULL WHERE id = :prod_a;
UPDATE demper.product SET next_check_at = now() + interval '1 hour' WHERE id = :prod_a;
-- NULL in every NOT NULL input.
UPDATE demper.product SET price = NULL WHERE id = :prod_a;
UPDATE demper.product SET min_price = NULL WHERE id = :prod_a;
UPDATE demper.product SET step = NULL WHERE id = :prod_a;
UPDATE demper.product SET product_code = NULL WHERE id = :prod_a;
UPDATE demper.product SET sku = NULL WHERE id = :prod_a;
UPDATE demper.product SET bot_active = NULL WHERE id = :prod_a;
UPDATE demper.product SET strategy = NULL WHERE id = :prod_a;
UPDATE demper.product SET position = NULL WHERE id = :prod_a;
UPDATE demper.product SET store_id = NULL WHERE id = :prod_a;
UPDATE demper.store SET merchant_id = NULL WHERE id = :store_a;
UPDATE demper.store SET timezone = NULL WHERE id = :store_a;
UPDATE demper.store SET ignored_merchants = NULL WHERE id = :store_a;
UPDATE demper.store SET push_mode = NULL WHERE id = :store_a;
\set VERBOSITY default
-- Strings: enormous, control characters, quotes, Unicode look-alikes, injection attempts.
UPDATE demper.product SET product_code = repeat('9', 65) WHERE id = :prod_a;
UPDATE demper.product SET product_code = '7001' || chr(10) || 'Host: evil' WHERE id = :prod_a;
UPDATE demper.product SET product_code = '７００１' WHERE id = :prod_a;
UPDATE demper.product SET product_code = '7001'' OR ''1''=''1' WHERE id = :prod_a;
UPDATE demper.product SET strategy = 'undercut; DROP TABLE demper.product' WHERE id = :prod_a;
UPDATE demper.product SET floor_action = '' WHERE id = :prod_a;
UPDATE demper.product SET city_id = '７５００００００0' WHERE id = :prod_a;
UPDATE demper.product SET sku = repeat('x', 100000) WHERE id = :prod_a RETURNING length(sku);
UPDATE demper.product SET sku = 'H-1' WHERE id = :prod_a;
-- A sku of tabs and newlines is as blank as one of spaces (it reaches the feed and the pushes).
UPDATE demper.product SET sku = chr(9) || chr(10) || ' ' WHERE id = :prod_a;
UPDATE demper.product SET sku = 'H-1' WHERE id = :prod_a;
UPDATE demper.store SET merchant_id = 'HOSTILE-A''; DROP TABLE demper.store; --' WHERE id = :store_a;
UPDATE demper.store SET merchant_id = repeat('M', 65) WHERE id = :store_a;
UPDATE demper.store SET timezone = '../../../etc/passwd' WHERE id = :store_a;
UPDATE demper.store SET timezone = 'Mars/Olympus_Mons' WHERE id = :store_a;
UPDATE demper.store SET ignored_merchants = ARRAY[NULL] WHERE id = :store_a;
UPDATE demper.store SET ignored_merchants = ARRAY['ok', 'evil,comma'] WHERE id = :store_a;
UPDATE demper.store SET max_delivery_duration = 'YESTERDAY' WHERE id = :store_a;
UPDATE demper.store SET outlier_share = 'NaN' WHERE id = :store_a;
UPDATE demper.store SET outlier_share = 1 WHERE id = :store_a;
\set VERBOSITY terse
UPDATE demper.store SET push_mode = 'ftp' WHERE id = :store_a;
\set VERBOSITY default
UPDATE demper.store SET work_start = '09:00' WHERE id = :store_a;
-- 24:00 to 00:00 is the same time of day: an empty window, the store would never be checked.
UPDATE demper.store SET work_start = '24:00', work_end = '00:00' WHERE id = :store_a;
UPDATE demper.store SET work_start = NULL, work_end = NULL WHERE id = :store_a;
-- After all of it the two products are exactly as inserted (price 5000 and 6000) and nothing
-- reached the history or the outbox.
SELECT sku, price, min_price, max_price, step, product_code, strategy, position
  FROM demper.product WHERE id IN (:prod_a, :prod_b) ORDER BY sku;
SELECT count(*) AS history_rows FROM demper.price_history WHERE product_id IN (:prod_a, :prod_b);
SELECT count(*) AS outbox_rows FROM demper.outbox WHERE product_id IN (:prod_a, :prod_b);

-- 5. Every function of the extension called with all-NULL arguments, generically (so that a
-- function added later is covered too): none may fail with an internal error (SQLSTATE class XX)
-- or crash the backend; the outcomes are counted by SQLSTATE class.
CREATE TEMP TABLE null_sweep (fn text, outcome text);
DO $$
DECLARE
    f record;
    state text;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS sig, p.proname, p.pronargs, p.prorettype
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'demper' AND p.prokind = 'f'
              ORDER BY 1::text
    LOOP
        BEGIN
            EXECUTE format('SELECT %s(%s)', f.sig::oid::regproc,
                           (SELECT coalesce(string_agg(format('NULL::%s', t::regtype), ', '), '')
                              FROM unnest((SELECT proargtypes FROM pg_proc WHERE oid = f.sig::oid)::oid[]) t));
            INSERT INTO null_sweep VALUES (f.sig::text, 'ok');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
            INSERT INTO null_sweep VALUES (f.sig::text, state);
        END;
    END LOOP;
END
$$;
SELECT count(*) > 10 AS functions_swept,
       count(*) FILTER (WHERE outcome LIKE 'XX%') AS internal_errors,
       count(*) FILTER (WHERE outcome = '0A000') AS trigger_only_refused
  FROM null_sweep;
SELECT fn, outcome FROM null_sweep WHERE outcome LIKE 'XX%' OR outcome LIKE '58%' ORDER BY fn;
SELECT count(*) AS history_rows_after_sweep FROM demper.price_history WHERE product_id IN (:prod_a, :prod_b);
SELECT price FROM demper.product WHERE id = :prod_a;

-- 6. Roles. A stranger (no demper role), a reader and an admin try what they must not.
CREATE ROLE demper_hostile_stranger;
CREATE ROLE demper_hostile_reader;
GRANT demper_reader TO demper_hostile_reader;
CREATE ROLE demper_hostile_admin;
GRANT demper_admin TO demper_hostile_admin;
-- The superuser seals nothing here (no key file in this instance), so give store A a fake
-- sealed blob to aim at.
UPDATE demper.store SET credentials = '\xdeadbeef', credentials_key = 'fp-test' WHERE id = :store_a;

SET ROLE demper_hostile_stranger;
\set VERBOSITY terse
SELECT credentials FROM demper.store;
SELECT * FROM demper.product_status;
SELECT * FROM demper.push_status;
SELECT demper.explain(:prod_a);
SELECT demper.http_status();
SELECT demper.wake_workers();
SELECT demper.check_now(:prod_a);
SELECT demper.price_feed(:store_a);
SELECT demper.set_credentials(:store_a, 'a', 'b');
UPDATE demper.product SET price = 10 WHERE id = :prod_a;
-- Calling the trigger functions or reading through SECURITY DEFINER functions does not help.
SELECT demper.enqueue_push();
SELECT demper.approve(1);
RESET ROLE;
\set VERBOSITY default

SET ROLE demper_hostile_reader;
SELECT credentials FROM demper.store WHERE id = :store_a;
SELECT * FROM demper.store WHERE id = :store_a;
SELECT store_id = :store_a AS is_store_a, has_credentials, credentials_key FROM demper.push_status WHERE store_id = :store_a;
SELECT count(*) AS reader_rows FROM demper.product_status WHERE id IN (:prod_a, :prod_b);
-- Changing any store, product, proposal, history or outbox row, or calling admin functions.
UPDATE demper.store SET active = false WHERE id = :store_b;
UPDATE demper.product SET price = 10 WHERE id = :prod_b;
DELETE FROM demper.product WHERE id = :prod_b;
INSERT INTO demper.price_history (product_id, store_id, old_price, new_price, reason) VALUES (:prod_b, :store_b, 6000, 10, 'forged');
UPDATE demper.outbox SET status = 'done';
SELECT demper.check_now(:prod_b);
SELECT demper.approve(1);
SELECT demper.reject(1);
SELECT demper.demper_stats_reset();
SELECT demper.set_credentials(:store_b, 'a', 'b');
SELECT demper.rotate_credentials_key('/etc/passwd');
SELECT demper.price_feed(:store_b);
-- Settings: the reader cannot widen the allowed hosts or point the worker elsewhere.
SET demper.allowed_hosts = '*';
SET demper.offers_url = 'http://169.254.169.254/latest/meta-data/{product_code}';
ALTER SYSTEM SET demper.allowed_hosts = '169.254.169.254';
ALTER SYSTEM SET demper.allow_private_addresses = on;
SELECT current_setting('demper.allowed_hosts');
RESET ROLE;

SET ROLE demper_hostile_admin;
-- The admin configures, but cannot read or forge credentials, history or pushes, nor reach the
-- superuser-only functions and settings.
SELECT credentials FROM demper.store WHERE id = :store_a;
SELECT credentials_key FROM demper.store WHERE id = :store_a;
UPDATE demper.store SET credentials = '\x00' WHERE id = :store_b;
UPDATE demper.store SET credentials_key = 'forged' WHERE id = :store_b;
UPDATE demper.store SET credentials = s.credentials FROM demper.store s WHERE s.id = :store_a AND demper.store.id = :store_b;
INSERT INTO demper.price_history (product_id, store_id, old_price, new_price, reason) VALUES (:prod_b, :store_b, 6000, 10, 'forged');
DELETE FROM demper.price_history;
UPDATE demper.outbox SET status = 'done';
DELETE FROM demper.outbox;
UPDATE demper.proposal SET new_price = 10;
SELECT demper.rotate_credentials_key('/etc/passwd');
SELECT demper.enqueue_push();
ALTER SYSTEM SET demper.allowed_hosts = '*';
SET demper.allowed_hosts = '*';
ALTER SYSTEM SET demper.allow_private_addresses = on;
SET demper.allow_private_addresses = on;
SET demper.credentials_key_file = '/tmp/attacker.key';
SET demper.offers_url = 'http://127.0.0.1:22/{product_code}';
-- Exfiltrating credentials by moving another store's sealed blob is impossible (no SELECT on
-- the column); the admin's rights it does have work.
UPDATE demper.product SET min_price = 1500 WHERE id = :prod_b RETURNING min_price;
SELECT demper.check_now(:prod_b);
RESET ROLE;

-- Nothing of the above reached the credentials, the history or the prices.
SELECT id = :store_a AS is_store_a, credentials, credentials_key FROM demper.store WHERE id IN (:store_a, :store_b) ORDER BY id;
SELECT count(*) AS history_rows FROM demper.price_history WHERE product_id IN (:prod_a, :prod_b);
SELECT sku, price FROM demper.product WHERE id IN (:prod_a, :prod_b) ORDER BY sku;

-- 7. SSRF through the settings (superuser): schemes other than http(s), URLs without a host and
-- placeholders other than {product_code} are refused when set; a host outside allowed_hosts is
-- accepted here and refused by the worker at request time (TAP 013_marketplace_outage). Product
-- codes cannot smuggle a path, a host or a header into the URL template.
ALTER SYSTEM SET demper.offers_url = 'file:///etc/passwd?{product_code}';
ALTER SYSTEM SET demper.offers_url = 'gopher://127.0.0.1:6379/_{product_code}';
ALTER SYSTEM SET demper.offers_url = 'dict://127.0.0.1:11211/{product_code}';
ALTER SYSTEM SET demper.offers_url = 'http:///{product_code}';
ALTER SYSTEM SET demper.offers_url = 'http://kaspi.kz/{host}/{product_code}';
ALTER SYSTEM SET demper.push_url = 'file:///etc/shadow';
ALTER SYSTEM SET demper.push_url = 'ldap://169.254.169.254/';
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (:store_a, '1@169.254.169.254', 'S-1', 100, 50);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (:store_a, '1/../../latest/meta-data', 'S-2', 100, 50);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (:store_a, '1?redirect=http://127.0.0.1', 'S-3', 100, 50);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (:store_a, '1%2F..%2F', 'S-4', 100, 50);
INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (:store_a, '1#', 'S-5', 100, 50);
SELECT count(*) AS smuggled_products FROM demper.product WHERE sku LIKE 'S-%';

DROP ROLE demper_hostile_stranger;
DROP ROLE demper_hostile_reader;
DROP ROLE demper_hostile_admin;
DELETE FROM demper.store WHERE id IN (:store_a, :store_b);
