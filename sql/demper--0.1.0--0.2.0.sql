-- demper 0.1.0 -> 0.2.0: the complete pricing engine (issue 4).
--
-- New vocabulary:
--   seller    the owner of one or more stores (store.seller_id); every merchant id of a seller is
--             excluded from the competitors of each of its products
--   listing   a product in one city: a product row with its own city_id, price, floor and ceiling
--   proposal  a decision of a store in approval mode, waiting for demper.approve() or reject()
--   explain   the record of a check: offers seen, excluded, rule, target, clamps, final price

\echo Use "ALTER EXTENSION demper UPDATE TO '0.2.0'" to load this file. \quit

-- Stores: seller, competitor filters, working hours, change budget, approval mode.
ALTER TABLE demper.store
    ADD COLUMN seller_id             text     NOT NULL DEFAULT 'default',
    ADD COLUMN ignored_merchants     text[]   NOT NULL DEFAULT '{}',
    ADD COLUMN max_delivery_duration text,
    ADD COLUMN outlier_share         numeric,
    ADD COLUMN timezone              text     NOT NULL DEFAULT 'Asia/Almaty',
    ADD COLUMN work_start            time,
    ADD COLUMN work_end              time,
    ADD COLUMN change_budget         integer,
    ADD COLUMN change_budget_window  interval NOT NULL DEFAULT '30 minutes',
    ADD COLUMN approval_mode         boolean  NOT NULL DEFAULT false,
    ADD CONSTRAINT store_max_delivery_duration_known CHECK (max_delivery_duration IS NULL OR max_delivery_duration IN
        ('EXPRESS', 'TODAY', 'TOMORROW', 'TILL_2_DAYS', 'TILL_3_DAYS', 'TILL_5_DAYS', 'TILL_7_DAYS')),
    ADD CONSTRAINT store_outlier_share_range CHECK (outlier_share IS NULL OR (outlier_share > 0 AND outlier_share < 1)),
    ADD CONSTRAINT store_work_hours_both CHECK ((work_start IS NULL) = (work_end IS NULL)),
    ADD CONSTRAINT store_change_budget_positive CHECK (change_budget IS NULL OR change_budget >= 0),
    ADD CONSTRAINT store_change_budget_window_positive CHECK (change_budget_window > interval '0');
CREATE INDEX store_seller_idx ON demper.store (seller_id);

-- Products: strategy and its parameters, cost floor, guardrails, schedule, city, explanation.
ALTER TABLE demper.product
    ADD COLUMN city_id              text,
    ADD COLUMN strategy             text    NOT NULL DEFAULT 'undercut',
    ADD COLUMN step_percent         numeric,
    ADD COLUMN position             integer NOT NULL DEFAULT 1,
    ADD COLUMN cost_price           bigint,
    ADD COLUMN min_margin_percent   numeric,
    ADD COLUMN floor_action         text    NOT NULL DEFAULT 'go_to_floor',
    ADD COLUMN no_competitor_action text    NOT NULL DEFAULT 'to_max',
    ADD COLUMN max_change_percent   numeric,
    ADD COLUMN check_interval       interval,
    ADD COLUMN priority             boolean NOT NULL DEFAULT false,
    ADD COLUMN last_explain         json,     -- json, not jsonb: written on every check, read rarely
    -- bumped by the validation trigger whenever a user changes an input of the rule: a decision
    -- made from an older version is dropped at apply time
    ADD COLUMN inputs_version       bigint  NOT NULL DEFAULT 0,
    ADD CONSTRAINT product_strategy_known CHECK (strategy IN ('undercut', 'match', 'position', 'follow_second')),
    ADD CONSTRAINT product_step_percent_range CHECK (step_percent IS NULL OR (step_percent > 0 AND step_percent <= 50)),
    ADD CONSTRAINT product_position_at_least_1 CHECK (position BETWEEN 1 AND 64),
    ADD CONSTRAINT product_cost_price_positive CHECK (cost_price IS NULL OR cost_price >= 1),
    ADD CONSTRAINT product_min_margin_range CHECK (min_margin_percent IS NULL OR (min_margin_percent >= 0 AND min_margin_percent <= 1000)),
    ADD CONSTRAINT product_floor_action_known CHECK (floor_action IN ('go_to_floor', 'hold')),
    ADD CONSTRAINT product_no_competitor_action_known CHECK (no_competitor_action IN ('to_max', 'hold')),
    ADD CONSTRAINT product_max_change_range CHECK (max_change_percent IS NULL OR (max_change_percent > 0 AND max_change_percent <= 100)),
    ADD CONSTRAINT product_check_interval_range CHECK (check_interval IS NULL OR (check_interval >= interval '10 seconds' AND check_interval <= interval '7 days')),
    ADD CONSTRAINT product_city_id_format CHECK (city_id IS NULL OR
        (length(city_id) = 9 AND translate(city_id, '0123456789', '') = ''));

-- One listing per product and city: the same sku may be repriced in several cities.
ALTER TABLE demper.product DROP CONSTRAINT product_store_sku_key;
CREATE UNIQUE INDEX product_store_sku_city_key ON demper.product (store_id, sku, coalesce(city_id, ''));

-- History knows its store, so that budgets and per-store reports need no join.
ALTER TABLE demper.price_history ADD COLUMN store_id bigint;
UPDATE demper.price_history h SET store_id = p.store_id FROM demper.product p WHERE p.id = h.product_id;
ALTER TABLE demper.price_history ALTER COLUMN store_id SET NOT NULL;
CREATE INDEX price_history_store_idx ON demper.price_history (store_id, changed_at);

-- Proposals: decisions of stores in approval mode.
CREATE TABLE demper.proposal (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id       bigint      NOT NULL REFERENCES demper.product (id) ON DELETE CASCADE,
    store_id         bigint      NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    old_price        bigint      NOT NULL,
    new_price        bigint      NOT NULL,
    competitor_price bigint,
    reason           text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending',
    decided_at       timestamptz,
    decided_by       text,
    CONSTRAINT proposal_status_known CHECK (status IN ('pending', 'approved', 'rejected', 'superseded', 'stale'))
);
COMMENT ON TABLE demper.proposal IS 'Price decisions of stores in approval mode, waiting for demper.approve() or demper.reject()';
CREATE UNIQUE INDEX proposal_one_pending_idx ON demper.proposal (product_id) WHERE status = 'pending';
CREATE INDEX proposal_store_idx ON demper.proposal (store_id, status);

-- validate_product: the 0.1.0 checks plus the new columns' rules, with clear messages.
CREATE OR REPLACE FUNCTION demper.validate_product() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.price IS NOT NULL AND NEW.price < 10 THEN
        RAISE EXCEPTION 'price must be at least 10'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has price %s; the marketplace does not accept prices below 10 tenge.', NEW.sku, NEW.price);
    END IF;
    IF NEW.min_price IS NOT NULL AND NEW.min_price < 10 THEN
        RAISE EXCEPTION 'min_price must be at least 10'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has min_price %s; the marketplace does not accept prices below 10 tenge.', NEW.sku, NEW.min_price);
    END IF;
    IF NEW.max_price IS NOT NULL AND NEW.min_price IS NOT NULL AND NEW.max_price < NEW.min_price THEN
        RAISE EXCEPTION 'min_price must not be above max_price'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has min_price %s and max_price %s.', NEW.sku, NEW.min_price, NEW.max_price),
                  HINT = 'Raise max_price, lower min_price, or set max_price to NULL for no ceiling.';
    END IF;
    IF NEW.step IS NOT NULL AND NEW.step < 1 THEN
        RAISE EXCEPTION 'step must be at least 1'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has step %s.', NEW.sku, NEW.step);
    END IF;
    IF NEW.product_code !~ '^[A-Za-z0-9_-]{1,64}$' THEN
        RAISE EXCEPTION 'invalid product code "%"', NEW.product_code
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A product code is the marketplace''s product card id: 1 to 64 letters, digits, "-" or "_".';
    END IF;
    IF btrim(NEW.sku, E' \t\r\n') = '' THEN
        RAISE EXCEPTION 'sku must not be blank' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.strategy NOT IN ('undercut', 'match', 'position', 'follow_second') THEN
        RAISE EXCEPTION 'unknown strategy "%"', NEW.strategy
            USING ERRCODE = 'check_violation',
                  HINT = 'Use undercut, match, position or follow_second.';
    END IF;
    IF NEW.floor_action NOT IN ('go_to_floor', 'hold') THEN
        RAISE EXCEPTION 'unknown floor action "%"', NEW.floor_action
            USING ERRCODE = 'check_violation', HINT = 'Use go_to_floor or hold.';
    END IF;
    IF NEW.no_competitor_action NOT IN ('to_max', 'hold') THEN
        RAISE EXCEPTION 'unknown no-competitor action "%"', NEW.no_competitor_action
            USING ERRCODE = 'check_violation', HINT = 'Use to_max or hold.';
    END IF;
    IF NEW.position < 1 OR NEW.position > 64 THEN
        RAISE EXCEPTION 'position must be between 1 and 64'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has position %s.', NEW.sku, NEW.position);
    END IF;
    IF NEW.step_percent IS NOT NULL AND (NEW.step_percent <= 0 OR NEW.step_percent > 50) THEN
        RAISE EXCEPTION 'step_percent must be above 0 and at most 50'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has step_percent %s.', NEW.sku, NEW.step_percent);
    END IF;
    IF NEW.max_change_percent IS NOT NULL AND (NEW.max_change_percent <= 0 OR NEW.max_change_percent > 100) THEN
        RAISE EXCEPTION 'max_change_percent must be above 0 and at most 100'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has max_change_percent %s.', NEW.sku, NEW.max_change_percent);
    END IF;
    IF NEW.min_margin_percent IS NOT NULL AND NEW.cost_price IS NULL THEN
        RAISE EXCEPTION 'min_margin_percent needs cost_price'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has a minimum margin but no cost price.', NEW.sku);
    END IF;
    IF NEW.city_id IS NOT NULL AND NEW.city_id !~ '^[0-9]{9}$' THEN
        RAISE EXCEPTION 'invalid city id "%"', NEW.city_id
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A city id is a 9-digit KATO code.',
                  HINT = 'Almaty is 750000000, Astana 710000000, Shymkent 511010000.';
    END IF;
    IF TG_OP = 'INSERT' AND NEW.next_check_at IS NULL THEN
        NEW.next_check_at := now() + random() * coalesce(NEW.check_interval, demper.check_interval());
    END IF;
    IF TG_OP = 'UPDATE' THEN
        -- This trigger runs on UPDATE only when an input of the rule changed (see its WHEN).
        NEW.inputs_version := OLD.inputs_version + 1;
    END IF;
    RETURN NEW;
END
$$;

-- The UPDATE trigger also watches the new inputs.
DROP TRIGGER product_validate_update ON demper.product;
CREATE TRIGGER product_validate_update
    BEFORE UPDATE ON demper.product
    FOR EACH ROW
    WHEN (NEW.price < 10
          OR NEW.min_price IS DISTINCT FROM OLD.min_price
          OR NEW.max_price IS DISTINCT FROM OLD.max_price
          OR NEW.step IS DISTINCT FROM OLD.step
          OR NEW.product_code IS DISTINCT FROM OLD.product_code
          OR NEW.sku IS DISTINCT FROM OLD.sku
          OR NEW.city_id IS DISTINCT FROM OLD.city_id
          OR NEW.strategy IS DISTINCT FROM OLD.strategy
          OR NEW.step_percent IS DISTINCT FROM OLD.step_percent
          OR NEW.position IS DISTINCT FROM OLD.position
          OR NEW.cost_price IS DISTINCT FROM OLD.cost_price
          OR NEW.min_margin_percent IS DISTINCT FROM OLD.min_margin_percent
          OR NEW.floor_action IS DISTINCT FROM OLD.floor_action
          OR NEW.no_competitor_action IS DISTINCT FROM OLD.no_competitor_action
          OR NEW.max_change_percent IS DISTINCT FROM OLD.max_change_percent)
    EXECUTE FUNCTION demper.validate_product();

-- validate_store: the 0.1.0 checks plus time zone and working hours.
CREATE OR REPLACE FUNCTION demper.validate_store() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF btrim(NEW.name, E' \t\r\n') = '' THEN
        RAISE EXCEPTION 'store name must not be blank' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.merchant_id !~ '^[A-Za-z0-9_-]{1,64}$' THEN
        RAISE EXCEPTION 'invalid merchant id "%"', NEW.merchant_id
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A merchant id is the seller''s id on the marketplace: 1 to 64 letters, digits, "-" or "_".';
    END IF;
    IF NEW.city_id !~ '^[0-9]{9}$' THEN
        RAISE EXCEPTION 'invalid city id "%"', NEW.city_id
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A city id is a 9-digit KATO code.',
                  HINT = 'Almaty is 750000000, Astana 710000000, Shymkent 511010000.';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(NEW.ignored_merchants) m WHERE m IS NULL OR m !~ '^[A-Za-z0-9_-]{1,64}$') THEN
        RAISE EXCEPTION 'invalid merchant id in ignored_merchants'
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A merchant id is 1 to 64 letters, digits, "-" or "_".';
    END IF;
    IF NEW.max_delivery_duration IS NOT NULL AND NEW.max_delivery_duration NOT IN
           ('EXPRESS', 'TODAY', 'TOMORROW', 'TILL_2_DAYS', 'TILL_3_DAYS', 'TILL_5_DAYS', 'TILL_7_DAYS') THEN
        RAISE EXCEPTION 'unknown delivery duration "%"', NEW.max_delivery_duration
            USING ERRCODE = 'check_violation',
                  HINT = 'Use EXPRESS, TODAY, TOMORROW, TILL_2_DAYS, TILL_3_DAYS, TILL_5_DAYS or TILL_7_DAYS.';
    END IF;
    IF NEW.outlier_share IS NOT NULL AND (NEW.outlier_share <= 0 OR NEW.outlier_share >= 1) THEN
        RAISE EXCEPTION 'outlier_share must be between 0 and 1'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Store "%s" has outlier_share %s.', NEW.name, NEW.outlier_share),
                  HINT = 'An offer below this share of the median of the cheapest five is ignored; 0.5 is usual.';
    END IF;
    IF NEW.change_budget IS NOT NULL AND NEW.change_budget < 0 THEN
        RAISE EXCEPTION 'change_budget must not be negative'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Store "%s" has change_budget %s.', NEW.name, NEW.change_budget);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.timezone) THEN
        RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
            USING ERRCODE = 'check_violation', HINT = 'Use a name such as Asia/Almaty.';
    END IF;
    IF (NEW.work_start IS NULL) <> (NEW.work_end IS NULL) THEN
        RAISE EXCEPTION 'working hours need both work_start and work_end'
            USING ERRCODE = 'check_violation';
    END IF;
    -- 24:00 is the same time of day as 00:00: compare modulo a day.
    IF NEW.work_start IS NOT NULL
       AND extract(epoch FROM NEW.work_start)::bigint % 86400 = extract(epoch FROM NEW.work_end)::bigint % 86400 THEN
        RAISE EXCEPTION 'working hours must not start and end at the same time'
            USING ERRCODE = 'check_violation',
                  HINT = 'Set both to NULL to check around the clock.';
    END IF;
    RETURN NEW;
END
$$;

-- in_working_hours says whether a store's local time is within its working hours (a window may
-- pass midnight, e.g. 20:00-02:00). No hours means always. No SET clause: the claim calls it per
-- row, and only a function without one can be inlined.
CREATE FUNCTION demper.in_working_hours(work_start time, work_end time, timezone text,
                                        at timestamptz DEFAULT now()) RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN work_start IS NULL THEN true
        WHEN work_start < work_end THEN (at AT TIME ZONE timezone)::time >= work_start
                                    AND (at AT TIME ZONE timezone)::time <  work_end
        ELSE (at AT TIME ZONE timezone)::time >= work_start
          OR (at AT TIME ZONE timezone)::time <  work_end
    END
$$;

CREATE FUNCTION demper.in_working_hours(s demper.store, at timestamptz DEFAULT now()) RETURNS boolean
LANGUAGE sql STABLE
AS $$ SELECT demper.in_working_hours(s.work_start, s.work_end, s.timezone, at) $$;

-- next_opening returns when a store's working hours next begin (now() when it has none).
CREATE FUNCTION demper.next_opening(s demper.store, at timestamptz DEFAULT now()) RETURNS timestamptz
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN s.work_start IS NULL THEN at
        ELSE (SELECT CASE WHEN today > (at AT TIME ZONE s.timezone) THEN today
                          ELSE today + interval '1 day' END AT TIME ZONE s.timezone
                FROM (SELECT date_trunc('day', at AT TIME ZONE s.timezone) + s.work_start AS today) t)
    END
$$;

-- explain returns the record of a product's last check: the offers as seen, those excluded and
-- why, the rule, the target, each clamp applied, the final price and the reason.
CREATE FUNCTION demper.explain(product_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    IF product_id IS NULL THEN
        RAISE EXCEPTION 'product id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT jsonb_build_object(
               'product_id', p.id, 'sku', p.sku, 'city_id', coalesce(p.city_id, s.city_id),
               'price', p.price, 'last_check_time', p.last_check_time, 'last_reason', p.last_reason,
               'last_error_class', p.last_error_class, 'last_error', p.last_error)
           || coalesce(p.last_explain::jsonb, '{}'::jsonb)
      INTO result
      FROM demper.product p JOIN demper.store s ON s.id = p.store_id
     WHERE p.id = explain.product_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'product % does not exist', product_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN result;
END
$$;

-- approve applies a pending proposal, if the product's price is still the one it was made from.
CREATE FUNCTION demper.approve(proposal_id bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pr demper.proposal;
    current_price bigint;
BEGIN
    SELECT * INTO pr FROM demper.proposal WHERE id = proposal_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'proposal % does not exist', proposal_id USING ERRCODE = 'no_data_found';
    END IF;
    IF pr.status <> 'pending' THEN
        RAISE EXCEPTION 'proposal % is %, not pending', proposal_id, pr.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT price INTO current_price FROM demper.product WHERE id = pr.product_id FOR UPDATE;
    IF current_price <> pr.old_price THEN
        UPDATE demper.proposal SET status = 'stale', decided_at = now(), decided_by = current_user
         WHERE id = proposal_id;
        RAISE WARNING 'proposal % is stale: the price is now %, not %', proposal_id, current_price, pr.old_price
            USING HINT = 'The next check makes a new proposal.';
        RETURN current_price;
    END IF;
    UPDATE demper.product SET price = pr.new_price WHERE id = pr.product_id;
    INSERT INTO demper.price_history (product_id, store_id, old_price, new_price, competitor_price, reason)
    VALUES (pr.product_id, pr.store_id, pr.old_price, pr.new_price, pr.competitor_price, pr.reason || ' (approved)');
    UPDATE demper.proposal SET status = 'approved', decided_at = now(), decided_by = current_user
     WHERE id = proposal_id;
    RETURN pr.new_price;
END
$$;

-- reject turns a pending proposal down; the price stays.
CREATE FUNCTION demper.reject(proposal_id bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE demper.proposal SET status = 'rejected', decided_at = now(), decided_by = current_user
     WHERE id = proposal_id AND status = 'pending';
    IF NOT FOUND THEN
        IF NOT EXISTS (SELECT 1 FROM demper.proposal WHERE id = proposal_id) THEN
            RAISE EXCEPTION 'proposal % does not exist', proposal_id USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'proposal % is not pending', proposal_id USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;

-- product_status: 0.1.0's columns plus city, strategy and the store's mode; at-floor first.
DROP VIEW demper.product_status;
CREATE VIEW demper.product_status AS
SELECT p.id,
       s.name  AS store,
       p.sku,
       p.product_code,
       coalesce(p.city_id, s.city_id) AS city_id,
       p.price,
       p.min_price,
       p.max_price,
       (p.price <= greatest(p.min_price, 10)) AS at_floor,
       p.last_competitor_price,
       p.last_reason,
       p.last_decided_price,
       p.last_check_time,
       p.next_check_at,
       p.check_failures,
       p.last_error_class,
       p.last_error,
       p.bot_active,
       p.strategy,
       s.approval_mode,
       demper.in_working_hours(s.work_start, s.work_end, s.timezone) AS in_working_hours
  FROM demper.product p
  JOIN demper.store s ON s.id = p.store_id
 ORDER BY (p.price <= greatest(p.min_price, 10)) DESC, p.check_failures DESC, p.id;

-- demper_stats() gains the counters of deferred changes and proposals.
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

REVOKE ALL ON ALL TABLES IN SCHEMA demper FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.in_working_hours(demper.store, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.in_working_hours(time, time, text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.next_opening(demper.store, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.explain(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.approve(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION demper.reject(bigint) FROM PUBLIC;
