-- demper 0.6.0: the claim writes only the due queue.
--
-- In 0.5.0 the claim locked and updated two rows per product: the narrow schedule row (its due
-- time) and the ~1.3 kB product row (the lease). The lease now lives in the schedule row, so the
-- claim locks and writes one narrow row per product and only reads the product (bench: a claim of
-- 1,000 went from ~18 ms to ~11 ms). product.lease_token and product.lease_until are gone; what a
-- user wants to know ("is it in check right now?") is answered by demper.in_check(id) and the
-- backlog view, which read the schedule for them.
--
-- price_history loses its index on changed_at alone: every price change paid an entry in it, and
-- only retention used it. Retention now goes store by store through (store_id, changed_at).
\echo Use "ALTER EXTENSION demper UPDATE TO '0.6.0'" to load this file. \quit

ALTER TABLE demper.schedule
    ADD COLUMN lease_token bigint,
    ADD COLUMN lease_until timestamptz;
COMMENT ON TABLE demper.schedule IS
    'The due queue: one row per active product (bot_active), its next check and, while a worker checks it, the lease';
COMMENT ON COLUMN demper.schedule.lease_until IS
    'While a worker checks the product: when its claim runs out (then any worker may claim it again)';

-- Checks under way at the upgrade keep their lease (the worker stops at a schema change anyway).
UPDATE demper.schedule s
   SET lease_token = p.lease_token, lease_until = p.lease_until
  FROM demper.product p
 WHERE p.id = s.product_id AND p.lease_until > now();

-- Whether a check of the product is under way: its lease, read for callers who may not read the
-- schedule (nothing of it is granted; it has no store to filter rows by).
CREATE FUNCTION demper.in_check(product_id bigint) RETURNS boolean
LANGUAGE sql STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM demper.schedule s
                    WHERE s.product_id = in_check.product_id AND s.lease_until > now())
$$;
ALTER FUNCTION demper.in_check(bigint) SECURITY DEFINER;
COMMENT ON FUNCTION demper.in_check(bigint) IS 'Whether a worker is checking the product right now';

-- The due queue's rows, for views that join them to the products a caller may see.
CREATE FUNCTION demper.due_queue() RETURNS TABLE (product_id bigint, next_check_at timestamptz,
                                                  lease_until timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.product_id, s.next_check_at, s.lease_until FROM demper.schedule s
$$;
ALTER FUNCTION demper.due_queue() SECURITY DEFINER;
COMMENT ON FUNCTION demper.due_queue() IS
    'The due queue: next check and lease of every active product (join to demper.product to see only yours)';

-- backlog, from the due queue: a product in check is not due (the claim moved its due time to
-- the end of its lease), whatever product.next_check_at still says.
CREATE OR REPLACE VIEW demper.backlog AS
SELECT b.due_now, b.oldest_due_age, b.in_check, b.active_products, r.rate AS checks_per_second,
       CASE WHEN b.due_now = 0 THEN interval '0'
            WHEN r.rate > 0 THEN make_interval(secs => b.due_now / r.rate) END AS expected_catch_up
  FROM (SELECT count(*) FILTER (WHERE q.next_check_at <= now()) AS due_now,
               coalesce(now() - min(q.next_check_at) FILTER (WHERE q.next_check_at <= now()),
                        interval '0') AS oldest_due_age,
               count(*) FILTER (WHERE q.lease_until > now()) AS in_check,
               count(*) AS active_products
          FROM demper.due_queue() q
          JOIN demper.product p ON p.id = q.product_id
         WHERE p.bot_active) b,
       (SELECT coalesce(sum(checks_per_second), 0) AS rate FROM demper.worker_status()) r;
ALTER VIEW demper.backlog SET (security_invoker = true);

CREATE OR REPLACE FUNCTION demper.check_now(product_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF product_id IS NULL THEN
        RAISE EXCEPTION 'product id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    UPDATE demper.product SET next_check_at = now()
     WHERE id = product_id
       AND NOT demper.in_check(id);
    IF NOT FOUND THEN
        IF NOT EXISTS (SELECT 1 FROM demper.product WHERE id = product_id) THEN
            RAISE EXCEPTION 'product % does not exist', product_id USING ERRCODE = 'no_data_found';
        END IF;
        -- a check of this product is under way right now: nothing to do
    END IF;
    PERFORM demper.wake_workers();
END
$$;

ALTER TABLE demper.product DROP COLUMN lease_token, DROP COLUMN lease_until;

REVOKE ALL ON FUNCTION demper.in_check(bigint), demper.due_queue() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demper.in_check(bigint), demper.due_queue() TO demper_reader;

DROP INDEX demper.price_history_changed_at_idx;

CREATE OR REPLACE FUNCTION demper.prune_batch(retention interval, batch integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed integer := 0;
    n integer;
BEGIN
    IF retention IS NULL OR retention <= interval '0' THEN
        RAISE EXCEPTION 'retention must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'batch must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Oldest first within each store, through price_history_store_idx (store_id, changed_at).
    DELETE FROM demper.price_history WHERE id IN (
        SELECT h.id
          FROM demper.store s
         CROSS JOIN LATERAL (SELECT id, changed_at FROM demper.price_history
                              WHERE store_id = s.id AND changed_at < now() - retention
                              ORDER BY changed_at LIMIT batch) h
         ORDER BY h.changed_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;
    DELETE FROM demper.outbox WHERE id IN (
        SELECT id FROM demper.outbox WHERE status <> 'pending' AND done_at < now() - retention
         ORDER BY done_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;
    DELETE FROM demper.proposal WHERE id IN (
        SELECT id FROM demper.proposal WHERE status <> 'pending' AND decided_at < now() - retention
         ORDER BY decided_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN removed + n;
END
$$;

-- repair_queue: every active product has its row in the due queue, and only those. Users' writes
-- keep it so through the sync_schedule trigger; a restore or a load with triggers disabled does
-- not. It compares the whole catalogue with the queue (seconds at millions of products), so the
-- worker runs it at its start only when the queue is empty while active products exist (a restore
-- with triggers disabled); after a load into a live catalogue with triggers disabled, call it.
CREATE FUNCTION demper.repair_queue(only_if_empty boolean DEFAULT false,
                                    OUT added bigint, OUT removed bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    added := 0;
    removed := 0;
    IF only_if_empty AND (EXISTS (SELECT 1 FROM demper.schedule)
                          OR NOT EXISTS (SELECT 1 FROM demper.product WHERE bot_active)) THEN
        RETURN;
    END IF;
    WITH ins AS (
        INSERT INTO demper.schedule (product_id, next_check_at)
        SELECT p.id, p.next_check_at
          FROM demper.product p
         WHERE p.bot_active
           AND NOT EXISTS (SELECT 1 FROM demper.schedule s WHERE s.product_id = p.id)
        ON CONFLICT (product_id) DO NOTHING
        RETURNING 1
    ) SELECT count(*) INTO added FROM ins;
    WITH del AS (
        DELETE FROM demper.schedule s
         WHERE NOT EXISTS (SELECT 1 FROM demper.product p WHERE p.id = s.product_id AND p.bot_active)
        RETURNING 1
    ) SELECT count(*) INTO removed FROM del;
END
$$;
ALTER FUNCTION demper.repair_queue(boolean) SECURITY DEFINER;
COMMENT ON FUNCTION demper.repair_queue(boolean) IS
    'Rebuilds the due queue from the products (after a load with triggers disabled); with true, only when it is empty';
REVOKE ALL ON FUNCTION demper.repair_queue(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION demper.repair_queue(boolean) TO demper_admin;
