-- demper 0.5.0: a cheaper hot path.
--
-- Every UPDATE of a product row evaluates all of the table's CHECK constraints, the worker's two
-- updates per check included. The two format checks written with translate() cost about as much
-- as all the others together (bench/results/FINDINGS.md); they are now one C call each, with the
-- same meaning: a product code is 1 to 64 characters of A-Z a-z 0-9 _ -, a city id is 9 digits.
\echo Use "ALTER EXTENSION demper UPDATE TO '0.5.0'" to load this file. \quit

CREATE FUNCTION demper.is_product_code(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'demper_is_product_code'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION demper.is_product_code(text) IS
    'Whether a text is a valid marketplace product code: 1 to 64 characters of A-Z a-z 0-9 _ -';

CREATE FUNCTION demper.is_city_id(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'demper_is_city_id'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION demper.is_city_id(text) IS 'Whether a text is a valid marketplace city id: 9 digits';

ALTER TABLE demper.product
    DROP CONSTRAINT product_code_format,
    ADD CONSTRAINT product_code_format CHECK (demper.is_product_code(product_code)),
    DROP CONSTRAINT product_city_id_format,
    ADD CONSTRAINT product_city_id_format CHECK (city_id IS NULL OR demper.is_city_id(city_id));

-- Whoever writes products evaluates the constraints: demper_admin (and superusers). A role given
-- write access to demper.product some other way needs EXECUTE on these two as well.
REVOKE ALL ON FUNCTION demper.is_product_code(text), demper.is_city_id(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demper.is_product_code(text), demper.is_city_id(text) TO demper_admin;

-- The due queue moves out of the wide product row into demper.schedule, one narrow row per active
-- product. product_due_idx made both of the worker's updates of a product per check (the claim's
-- lease, the apply's next check) non-HOT: a new version of a ~1.3 kB row plus an entry in every
-- index of the table, unique ones included (~14 us per update). Now the index the claim scans is
-- on the narrow table, the product row's updates touch no indexed column and stay HOT (fillfactor
-- leaves room for the new version on the same page), and product.next_check_at stays what users
-- read and write: the worker writes both; a user's write reaches the schedule through the
-- trigger below.
CREATE TABLE demper.schedule (
    product_id    bigint      PRIMARY KEY REFERENCES demper.product (id) ON DELETE CASCADE,
    next_check_at timestamptz NOT NULL
);
COMMENT ON TABLE demper.schedule IS
    'The due queue: one row per active product (bot_active), kept equal to product.next_check_at';
CREATE INDEX schedule_due_idx ON demper.schedule (next_check_at);
INSERT INTO demper.schedule (product_id, next_check_at)
SELECT id, next_check_at FROM demper.product WHERE bot_active;
DROP INDEX demper.product_due_idx;
ALTER TABLE demper.product SET (fillfactor = 80);

-- sync_schedule keeps the schedule equal to what users write: a product's next check, and its
-- presence (active products only). The worker's own session fires no trigger
-- (session_replication_role = replica) and writes the schedule itself, in the same statements.
CREATE FUNCTION demper.sync_schedule() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.bot_active THEN
        INSERT INTO demper.schedule (product_id, next_check_at)
        VALUES (NEW.id, NEW.next_check_at)
        ON CONFLICT (product_id) DO UPDATE SET next_check_at = EXCLUDED.next_check_at;
    ELSIF TG_OP = 'UPDATE' THEN
        DELETE FROM demper.schedule WHERE product_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION demper.sync_schedule() SECURITY DEFINER;
REVOKE ALL ON FUNCTION demper.sync_schedule() FROM PUBLIC;

CREATE TRIGGER product_schedule_insert
    AFTER INSERT ON demper.product
    FOR EACH ROW
    WHEN (NEW.bot_active)
    EXECUTE FUNCTION demper.sync_schedule();
CREATE TRIGGER product_schedule_update
    AFTER UPDATE ON demper.product
    FOR EACH ROW
    WHEN (NEW.bot_active IS DISTINCT FROM OLD.bot_active
          OR NEW.next_check_at IS DISTINCT FROM OLD.next_check_at)
    EXECUTE FUNCTION demper.sync_schedule();

-- Only the worker (a superuser session) and the trigger's owner touch it.
REVOKE ALL ON demper.schedule FROM PUBLIC;

-- Backups: pg_dump leaves out the rows of an extension's tables unless they are marked as the
-- extension's configuration. Everything users own is marked, with the sequences of its ids (or a
-- restored database would hand out ids again). The due queue is not: it is derived from the
-- products, by the trigger above while a dump is restored, and by the worker when it starts.
SELECT pg_catalog.pg_extension_config_dump('demper.store', '');
SELECT pg_catalog.pg_extension_config_dump('demper.product', '');
SELECT pg_catalog.pg_extension_config_dump('demper.price_history', '');
SELECT pg_catalog.pg_extension_config_dump('demper.proposal', '');
SELECT pg_catalog.pg_extension_config_dump('demper.outbox', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('demper.store', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('demper.product', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('demper.price_history', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('demper.proposal', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('demper.outbox', 'id')::regclass, '');
