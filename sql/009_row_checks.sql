-- 0.5.0: the product table's format checks are C functions; they must mean exactly what the
-- translate() expressions they replace meant, for every input.
CREATE EXTENSION IF NOT EXISTS demper;
SET client_min_messages = warning;
-- Every single character (code points 1..1023 and some far ones), alone and inside otherwise
-- valid codes, plus lengths around the limits.
WITH chars AS (
    SELECT chr(c) AS ch FROM generate_series(1, 1023) c
    UNION ALL SELECT chr(c) FROM (VALUES (8364), (12354), (65279), (128512)) v(c)
), inputs AS (
    SELECT ch AS s FROM chars
    UNION ALL SELECT 'AB' || ch || '12' FROM chars
    UNION ALL SELECT repeat('a', n) FROM generate_series(0, 70) n
    UNION ALL SELECT repeat('9', n) FROM generate_series(0, 12) n
    UNION ALL SELECT repeat('é', n) FROM generate_series(1, 10) n
    UNION ALL VALUES ('ABC-123_x'), ('12345678 '), (' 123456789'), ('１２３４５６７８９'), ('75000000O')
)
SELECT count(*) AS inputs,
       count(*) FILTER (WHERE demper.is_product_code(s) IS DISTINCT FROM
           (length(s) BETWEEN 1 AND 64 AND
            translate(s, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-', '') = ''))
           AS code_mismatches,
       count(*) FILTER (WHERE demper.is_city_id(s) IS DISTINCT FROM
           (length(s) = 9 AND translate(s, '0123456789', '') = '')) AS city_mismatches,
       count(*) FILTER (WHERE demper.is_product_code(s)) AS valid_codes,
       count(*) FILTER (WHERE demper.is_city_id(s)) AS valid_cities
  FROM inputs;
SELECT demper.is_product_code(NULL) IS NULL AS code_null, demper.is_city_id(NULL) IS NULL AS city_null;
-- The constraints still refuse bad rows that bypass the validation trigger.
INSERT INTO demper.store (name, merchant_id) VALUES ('Checks', 'CHK1') RETURNING id AS store \gset
SET session_replication_role = replica;
\set VERBOSITY terse
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
VALUES (:store, 'bad code', 'S1', 100, 10, now());
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at, city_id)
VALUES (:store, 'good', 'S2', 100, 10, now(), '75000000');
INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at, city_id)
VALUES (:store, 'good', 'S3', 100, 10, now(), '750000000');
RESET session_replication_role;
SELECT count(*) AS inserted FROM demper.product WHERE store_id = :store;
DELETE FROM demper.store WHERE id = :store;
