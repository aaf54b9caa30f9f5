-- demper 0.2.0 -> 0.3.0: publishing prices to the marketplace, and the privilege model (issue 5).
--
-- New vocabulary:
--   push         one price sent to the marketplace's merchant API for one listing
--   outbox       the pushes to send, written in the same transaction as the price they publish;
--                one pending push per listing: a newer decision replaces the price of a pending push
--   credentials  a store's merchant cabinet session cookies, sealed with AES-256-GCM under the key
--                in demper.credentials_key_file; only the worker opens them
--   feed         the store's whole catalogue as a Kaspi XML price list, from demper.price_feed()

\echo Use "ALTER EXTENSION demper UPDATE TO '0.3.0'" to load this file. \quit

ALTER TABLE demper.store
    ADD COLUMN push_mode         text    NOT NULL DEFAULT 'none',
    ADD COLUMN credentials       bytea,
    ADD COLUMN credentials_key   text,
    ADD COLUMN needs_login       boolean NOT NULL DEFAULT false,
    ADD COLUMN push_paused_until timestamptz,
    ADD COLUMN last_push_error   text,
    ADD COLUMN feed_store_ids    text[]  NOT NULL DEFAULT '{PP1}',
    ADD CONSTRAINT store_push_mode_known CHECK (push_mode IN ('api', 'feed', 'none'));
COMMENT ON COLUMN demper.store.credentials IS 'Sealed session cookies (AES-256-GCM); set with demper.set_credentials()';

CREATE TABLE demper.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id      bigint      NOT NULL REFERENCES demper.product (id) ON DELETE CASCADE,
    store_id        bigint      NOT NULL,
    price           bigint      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending',
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    lease_token     bigint,
    lease_until     timestamptz,
    pushed_price    bigint,
    job_id          text,
    last_error      text,
    done_at         timestamptz,
    CONSTRAINT outbox_status_known CHECK (status IN ('pending', 'done', 'failed'))
);
COMMENT ON TABLE demper.outbox IS 'Prices to publish through the merchant API; one pending row per listing';
CREATE UNIQUE INDEX outbox_one_pending_idx ON demper.outbox (product_id) WHERE status = 'pending';
CREATE INDEX outbox_due_idx ON demper.outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_finished_idx ON demper.outbox (done_at) WHERE status <> 'pending';
CREATE INDEX outbox_store_idx ON demper.outbox (store_id, status);

-- enqueue_push writes (or refreshes) the pending push of a listing whose store publishes through
-- the API. Called by the trigger below, so that every price change, by the worker or by
-- demper.approve(), reaches the outbox in the same transaction.
CREATE FUNCTION demper.enqueue_push() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A new price is due now, unless its merchant is paused after a 429 (then when the pause
    -- ends) or needs a new login (then parked until set_credentials). A pending push already
    -- claimed by the worker keeps its schedule: when it is accepted with an older price, the
    -- latest price is pushed next (so only the latest price is pushed, never every one).
    INSERT INTO demper.outbox (product_id, store_id, price, next_attempt_at)
    SELECT NEW.id, NEW.store_id, NEW.price,
           CASE WHEN s.needs_login THEN 'infinity'::timestamptz
                ELSE greatest(now(), coalesce(s.push_paused_until, now())) END
      FROM demper.store s
     WHERE s.id = NEW.store_id AND s.push_mode = 'api'
    ON CONFLICT (product_id) WHERE status = 'pending'
    DO UPDATE SET price = EXCLUDED.price, created_at = now(),
                  next_attempt_at = CASE
                      WHEN demper.outbox.lease_until > now() THEN demper.outbox.next_attempt_at
                      ELSE least(demper.outbox.next_attempt_at, EXCLUDED.next_attempt_at) END;
    RETURN NULL;
END
$$;

ALTER FUNCTION demper.enqueue_push() SECURITY DEFINER;

CREATE TRIGGER product_enqueue_push
    AFTER UPDATE OF price ON demper.product
    FOR EACH ROW
    WHEN (NEW.price IS DISTINCT FROM OLD.price)
    EXECUTE FUNCTION demper.enqueue_push();

-- Credentials and the feed are handled in C (src/pg/publish_functions.cpp).
CREATE FUNCTION demper.set_credentials(store_id bigint, session text, sid text) RETURNS text
AS 'MODULE_PATHNAME', 'demper_set_credentials'
LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION demper.set_credentials(bigint, text, text) IS
    'Seals a store''s merchant cabinet cookies under the key in demper.credentials_key_file; returns the key fingerprint';

CREATE FUNCTION demper.rotate_credentials_key(old_key_file text) RETURNS integer
AS 'MODULE_PATHNAME', 'demper_rotate_credentials_key'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION demper.rotate_credentials_key(text) IS
    'Re-seals every store''s credentials sealed under the old key with the key in demper.credentials_key_file';

CREATE FUNCTION demper.price_feed(store_id bigint) RETURNS text
AS 'MODULE_PATHNAME', 'demper_price_feed'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION demper.price_feed(bigint) IS
    'The store''s whole catalogue as a Kaspi XML price list; refuses to produce a partial or empty feed';

-- demper_stats() gains the push counters.
DROP FUNCTION demper.demper_stats();
CREATE FUNCTION demper.demper_stats(
    OUT checks_started   bigint,
    OUT checks_ok        bigint,
    OUT checks_failed    bigint,
    OUT price_changes    bigint,
    OUT price_up         bigint,
    OUT price_down       bigint,
    OUT floor_hits       bigint,
    OUT decisions_discarded bigint,
    OUT budget_deferred  bigint,
    OUT proposals        bigint,
    OUT pushes_ok        bigint,
    OUT pushes_failed    bigint,
    OUT pushes_retried   bigint,
    OUT http_requests    bigint,
    OUT http_retries     bigint,
    OUT rate_limit_waits bigint,
    OUT bans             bigint,
    OUT breaker_opens    bigint,
    OUT egress_cooldowns bigint,
    OUT in_flight        bigint,
    OUT queued           bigint,
    OUT failed_timeout   bigint,
    OUT failed_connect   bigint,
    OUT failed_dns       bigint,
    OUT failed_tls       bigint,
    OUT failed_http_4xx  bigint,
    OUT failed_http_5xx  bigint,
    OUT failed_ban       bigint,
    OUT failed_too_large bigint,
    OUT failed_bad_body  bigint,
    OUT failed_refused_host bigint,
    OUT stats_reset      timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'demper_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION demper.demper_stats() IS 'Counters of all demper workers since the last demper_stats_reset()';
REVOKE ALL ON FUNCTION demper.demper_stats() FROM PUBLIC;

-- Row-level security (optional, off until demper.enable_row_security(true)): for services that host
-- many sellers in one database, a store belongs to store.owner_role, and a role sees and edits
-- only the stores whose owner role it is a member of, with their products, history, proposals and
-- pushes. The worker (a superuser) and superusers are not restricted.
ALTER TABLE demper.store ADD COLUMN owner_role name;
COMMENT ON COLUMN demper.store.owner_role IS 'With row-level security on, members of this role see and edit the store';

CREATE FUNCTION demper.visible_store(store_id bigint) RETURNS boolean
LANGUAGE sql STABLE
AS $$ SELECT EXISTS (SELECT 1 FROM demper.store s WHERE s.id = visible_store.store_id) $$;

CREATE POLICY store_owner ON demper.store
    USING (owner_role IS NOT NULL AND pg_has_role(current_user, owner_role, 'MEMBER'));
CREATE POLICY product_of_visible_store ON demper.product USING (demper.visible_store(store_id));
CREATE POLICY history_of_visible_store ON demper.price_history USING (demper.visible_store(store_id));
CREATE POLICY proposal_of_visible_store ON demper.proposal USING (demper.visible_store(store_id));
CREATE POLICY outbox_of_visible_store ON demper.outbox USING (demper.visible_store(store_id));

-- caller_role is the role on whose behalf a statement runs, also inside SECURITY DEFINER
-- functions: the role set with SET ROLE, else the session's user.
CREATE FUNCTION demper.caller_role() RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN current_setting('role') = 'none' THEN session_user::name
                  ELSE current_setting('role')::name END $$;

-- caller_may_manage says whether the caller may act on a store: always while row-level security
-- is off; with it on, superusers and members of the store's owner role. The SECURITY DEFINER
-- functions (approve, reject, set_credentials) check it, since they are not subject to policies.
CREATE FUNCTION demper.caller_may_manage(store_id bigint) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NOT (SELECT relrowsecurity FROM pg_class WHERE oid = 'demper.store'::regclass)
        OR coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = demper.caller_role()), false)
        OR EXISTS (SELECT 1 FROM demper.store s
                    WHERE s.id = caller_may_manage.store_id AND s.owner_role IS NOT NULL
                      AND pg_has_role(demper.caller_role(), s.owner_role, 'MEMBER'))
$$;

CREATE OR REPLACE FUNCTION demper.approve(proposal_id bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pr demper.proposal;
    current_price bigint;
BEGIN
    IF proposal_id IS NULL THEN
        RAISE EXCEPTION 'proposal id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO pr FROM demper.proposal WHERE id = proposal_id FOR UPDATE;
    IF NOT FOUND OR NOT demper.caller_may_manage(pr.store_id) THEN
        RAISE EXCEPTION 'proposal % does not exist', proposal_id USING ERRCODE = 'no_data_found';
    END IF;
    IF pr.status <> 'pending' THEN
        RAISE EXCEPTION 'proposal % is %, not pending', proposal_id, pr.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT price INTO current_price FROM demper.product WHERE id = pr.product_id FOR UPDATE;
    IF current_price <> pr.old_price THEN
        UPDATE demper.proposal SET status = 'stale', decided_at = now(), decided_by = demper.caller_role()
         WHERE id = proposal_id;
        RAISE WARNING 'proposal % is stale: the price is now %, not %', proposal_id, current_price, pr.old_price
            USING HINT = 'The next check makes a new proposal.';
        RETURN current_price;
    END IF;
    UPDATE demper.product SET price = pr.new_price WHERE id = pr.product_id;
    INSERT INTO demper.price_history (product_id, store_id, old_price, new_price, competitor_price, reason)
    VALUES (pr.product_id, pr.store_id, pr.old_price, pr.new_price, pr.competitor_price, pr.reason || ' (approved)');
    UPDATE demper.proposal SET status = 'approved', decided_at = now(), decided_by = demper.caller_role()
     WHERE id = proposal_id;
    RETURN pr.new_price;
END
$$;

CREATE OR REPLACE FUNCTION demper.reject(proposal_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pr demper.proposal;
BEGIN
    IF proposal_id IS NULL THEN
        RAISE EXCEPTION 'proposal id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO pr FROM demper.proposal WHERE id = proposal_id FOR UPDATE;
    IF NOT FOUND OR NOT demper.caller_may_manage(pr.store_id) THEN
        RAISE EXCEPTION 'proposal % does not exist', proposal_id USING ERRCODE = 'no_data_found';
    END IF;
    IF pr.status <> 'pending' THEN
        RAISE EXCEPTION 'proposal % is not pending', proposal_id USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE demper.proposal SET status = 'rejected', decided_at = now(), decided_by = demper.caller_role()
     WHERE id = proposal_id;
END
$$;

-- enable_row_security turns the policies above on or off for every demper table.
CREATE FUNCTION demper.enable_row_security(enabled boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text;
BEGIN
    IF enabled IS NULL THEN
        RAISE EXCEPTION 'enabled must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOREACH t IN ARRAY ARRAY['store', 'product', 'price_history', 'proposal', 'outbox'] LOOP
        EXECUTE format('ALTER TABLE demper.%I %s ROW LEVEL SECURITY', t,
                       CASE WHEN enabled THEN 'ENABLE' ELSE 'DISABLE' END);
    END LOOP;
END
$$;

-- push_status: what publishing does per store.
CREATE VIEW demper.push_status AS
SELECT s.id AS store_id,
       s.name AS store,
       s.push_mode,
       s.credentials_key IS NOT NULL AS has_credentials,
       s.credentials_key,
       s.needs_login,
       s.push_paused_until,
       s.last_push_error,
       count(o.*) FILTER (WHERE o.status = 'pending') AS pending,
       count(o.*) FILTER (WHERE o.status = 'done') AS done,
       count(o.*) FILTER (WHERE o.status = 'failed') AS failed,
       max(o.done_at) AS last_push_at
  FROM demper.store s
  LEFT JOIN demper.outbox o ON o.store_id = s.id
 GROUP BY s.id;

-- approve() and reject() write history and proposals on behalf of demper_admin.
ALTER FUNCTION demper.approve(bigint) SECURITY DEFINER;
ALTER FUNCTION demper.reject(bigint) SECURITY DEFINER;

-- Roles: demper_admin configures stores, products and credentials; demper_reader sees stats,
-- status, history and explanations. Roles are cluster-wide: they are created once and kept by
-- DROP EXTENSION. Nothing is granted to PUBLIC.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demper_reader') THEN
        CREATE ROLE demper_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demper_admin') THEN
        CREATE ROLE demper_admin NOLOGIN;
    END IF;
END
$$;

-- Views run with the privileges and row-level security of the role that reads them.
ALTER VIEW demper.product_status SET (security_invoker = true);
ALTER VIEW demper.backlog SET (security_invoker = true);
ALTER VIEW demper.push_status SET (security_invoker = true);

REVOKE ALL ON ALL TABLES IN SCHEMA demper FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.enqueue_push() FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.enable_row_security(boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.visible_store(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.caller_role() FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.caller_may_manage(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.set_credentials(bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.rotate_credentials_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.price_feed(bigint) FROM PUBLIC;

GRANT USAGE ON SCHEMA demper TO demper_reader, demper_admin;

-- Reader: everything except the credentials column.
GRANT SELECT ON demper.product, demper.price_history, demper.proposal, demper.outbox,
                demper.product_status, demper.backlog, demper.push_status TO demper_reader;
GRANT SELECT (id, name, merchant_id, city_id, active, created_at, seller_id, ignored_merchants,
              max_delivery_duration, outlier_share, timezone, work_start, work_end, change_budget,
              change_budget_window, approval_mode, push_mode, credentials_key, needs_login,
              push_paused_until, last_push_error, feed_store_ids, owner_role)
    ON demper.store TO demper_reader;
GRANT EXECUTE ON FUNCTION demper.demper_stats(), demper.http_status(), demper.explain(bigint),
                          demper.in_working_hours(demper.store, timestamptz),
                          demper.in_working_hours(time, time, text, timestamptz),
                          demper.next_opening(demper.store, timestamptz),
                          demper.check_interval(), demper.visible_store(bigint),
                          demper.caller_role(), demper.caller_may_manage(bigint) TO demper_reader;

-- Admin: the reader's rights, plus configuring stores and products, acting on proposals, setting
-- credentials (write-only: the column stays unreadable), making products due, reading the feed.
GRANT demper_reader TO demper_admin;
GRANT INSERT, UPDATE, DELETE ON demper.product TO demper_admin;
GRANT INSERT, DELETE ON demper.store TO demper_admin;
GRANT UPDATE (name, merchant_id, city_id, active, seller_id, ignored_merchants, max_delivery_duration,
              outlier_share, timezone, work_start, work_end, change_budget, change_budget_window,
              approval_mode, push_mode, needs_login, push_paused_until, feed_store_ids)
    ON demper.store TO demper_admin;

GRANT UPDATE (status, decided_at, decided_by) ON demper.proposal TO demper_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA demper TO demper_admin;
GRANT EXECUTE ON FUNCTION demper.check_now(bigint), demper.wake_workers(), demper.approve(bigint),
                          demper.reject(bigint), demper.set_credentials(bigint, text, text),
                          demper.price_feed(bigint), demper.demper_stats_reset() TO demper_admin;
