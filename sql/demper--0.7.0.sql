-- demper 0.7.0: the whole schema of the repricing engine, in one script for a fresh install.
-- Existing installs reach the same schema through the upgrade scripts demper--X--Y.sql;
-- test/t/016_schema_equivalence.pl compares the two, object by object.
--
-- Vocabulary (used the same way in the C++ code):
--   store        a seller's shop on the marketplace, identified by its merchant id
--   seller       the owner of one or more stores (store.seller_id); every merchant id of a seller is
--                excluded from the competitors of each of its products
--   product      one listing of a store: a marketplace product card (product_code) and the seller's
--                sku, in one city (its own city_id, else its store's), with its price rule
--   check        one look at a product's competitors: claim, fetch offers, decide, apply
--   offer        one merchant's price on a product card, as the marketplace answers it
--   decision     the new price a check arrives at, with the reason for it
--   due queue    demper.schedule: one narrow row per active product, its next check and its lease
--   lease        a worker's temporary claim on a product while its check is under way
--   proposal     a decision of a store in approval mode, waiting for demper.approve() or reject()
--   explain      the record of a check: offers seen, excluded, rule, target, clamps, final price
--   push         one price sent to the marketplace's merchant API for one listing
--   outbox       the pushes to send, written in the same transaction as the price they publish;
--                one pending push per listing: a newer decision replaces the price of a pending push
--   credentials  a store's merchant cabinet session cookies, sealed with AES-256-GCM under the key
--                in demper.credentials_key_file; only the worker opens them
--   feed         the store's whole catalogue as a Kaspi XML price list, from demper.price_feed()

\echo Use "CREATE EXTENSION demper" to load this file. \quit

-- ============================================================================================
-- Where demper installs
-- ============================================================================================

-- Two refusals before anything is created. The database must be UTF8: names and prices arrive
-- from the marketplace as UTF-8 and are stored as they come. And the schema demper must be new:
-- owned by the installing role and empty. A schema someone else created (or filled) could hold
-- operators or functions that the constraints and functions below would bind to, and the worker
-- would run them. Written with pg_catalog's operators by name for the same reason.
DO $$
DECLARE
    owner name;
BEGIN
    IF pg_catalog.getdatabaseencoding() OPERATOR(pg_catalog.<>) 'UTF8' THEN
        RAISE EXCEPTION 'demper needs a database with UTF8 encoding'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = pg_catalog.format('Database "%s" has encoding %s; the marketplace''s names arrive as UTF-8.',
                                             pg_catalog.current_database(), pg_catalog.getdatabaseencoding()),
                  HINT = 'Create the database with ENCODING ''UTF8'' (from template0) and install demper there.';
    END IF;
    SELECT r.rolname INTO owner
      FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'demper';
    IF owner OPERATOR(pg_catalog.<>) CURRENT_USER THEN
        RAISE EXCEPTION 'schema "demper" already exists and belongs to role "%"', owner
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'demper installs only into a schema of its own: objects in a schema another role controls could hijack its functions and constraints.',
                  HINT = 'Drop or rename that schema, then run CREATE EXTENSION demper again.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace OPERATOR(pg_catalog.=) 'demper'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE pronamespace OPERATOR(pg_catalog.=) 'demper'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_operator WHERE oprnamespace OPERATOR(pg_catalog.=) 'demper'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_type WHERE typnamespace OPERATOR(pg_catalog.=) 'demper'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE collnamespace OPERATOR(pg_catalog.=) 'demper'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_conversion WHERE connamespace OPERATOR(pg_catalog.=) 'demper'::pg_catalog.regnamespace)
    THEN
        RAISE EXCEPTION 'schema "demper" is not empty'
            USING ERRCODE = 'object_in_use',
                  DETAIL = 'demper installs only into a new, empty schema of its own.',
                  HINT = 'Drop or rename that schema, then run CREATE EXTENSION demper again.';
    END IF;
END
$$;

-- ============================================================================================
-- Settings and formats
-- ============================================================================================

-- check_interval returns demper.check_interval as an interval (15 minutes when the library
-- is not loaded, which is the setting's default).
CREATE FUNCTION demper.check_interval() RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(current_setting('demper.check_interval', true), '15min')::interval $$;

-- The format checks of the hot product table are C calls (src/pg/demper.cpp): every UPDATE of
-- a product row evaluates all of the table's CHECK constraints, the worker's updates included; a
-- regular expression costs more, and honours a pending shutdown even where the worker holds
-- interrupts to hand back leases.
CREATE FUNCTION demper.is_product_code(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'demper_is_product_code'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION demper.is_product_code(text) IS
    'Whether a text is a valid marketplace product code: 1 to 64 characters of A-Z a-z 0-9 _ -';

CREATE FUNCTION demper.is_city_id(text) RETURNS boolean
AS 'MODULE_PATHNAME', 'demper_is_city_id'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION demper.is_city_id(text) IS 'Whether a text is a valid marketplace city id: 9 digits';

-- ============================================================================================
-- Stores
-- ============================================================================================

CREATE TABLE demper.store (
    id                    bigint      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name                  text        NOT NULL,
    merchant_id           text        NOT NULL,
    city_id               text        NOT NULL DEFAULT '750000000',
    active                boolean     NOT NULL DEFAULT true,
    created_at            timestamptz NOT NULL DEFAULT now(),
    -- competitors: the seller's other merchant ids and the ignore list are not competitors
    seller_id             text        NOT NULL DEFAULT 'default',
    ignored_merchants     text[]      NOT NULL DEFAULT '{}',
    max_delivery_duration text,
    outlier_share         numeric,
    -- working hours, change budget, approval mode
    timezone              text        NOT NULL DEFAULT 'Asia/Almaty',
    work_start            time,
    work_end              time,
    change_budget         integer,
    change_budget_window  interval    NOT NULL DEFAULT '30 minutes',
    approval_mode         boolean     NOT NULL DEFAULT false,
    -- publishing
    push_mode             text        NOT NULL DEFAULT 'none',
    credentials           bytea,
    credentials_key       text,
    needs_login           boolean     NOT NULL DEFAULT false,
    push_paused_until     timestamptz,
    last_push_error       text,
    feed_store_ids        text[]      NOT NULL DEFAULT '{PP1}',
    -- row-level security
    owner_role            name,
    -- the seller's own floor rule for listings imported from the cabinet: NULL = none (they wait,
    -- inactive, for a min_price); else a new listing's floor is this share of its price, in percent
    import_floor_percent  numeric,
    -- the adaptive schedule (demper.adaptive_intervals): the bounds of its products' intervals
    -- (NULL: demper.check_interval_min / _max; a product's own bounds come first), and what a
    -- price war does to its decisions: follow (as ever), hold (never lower), keep_margin (leave
    -- the rival out of the competitors)
    check_interval_min    interval,
    check_interval_max    interval,
    war_policy            text        NOT NULL DEFAULT 'follow',
    CONSTRAINT store_name_not_blank CHECK (btrim(name, E' \t\r\n') <> ''),
    CONSTRAINT store_check_interval_bounds CHECK (
        (check_interval_min IS NULL OR (check_interval_min >= interval '1 second' AND check_interval_min <= interval '7 days'))
        AND (check_interval_max IS NULL OR (check_interval_max >= interval '1 second' AND check_interval_max <= interval '7 days'))
        AND (check_interval_min IS NULL OR check_interval_max IS NULL OR check_interval_min <= check_interval_max)),
    CONSTRAINT store_war_policy_known CHECK (war_policy IN ('follow', 'hold', 'keep_margin')),
    CONSTRAINT store_merchant_id_format CHECK (merchant_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    CONSTRAINT store_city_id_format CHECK (city_id ~ '^[0-9]{9}$'),
    CONSTRAINT store_max_delivery_duration_known CHECK (max_delivery_duration IS NULL OR max_delivery_duration IN
        ('EXPRESS', 'TODAY', 'TOMORROW', 'TILL_2_DAYS', 'TILL_3_DAYS', 'TILL_5_DAYS', 'TILL_7_DAYS')),
    CONSTRAINT store_outlier_share_range CHECK (outlier_share IS NULL OR (outlier_share > 0 AND outlier_share < 1)),
    CONSTRAINT store_work_hours_both CHECK ((work_start IS NULL) = (work_end IS NULL)),
    CONSTRAINT store_change_budget_positive CHECK (change_budget IS NULL OR change_budget >= 0),
    CONSTRAINT store_change_budget_window_positive CHECK (change_budget_window > interval '0'),
    CONSTRAINT store_change_budget_sane CHECK (change_budget IS NULL OR change_budget <= 1000000),
    CONSTRAINT store_change_budget_window_sane CHECK (change_budget_window <= interval '30 days'),
    CONSTRAINT store_push_mode_known CHECK (push_mode IN ('api', 'feed', 'none')),
    CONSTRAINT store_import_floor_percent_range CHECK (import_floor_percent IS NULL
        OR (import_floor_percent > 0 AND import_floor_percent <= 100))
);
COMMENT ON TABLE demper.store IS 'A seller''s shop on the marketplace; merchant_id is the seller''s own merchant id';
COMMENT ON COLUMN demper.store.credentials IS 'Sealed session cookies (AES-256-GCM); set with demper.set_credentials()';
COMMENT ON COLUMN demper.store.owner_role IS 'With row-level security on, members of this role see and edit the store';
CREATE INDEX store_seller_idx ON demper.store (seller_id);
-- A merchant id is unique among the stores of one owner role (one tenant with row-level security
-- on; everyone, as NULL, with it off): a global unique key would tell one seller, through its
-- violation, which merchant ids other sellers registered.
CREATE UNIQUE INDEX store_merchant_id_key ON demper.store ((coalesce(owner_role, '')), merchant_id);

-- validate_store gives the store constraints clear messages, and checks what they do not: each
-- ignored merchant id, the time zone, and working hours that start and end at the same time.
CREATE FUNCTION demper.validate_store() RETURNS trigger
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
    IF NEW.change_budget > 1000000 OR NEW.change_budget_window > interval '30 days' THEN
        RAISE EXCEPTION 'change_budget must be at most 1000000 changes per window of at most 30 days'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Store "%s" has change_budget %s per %s.', NEW.name, NEW.change_budget,
                                  NEW.change_budget_window);
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

CREATE TRIGGER store_validate
    BEFORE INSERT OR UPDATE ON demper.store
    FOR EACH ROW EXECUTE FUNCTION demper.validate_store();

-- ============================================================================================
-- Products
-- ============================================================================================

CREATE TABLE demper.product (
    id                    bigint      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    store_id              bigint      NOT NULL REFERENCES demper.store (id) ON DELETE CASCADE,
    product_code          text        NOT NULL,
    sku                   text        NOT NULL,
    model                 text,
    brand                 text,
    price                 bigint      NOT NULL,
    min_price             bigint,     -- the floor; NULL (imported, not set yet) = never repriced
    max_price             bigint,
    step                  bigint      NOT NULL DEFAULT 1,
    bot_active            boolean     NOT NULL DEFAULT true,
    last_check_time       timestamptz,
    -- when the product is next due, as users read and write it; the due queue holds the copy
    -- the claim scans (and, while the product is in check, its lease expiry instead)
    next_check_at         timestamptz NOT NULL,
    -- status of the last check
    check_failures        integer     NOT NULL DEFAULT 0,
    last_error_class      text,
    last_error            text,
    last_reason           text,
    last_competitor_price bigint,
    last_decided_price    bigint,
    created_at            timestamptz NOT NULL DEFAULT now(),
    city_id               text,
    -- the price rule beyond floor, ceiling and step
    strategy              text        NOT NULL DEFAULT 'undercut',
    step_percent          numeric,
    position              integer     NOT NULL DEFAULT 1,
    cost_price            bigint,
    min_margin_percent    numeric,
    floor_action          text        NOT NULL DEFAULT 'go_to_floor',
    no_competitor_action  text        NOT NULL DEFAULT 'to_max',
    max_change_percent    numeric,
    check_interval        interval,
    priority              boolean     NOT NULL DEFAULT false,
    last_explain          json,       -- json, not jsonb: written on every check, read rarely
    -- bumped by the validation trigger whenever a user changes an input of the rule: a decision
    -- made from an older version is dropped at apply time
    inputs_version        bigint      NOT NULL DEFAULT 0,
    -- from the seller's cabinet (catalogue import): the listing's pickup points with their
    -- availability as the cabinet has them (pushed back exactly; NULL = unknown: nothing is pushed),
    -- when it was last read, and whether the cabinet has it archived (then it is not repriced)
    availabilities        jsonb,
    cabinet_synced_at     timestamptz,
    cabinet_updated_at    text,
    cabinet_archived      boolean     NOT NULL DEFAULT false,
    -- the adaptive schedule (demper.adaptive_intervals): the bounds of this product's interval
    -- (NULL: its store's, else demper.check_interval_min / _max); what its checks taught (written
    -- by the worker: how often its competitors move, where it stood, the price war it may be in;
    -- NULL or unreadable = no information yet); and the rival of the price war it is in (NULL: none)
    check_interval_min    interval,
    check_interval_max    interval,
    schedule_state        text,
    war_rival             text,
    CONSTRAINT product_price_at_least_10 CHECK (price >= 10),
    CONSTRAINT product_min_price_at_least_10 CHECK (min_price >= 10),
    CONSTRAINT product_max_price_not_below_min_price CHECK (max_price IS NULL OR max_price >= min_price),
    CONSTRAINT product_step_at_least_1 CHECK (step >= 1),
    CONSTRAINT product_code_format CHECK (demper.is_product_code(product_code)),
    CONSTRAINT product_sku_not_blank CHECK (btrim(sku, E' \t\r\n') <> ''),
    CONSTRAINT product_strategy_known CHECK (strategy IN ('undercut', 'match', 'position', 'follow_second')),
    CONSTRAINT product_step_percent_range CHECK (step_percent IS NULL OR (step_percent > 0 AND step_percent <= 50)),
    CONSTRAINT product_position_at_least_1 CHECK (position BETWEEN 1 AND 64),
    CONSTRAINT product_cost_price_positive CHECK (cost_price IS NULL OR cost_price >= 1),
    CONSTRAINT product_min_margin_range CHECK (min_margin_percent IS NULL OR (min_margin_percent >= 0 AND min_margin_percent <= 1000)),
    CONSTRAINT product_floor_action_known CHECK (floor_action IN ('go_to_floor', 'hold')),
    CONSTRAINT product_no_competitor_action_known CHECK (no_competitor_action IN ('to_max', 'hold')),
    CONSTRAINT product_max_change_range CHECK (max_change_percent IS NULL OR (max_change_percent > 0 AND max_change_percent <= 100)),
    CONSTRAINT product_check_interval_range CHECK (check_interval IS NULL OR (check_interval >= interval '10 seconds' AND check_interval <= interval '7 days')),
    CONSTRAINT product_city_id_format CHECK (city_id IS NULL OR demper.is_city_id(city_id)),
    CONSTRAINT product_floor_before_repricing CHECK (min_price IS NOT NULL OR NOT bot_active),
    CONSTRAINT product_availabilities_array CHECK (availabilities IS NULL OR jsonb_typeof(availabilities) = 'array'),
    CONSTRAINT product_check_interval_bounds CHECK (
        (check_interval_min IS NULL OR (check_interval_min >= interval '1 second' AND check_interval_min <= interval '7 days'))
        AND (check_interval_max IS NULL OR (check_interval_max >= interval '1 second' AND check_interval_max <= interval '7 days'))
        AND (check_interval_min IS NULL OR check_interval_max IS NULL OR check_interval_min <= check_interval_max)),
    -- Bounds no real listing reaches, so that nothing computed from these overflows.
    CONSTRAINT product_prices_sane CHECK (price <= 10000000000 AND min_price <= 10000000000
        AND (max_price IS NULL OR max_price <= 10000000000) AND step <= 10000000000
        AND (cost_price IS NULL OR cost_price <= 10000000000))
)
-- The worker's updates of a product touch no indexed column: fillfactor leaves room for the new
-- version on the same page, so they stay HOT.
WITH (fillfactor = 80);
COMMENT ON TABLE demper.product IS 'A store''s listing, its price rule (floor, ceiling, step) and its check schedule';

-- One listing per product and city: the same sku may be repriced in several cities. Products by
-- store use this index too (it starts with store_id), so store_id has no index of its own.
CREATE UNIQUE INDEX product_store_sku_city_key ON demper.product (store_id, sku, coalesce(city_id, ''));

-- validate_product gives the constraints' rules clear messages, spreads the first check of a
-- new product over one check interval so that a bulk import never fires all at once, and counts
-- the versions of the rule's inputs.
CREATE FUNCTION demper.validate_product() RETURNS trigger
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
    IF NEW.price > 10000000000 OR NEW.min_price > 10000000000 OR NEW.max_price > 10000000000
       OR NEW.step > 10000000000 OR NEW.cost_price > 10000000000 THEN
        RAISE EXCEPTION 'prices, step and cost must be at most 10000000000'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Product "%s" has price %s, min_price %s, max_price %s, step %s, cost_price %s.',
                                  NEW.sku, NEW.price, NEW.min_price, NEW.max_price, NEW.step, NEW.cost_price),
                  HINT = 'Prices are whole tenge; no listing costs ten billion.';
    END IF;
    IF NEW.bot_active AND NEW.min_price IS NULL THEN
        RAISE EXCEPTION 'product "%" has no floor: set min_price before it is repriced', NEW.sku
            USING ERRCODE = 'check_violation',
                  DETAIL = 'A listing imported from the cabinet waits, inactive, until the seller gives it a floor.',
                  HINT = 'UPDATE demper.product SET min_price = ..., bot_active = true; or set the store''s import_floor_percent before importing.';
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

-- On UPDATE the trigger runs only when a user-facing input changes (or a price below 10 is
-- written), so the worker's own writes (schedule, status, prices it decided) never run it.
CREATE TRIGGER product_validate_insert
    BEFORE INSERT ON demper.product
    FOR EACH ROW EXECUTE FUNCTION demper.validate_product();
CREATE TRIGGER product_validate_update
    BEFORE UPDATE ON demper.product
    FOR EACH ROW
    WHEN (NEW.price < 10 OR NEW.price > 10000000000
          OR NEW.min_price IS DISTINCT FROM OLD.min_price
          OR (NEW.bot_active AND NEW.min_price IS NULL)
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

-- ============================================================================================
-- The due queue
-- ============================================================================================

-- The claim scans, locks and writes only this narrow table: the product row's updates stay HOT
-- and no product row is locked by a claim. product.next_check_at stays what users read and
-- write: the worker writes both; a user's write reaches the queue through the triggers below.
CREATE TABLE demper.schedule (
    product_id    bigint      PRIMARY KEY REFERENCES demper.product (id) ON DELETE CASCADE,
    next_check_at timestamptz NOT NULL,
    lease_token   bigint,
    lease_until   timestamptz,
    -- the adaptive schedule, as the apply last wrote it: the product's interval at pressure 1 and
    -- its bounds, in seconds (NULL: not known yet); the pressure query reads these alone
    base_interval_s real,
    shortest_s      real,
    longest_s       real
);
COMMENT ON TABLE demper.schedule IS
    'The due queue: one row per active product (bot_active), its next check and, while a worker checks it, the lease';
COMMENT ON COLUMN demper.schedule.lease_until IS
    'While a worker checks the product: when its claim runs out (then any worker may claim it again)';
CREATE INDEX schedule_due_idx ON demper.schedule (next_check_at);
-- The leased rows only (a few thousand at most): a worker that starts finds the leases of
-- workers that no longer exist through it, whatever the size of the catalogue.
CREATE INDEX schedule_leased_idx ON demper.schedule (lease_token) WHERE lease_token IS NOT NULL;

-- sync_schedule keeps the queue equal to what users write: a product's next check, and its
-- presence (active products only). The worker's own session fires no trigger
-- (session_replication_role = replica) and writes the queue itself, in the same statements.
CREATE FUNCTION demper.sync_schedule() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
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

-- Whether a check of the product is under way: its lease, read for callers who may not read the
-- schedule (nothing of it is granted; it has no store to filter rows by).
CREATE FUNCTION demper.in_check(product_id bigint) RETURNS boolean
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
                    WHERE s.product_id = in_check.product_id AND s.lease_until > now()
                      AND demper.caller_may_manage(p.store_id))
$$;
COMMENT ON FUNCTION demper.in_check(bigint) IS 'Whether a worker is checking the product right now';

-- The due queue's rows, for views that join them to the products a caller may see.
CREATE FUNCTION demper.due_queue() RETURNS TABLE (product_id bigint, next_check_at timestamptz,
                                                  lease_until timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.product_id, s.next_check_at, s.lease_until
      FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
     WHERE p.store_id IN (SELECT st.id FROM demper.store st WHERE demper.caller_may_manage(st.id))
$$;
COMMENT ON FUNCTION demper.due_queue() IS
    'The due queue: next check and lease of the active products of the stores the caller may manage';

-- repair_queue: every active product has its row in the due queue, and only those. Users' writes
-- keep it so through the sync_schedule trigger; a restore or a load with triggers disabled does
-- not. It compares the whole catalogue with the queue (seconds at millions of products), so the
-- worker runs it at its start only when the queue is empty while active products exist (a restore
-- with triggers disabled); after a load into a live catalogue with triggers disabled, call it.
CREATE FUNCTION demper.repair_queue(only_if_empty boolean DEFAULT false,
                                    OUT added bigint, OUT removed bigint)
LANGUAGE plpgsql SECURITY DEFINER
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
COMMENT ON FUNCTION demper.repair_queue(boolean) IS
    'Rebuilds the due queue from the products (after a load with triggers disabled); with true, only when it is empty';

-- ============================================================================================
-- Price history and proposals
-- ============================================================================================

-- History knows its store, so that budgets, per-store reports and retention need no join.
CREATE TABLE demper.price_history (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id       bigint      NOT NULL REFERENCES demper.product (id) ON DELETE CASCADE,
    changed_at       timestamptz NOT NULL DEFAULT now(),
    old_price        bigint      NOT NULL,
    new_price        bigint      NOT NULL,
    competitor_price bigint,
    reason           text        NOT NULL,
    store_id         bigint      NOT NULL
);
COMMENT ON TABLE demper.price_history IS 'One row per price change made by demper, with the competitor price it reacted to';
CREATE INDEX price_history_product_idx ON demper.price_history (product_id, changed_at);
-- Retention goes store by store through this one: an index on changed_at alone would cost an
-- entry per price change for retention only.
CREATE INDEX price_history_store_idx ON demper.price_history (store_id, changed_at);

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
CREATE INDEX proposal_decided_idx ON demper.proposal (decided_at) WHERE status <> 'pending';

-- ============================================================================================
-- Publishing
-- ============================================================================================

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
    -- after the marketplace accepted a push: whether the cabinet shows the price (verified), does
    -- not after demper.push_verify_timeout (rejected), or took the offer off sale (off_sale)
    verify_status   text,
    verify_after    timestamptz,
    verified_at     timestamptz,
    verify_detail   text,
    -- a pending push that cannot go yet: 'pickup_points' (its listing's availabilities are
    -- unknown until a catalogue sync: a push without them would take the offer off sale)
    waiting_for     text,
    CONSTRAINT outbox_status_known CHECK (status IN ('pending', 'done', 'failed')),
    CONSTRAINT outbox_verify_status_known CHECK (verify_status IS NULL
        OR verify_status IN ('verifying', 'verified', 'rejected', 'off_sale'))
);
COMMENT ON TABLE demper.outbox IS 'Prices to publish through the merchant API; one pending row per listing';
CREATE UNIQUE INDEX outbox_one_pending_idx ON demper.outbox (product_id) WHERE status = 'pending';
CREATE INDEX outbox_due_idx ON demper.outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_finished_idx ON demper.outbox (done_at) WHERE status <> 'pending';
CREATE INDEX outbox_store_idx ON demper.outbox (store_id, status);
-- The pushes waiting to be verified (the worker reads the cabinet back for them).
CREATE INDEX outbox_verify_idx ON demper.outbox (verify_after) WHERE verify_status = 'verifying';

-- enqueue_push writes (or refreshes) the pending push of a listing whose store publishes through
-- the API. Called by the trigger below, so that every price change, by the worker or by
-- demper.approve(), reaches the outbox in the same transaction.
CREATE FUNCTION demper.enqueue_push() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
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

CREATE TRIGGER product_enqueue_push
    AFTER UPDATE OF price ON demper.product
    FOR EACH ROW
    WHEN (NEW.price IS DISTINCT FROM OLD.price)
    EXECUTE FUNCTION demper.enqueue_push();

-- Credentials and the feed are handled in C (src/pg/publish_functions.cpp).
-- An error inside set_credentials would log the statement that called it, cookies and all
-- (log_min_error_statement): the function turns that off while it runs.
CREATE FUNCTION demper.set_credentials(store_id bigint, session text, sid text) RETURNS text
AS 'MODULE_PATHNAME', 'demper_set_credentials'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic;
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

-- ============================================================================================
-- Working hours and explanations
-- ============================================================================================

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

-- next_opening returns when a store's working hours next begin (now() when it has none). The
-- opening is a day plus a time of day, cast to interval so that the addition is exactly
-- pg_catalog's timestamp + interval.
CREATE FUNCTION demper.next_opening(s demper.store, at timestamptz DEFAULT now()) RETURNS timestamptz
LANGUAGE sql STABLE
AS $$
    SELECT CASE
        WHEN s.work_start IS NULL THEN at
        ELSE (SELECT CASE WHEN today > (at AT TIME ZONE s.timezone) THEN today
                          ELSE today + interval '1 day' END AT TIME ZONE s.timezone
                FROM (SELECT date_trunc('day', at AT TIME ZONE s.timezone) + s.work_start::interval AS today) t)
    END
$$;

-- store_hours says whether a store is within its working hours now: 'open', 'closed', or
-- 'bad_time_zone' when its time zone no longer resolves (a tzdata upgrade can remove a name the
-- store was created with). The worker reads it once per store per claim and per apply: one store's
-- time zone never stops the others.
CREATE FUNCTION demper.store_hours(s demper.store, at timestamptz DEFAULT now()) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF s.work_start IS NULL THEN
        RETURN 'open';
    END IF;
    RETURN CASE WHEN demper.in_working_hours(s.work_start, s.work_end, s.timezone, at) THEN 'open' ELSE 'closed' END;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN 'bad_time_zone';
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

-- ============================================================================================
-- Row-level security
-- ============================================================================================

-- Optional, off until demper.enable_row_security(true): for services that host many sellers in
-- one database, a store belongs to store.owner_role, and a role sees and edits only the stores
-- whose owner role it is a member of, with their products, history, proposals and pushes. The
-- worker (demper_worker, BYPASSRLS) and superusers are not restricted.
CREATE FUNCTION demper.visible_store(store_id bigint) RETURNS boolean
LANGUAGE sql STABLE
AS $$ SELECT EXISTS (SELECT 1 FROM demper.store s WHERE s.id = visible_store.store_id) $$;

-- is_member_of says whether a role is a member of the role named role_name; false when no role
-- has that name (a dropped owner role hides its stores, instead of making every query that reads
-- the store table fail).
CREATE FUNCTION demper.is_member_of(member name, role_name name) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT pg_has_role(member, r.oid, 'MEMBER') FROM pg_roles r WHERE r.rolname = role_name),
                    false)
$$;

CREATE POLICY store_owner ON demper.store USING (demper.is_member_of(current_user, owner_role));
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
                    WHERE s.id = caller_may_manage.store_id
                      AND demper.is_member_of(demper.caller_role(), s.owner_role))
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

-- ============================================================================================
-- Proposals
-- ============================================================================================

-- approve applies a pending proposal, if the product's price is still the one it was made from.
-- It and reject write history and proposals on behalf of demper_admin (SECURITY DEFINER), so
-- they check the caller's right to the store themselves.
CREATE FUNCTION demper.approve(proposal_id bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pr demper.proposal;
    current_price bigint;
    current_floor bigint;
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
    SELECT price, min_price INTO current_price, current_floor FROM demper.product WHERE id = pr.product_id FOR UPDATE;
    IF current_price IS DISTINCT FROM pr.old_price THEN
        UPDATE demper.proposal SET status = 'stale', decided_at = now(), decided_by = demper.caller_role()
         WHERE id = proposal_id;
        RAISE WARNING 'proposal % is stale: the price is now %, not %', proposal_id, current_price, pr.old_price
            USING HINT = 'The next check makes a new proposal.';
        RETURN current_price;
    END IF;
    -- The floor may have been raised since the proposal was made: a price below it is never set.
    IF pr.new_price < greatest(current_floor, 10) THEN
        UPDATE demper.proposal SET status = 'stale', decided_at = now(), decided_by = demper.caller_role()
         WHERE id = proposal_id;
        RAISE WARNING 'proposal % is stale: its price % is below the floor %', proposal_id, pr.new_price, current_floor
            USING HINT = 'The next check makes a new proposal from the current floor.';
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

-- reject turns a pending proposal down; the price stays.
CREATE FUNCTION demper.reject(proposal_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
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

-- ============================================================================================
-- Workers and their counters (C, src/pg/demper.cpp)
-- ============================================================================================

-- demper_stats: counters, gauges, and check and push latency percentiles (from fixed-bucket
-- histograms in shared memory) of all workers.
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
    OUT wake_requests    bigint,
    OUT pushes_verified  bigint,
    OUT pushes_rejected  bigint,
    OUT offers_off_sale  bigint,
    OUT catalogue_syncs  bigint,
    OUT catalogue_sync_failures bigint,
    OUT check_latency_p50_ms float8,
    OUT check_latency_p95_ms float8,
    OUT check_latency_p99_ms float8,
    OUT push_latency_p50_ms  float8,
    OUT push_latency_p95_ms  float8,
    OUT push_latency_p99_ms  float8,
    OUT checks_per_second    float8,
    OUT schedule_pressure    float8,
    OUT stats_reset      timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'demper_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION demper.demper_stats() IS 'Counters, gauges and latency percentiles of all demper workers since the last demper_stats_reset()';

CREATE FUNCTION demper.http_status(
    OUT kind             text,
    OUT name             text,
    OUT effective_rate   float8,
    OUT state            text,
    OUT cooldown_left    float8,
    OUT bans             bigint,
    OUT breaker_opens    bigint,
    OUT in_flight        integer,
    OUT queued           integer,
    OUT published_at     timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'demper_http_status'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION demper.http_status() IS 'Each target host and egress of the workers: effective rate, breaker or rest state, bans';

CREATE FUNCTION demper.demper_stats_reset() RETURNS void
AS 'MODULE_PATHNAME', 'demper_stats_reset'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION demper.wake_workers() RETURNS void
AS 'MODULE_PATHNAME', 'demper_wake_workers'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION demper.wake_workers() IS 'Wakes the workers so that they look for due products now';

-- latency_histogram: the raw buckets behind the percentiles (for Prometheus histograms).
CREATE FUNCTION demper.latency_histogram(
    OUT kind text, OUT le_seconds float8, OUT bucket_count bigint, OUT sum_seconds float8)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'demper_latency_histogram'
LANGUAGE C STRICT VOLATILE;

-- store_counters: the counters per store, for billing and support (the store_stats view), of the
-- stores the caller may manage. The counters of every store (shared memory, C) are read through
-- store_counters_of_all_stores(), which nobody else may call.
CREATE FUNCTION demper.store_counters_of_all_stores(
    OUT store_id bigint, OUT checks_ok bigint, OUT checks_failed bigint, OUT price_changes bigint,
    OUT price_up bigint, OUT price_down bigint, OUT floor_hits bigint, OUT budget_deferred bigint,
    OUT proposals bigint, OUT pushes_ok bigint, OUT pushes_failed bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'demper_store_counters'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION demper.store_counters(
    OUT store_id bigint, OUT checks_ok bigint, OUT checks_failed bigint, OUT price_changes bigint,
    OUT price_up bigint, OUT price_down bigint, OUT floor_hits bigint, OUT budget_deferred bigint,
    OUT proposals bigint, OUT pushes_ok bigint, OUT pushes_failed bigint)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.* FROM demper.store_counters_of_all_stores() c
     WHERE c.store_id IN (SELECT s.id FROM demper.store s WHERE demper.caller_may_manage(s.id))
$$;

-- worker_status: one row per running worker (the status view).
CREATE FUNCTION demper.worker_status(
    OUT pid integer, OUT state text, OUT database text, OUT in_check integer,
    OUT checks_per_second float8, OUT started_at timestamptz, OUT last_error text,
    OUT last_error_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'demper_worker_status'
LANGUAGE C STRICT VOLATILE;

-- The figures of the whole engine (demper_stats, http_status, latency_histogram, worker_status
-- and the status view, metrics, demper_stats_reset) cover every seller's stores: while row-level
-- security is on they are the operator's, and a caller that is not a superuser, the extension's
-- owner or a member of pg_monitor is refused (with row-level security off, everyone granted them
-- sees them). engine_figures_visible says whether the current role may; require_engine_figures
-- raises the refusal. Both are C, like the functions they guard, which check the same rule
-- themselves: no view or wrapper can read around it.
CREATE FUNCTION demper.engine_figures_visible() RETURNS boolean
AS 'MODULE_PATHNAME', 'demper_engine_figures_visible'
LANGUAGE C STABLE;
COMMENT ON FUNCTION demper.engine_figures_visible() IS
    'Whether the current role may see the engine-wide figures: always with row-level security off; with it on, superusers, the extension''s owner and pg_monitor';

CREATE FUNCTION demper.require_engine_figures() RETURNS void
AS 'MODULE_PATHNAME', 'demper_require_engine_figures'
LANGUAGE C STABLE;

-- check_now makes one product due immediately and wakes the worker.
CREATE FUNCTION demper.check_now(product_id bigint) RETURNS void
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

-- ============================================================================================
-- Views
-- ============================================================================================
-- Views run with the privileges and row-level security of the role that reads them.

-- product_status: one row per product, those held at their floor first, because "my price does
-- not move" nearly always means the product sits at its floor.
CREATE VIEW demper.product_status WITH (security_invoker = true) AS
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
       demper.in_working_hours(s.work_start, s.work_end, s.timezone) AS in_working_hours,
       p.war_rival
  FROM demper.product p
  JOIN demper.store s ON s.id = p.store_id
 ORDER BY (p.price <= greatest(p.min_price, 10)) DESC, p.check_failures DESC, p.id;

-- backlog: how much is due, how stale the oldest due product is, and when the workers would
-- catch up at their current rate. It reads the due queue: a product in check is not due (the
-- claim moved its due time to the end of its lease), whatever product.next_check_at still says.
-- The rate is the whole engine's: NULL, with the catch-up time, for whoever may not see it.
CREATE VIEW demper.backlog WITH (security_invoker = true) AS
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
       (SELECT CASE WHEN demper.engine_figures_visible()
                    THEN (SELECT coalesce(sum(checks_per_second), 0) FROM demper.worker_status()) END AS rate) r;

-- push_status: what publishing does per store.
CREATE VIEW demper.push_status WITH (security_invoker = true) AS
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
       max(o.done_at) AS last_push_at,
       count(o.*) FILTER (WHERE o.status = 'pending' AND o.waiting_for = 'pickup_points') AS waiting_for_pickup_points,
       count(o.*) FILTER (WHERE o.verify_status = 'verifying') AS verifying,
       count(o.*) FILTER (WHERE o.verify_status = 'verified') AS verified,
       count(o.*) FILTER (WHERE o.verify_status = 'rejected') AS rejected,
       count(o.*) FILTER (WHERE o.verify_status = 'off_sale') AS off_sale,
       max(o.verified_at) FILTER (WHERE o.verify_status = 'off_sale') AS last_off_sale_at
  FROM demper.store s
  LEFT JOIN demper.outbox o ON o.store_id = s.id
 GROUP BY s.id;

-- store_stats: the per-store counters with each store's active products and those at the floor.
CREATE VIEW demper.store_stats WITH (security_invoker = true) AS
SELECT s.id AS store_id, s.name AS store, s.merchant_id,
       coalesce(c.checks_ok, 0) AS checks_ok, coalesce(c.checks_failed, 0) AS checks_failed,
       coalesce(c.price_changes, 0) AS price_changes, coalesce(c.price_up, 0) AS price_up,
       coalesce(c.price_down, 0) AS price_down, coalesce(c.floor_hits, 0) AS floor_hits,
       coalesce(c.budget_deferred, 0) AS budget_deferred, coalesce(c.proposals, 0) AS proposals,
       coalesce(c.pushes_ok, 0) AS pushes_ok, coalesce(c.pushes_failed, 0) AS pushes_failed,
       (SELECT count(*) FROM demper.product p WHERE p.store_id = s.id AND p.bot_active) AS active_products,
       (SELECT count(*) FROM demper.product p WHERE p.store_id = s.id AND p.bot_active
           AND p.price <= greatest(p.min_price, 10)) AS at_floor,
       (SELECT count(*) FROM demper.product p WHERE p.store_id = s.id AND p.bot_active
           AND p.war_rival IS NOT NULL) AS products_at_war,
       s.war_policy
  FROM demper.store s
  LEFT JOIN demper.store_counters() c ON c.store_id = s.id;

-- status: one row per running worker.
CREATE VIEW demper.status AS
SELECT pid, state, database, in_check AS current_batch, checks_per_second,
       started_at, now() - started_at AS uptime, last_error, last_error_at
  FROM demper.worker_status();

-- ============================================================================================
-- The seller's cabinet: catalogue import and verified pushes
-- ============================================================================================

-- catalogue_sync_state: per store, the catalogue import's state. The worker imports a store's
-- catalogue when asked (sync_catalogue) and every demper.catalogue_sync_interval.
CREATE TABLE demper.catalogue_sync_state (
    store_id      bigint      PRIMARY KEY REFERENCES demper.store (id) ON DELETE CASCADE,
    requested_at  timestamptz,          -- sync_catalogue() asked for a sync (NULL: none waiting)
    started_at    timestamptz,
    finished_at   timestamptz,
    status        text        NOT NULL DEFAULT 'never',
    listings_seen integer     NOT NULL DEFAULT 0,   -- on sale and archived, of the last sync
    added         integer     NOT NULL DEFAULT 0,
    updated       integer     NOT NULL DEFAULT 0,
    archived      integer     NOT NULL DEFAULT 0,
    price_edits   integer     NOT NULL DEFAULT 0,   -- prices the seller changed in the cabinet
    error         text,
    CONSTRAINT catalogue_sync_status_known CHECK (status IN ('never', 'running', 'done', 'failed'))
);
COMMENT ON TABLE demper.catalogue_sync_state IS
    'The catalogue import of each store from the seller''s cabinet: when, what it found, and why it failed';

-- sync_catalogue asks the worker to import a store's catalogue from its cabinet now; it returns at
-- once (the import runs in the worker, a page at a time: demper.catalogue_sync shows it).
CREATE FUNCTION demper.sync_catalogue(store_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF store_id IS NULL THEN
        RAISE EXCEPTION 'store id must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM demper.store s WHERE s.id = sync_catalogue.store_id)
       OR NOT demper.caller_may_manage(store_id) THEN
        RAISE EXCEPTION 'store % does not exist', store_id USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO demper.catalogue_sync_state (store_id, requested_at) VALUES (store_id, now())
    ON CONFLICT ON CONSTRAINT catalogue_sync_state_pkey DO UPDATE SET requested_at = now();
    PERFORM demper.wake_workers();
END
$$;
COMMENT ON FUNCTION demper.sync_catalogue(bigint) IS
    'Asks the worker to import the store''s catalogue from the seller''s cabinet now (see demper.catalogue_sync)';

-- catalogue_sync: per store, the last import: when it started and finished, the listings it saw,
-- added, updated and archived, the prices the seller changed in the cabinet, and its error.
CREATE VIEW demper.catalogue_sync WITH (security_invoker = true) AS
SELECT s.id AS store_id, s.name AS store, s.merchant_id,
       coalesce(c.status, 'never') AS status, c.requested_at, c.started_at, c.finished_at,
       coalesce(c.listings_seen, 0) AS listings_seen, coalesce(c.added, 0) AS added,
       coalesce(c.updated, 0) AS updated, coalesce(c.archived, 0) AS archived,
       coalesce(c.price_edits, 0) AS price_edits, c.error,
       (SELECT count(*) FROM demper.product p
         WHERE p.store_id = s.id AND p.cabinet_synced_at IS NOT NULL AND p.min_price IS NULL) AS waiting_for_floor
  FROM demper.store s
  LEFT JOIN demper.catalogue_sync_state c ON c.store_id = s.id;

-- ============================================================================================
-- The adaptive schedule: intervals where prices move, and price wars
-- ============================================================================================

-- validate_schedule_settings: clear errors for a store's or a product's schedule settings (the
-- tables' constraints hold the same rules).
CREATE FUNCTION demper.validate_schedule_settings() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.check_interval_min < interval '1 second' OR NEW.check_interval_min > interval '7 days'
       OR NEW.check_interval_max < interval '1 second' OR NEW.check_interval_max > interval '7 days' THEN
        RAISE EXCEPTION 'check_interval_min and check_interval_max must be between 1 second and 7 days'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('%s "%s" has check_interval_min %s and check_interval_max %s.',
                                  CASE TG_TABLE_NAME WHEN 'store' THEN 'Store' ELSE 'Product' END,
                                  coalesce(to_jsonb(NEW) ->> 'sku', to_jsonb(NEW) ->> 'name'),
                                  coalesce(NEW.check_interval_min::text, 'NULL'),
                                  coalesce(NEW.check_interval_max::text, 'NULL'));
    END IF;
    IF NEW.check_interval_min > NEW.check_interval_max THEN
        RAISE EXCEPTION 'check_interval_min must not be above check_interval_max'
            USING ERRCODE = 'check_violation',
                  DETAIL = format('%s "%s" has check_interval_min %s and check_interval_max %s.',
                                  CASE TG_TABLE_NAME WHEN 'store' THEN 'Store' ELSE 'Product' END,
                                  coalesce(to_jsonb(NEW) ->> 'sku', to_jsonb(NEW) ->> 'name'),
                                  NEW.check_interval_min, NEW.check_interval_max),
                  HINT = 'They bound the time between two checks: the shortest comes first.';
    END IF;
    IF TG_TABLE_NAME = 'store' THEN
        IF NEW.war_policy IS DISTINCT FROM 'follow' AND NEW.war_policy IS DISTINCT FROM 'hold'
           AND NEW.war_policy IS DISTINCT FROM 'keep_margin' THEN
            RAISE EXCEPTION 'unknown war policy "%"', NEW.war_policy
                USING ERRCODE = 'check_violation',
                      HINT = 'Use follow (undercut as ever), hold (never lower the price during a price war) or keep_margin (leave the rival out of the competitors).';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER store_validate_schedule
    BEFORE INSERT OR UPDATE OF check_interval_min, check_interval_max, war_policy ON demper.store
    FOR EACH ROW EXECUTE FUNCTION demper.validate_schedule_settings();
CREATE TRIGGER product_validate_schedule
    BEFORE INSERT OR UPDATE OF check_interval_min, check_interval_max ON demper.product
    FOR EACH ROW
    WHEN (NEW.check_interval_min IS NOT NULL OR NEW.check_interval_max IS NOT NULL)
    EXECUTE FUNCTION demper.validate_schedule_settings();

COMMENT ON COLUMN demper.product.check_interval_min IS
    'Adaptive schedule: the shortest time between two checks of this product (NULL: its store''s, else demper.check_interval_min)';
COMMENT ON COLUMN demper.product.check_interval_max IS
    'Adaptive schedule: the longest time between two checks of this product (NULL: its store''s, else demper.check_interval_max)';
COMMENT ON COLUMN demper.product.schedule_state IS
    'Adaptive schedule: what the product''s checks taught (written by the worker; NULL: no information yet)';
COMMENT ON COLUMN demper.product.war_rival IS
    'The merchant id of the rival in the price war this product is in (NULL: none)';
COMMENT ON COLUMN demper.store.war_policy IS
    'What a price war does to this store''s decisions: follow, hold or keep_margin';

-- ============================================================================================
-- Retention and metrics
-- ============================================================================================

-- Finished rows older than demper.history_retention go, in small batches (the worker calls
-- prune_batch in transactions of its own every demper.prune_interval).
-- It runs as the extension's owner (demper_admin and the worker have no DELETE right) and prunes
-- only the stores the caller may manage: one seller's prune never shortens another's history.
CREATE FUNCTION demper.prune_batch(retention interval, batch integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed integer := 0;
    n integer;
    stores bigint[];
BEGIN
    IF retention IS NULL OR retention <= interval '0' THEN
        RAISE EXCEPTION 'retention must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'batch must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    stores := ARRAY(SELECT s.id FROM demper.store s WHERE demper.caller_may_manage(s.id));
    -- Oldest first within each store, through price_history_store_idx (store_id, changed_at).
    DELETE FROM demper.price_history WHERE id IN (
        SELECT h.id
          FROM demper.store s
         CROSS JOIN LATERAL (SELECT id, changed_at FROM demper.price_history
                              WHERE store_id = s.id AND changed_at < now() - retention
                              ORDER BY changed_at LIMIT batch) h
         WHERE s.id = ANY (stores)
         ORDER BY h.changed_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;
    DELETE FROM demper.outbox WHERE id IN (
        SELECT id FROM demper.outbox WHERE status <> 'pending' AND done_at < now() - retention
           AND store_id = ANY (stores)
         ORDER BY done_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    removed := removed + n;
    DELETE FROM demper.proposal WHERE id IN (
        SELECT id FROM demper.proposal WHERE status <> 'pending' AND decided_at < now() - retention
           AND store_id = ANY (stores)
         ORDER BY decided_at LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN removed + n;
END
$$;
COMMENT ON FUNCTION demper.prune_batch(interval, integer) IS
    'Removes at most batch rows of each of price_history, finished outbox rows and decided proposals older than retention';

-- metrics: everything above in the Prometheus text exposition format. Every family has HELP and
-- TYPE, counters end in _total, durations are in seconds, and labels are bounded: an error class,
-- a worker state, a host or egress of the settings, a store; never a product.
-- contrib/prometheus/demper-queries.yaml gives prometheus-postgres-exporter the same families;
-- test/t/018_prometheus.pl holds both to the same names, help, labels and values.
CREATE FUNCTION demper.metrics() RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    out text[] := '{}';
    family text := '';
    r record;
BEGIN
    -- Every figure below but the per-store ones is the whole engine's: refuse before reading any.
    PERFORM demper.require_engine_figures();
    FOR r IN
        WITH stats AS (SELECT * FROM demper.demper_stats()),
             backlog AS (SELECT * FROM demper.backlog),
             -- Each worker has its own row of an endpoint it uses: one series per endpoint.
             endpoint AS (
                 SELECT kind, replace(replace(replace(name, '\', '\\'), '"', '\"'), E'\n', '\n') AS name,
                        sum(effective_rate) AS effective_rate, sum(bans) AS bans,
                        sum(breaker_opens) AS breaker_opens, sum(in_flight) AS in_flight,
                        max(CASE WHEN state IN ('open', 'half_open') THEN 1 ELSE 0 END) AS breaker_open,
                        max(CASE WHEN state = 'resting' THEN 1 ELSE 0 END) AS resting
                   FROM demper.http_status() GROUP BY kind, name),
             store AS (
                 SELECT t.*, s.needs_login, coalesce(s.push_paused_until > now(), false) AS pushes_paused,
                        coalesce(o.pending, 0) AS pushes_pending,
                        coalesce(extract(epoch FROM now() - o.oldest), 0) AS oldest_pending_push_seconds
                   FROM demper.store_stats t
                   JOIN demper.store s ON s.id = t.store_id
                   LEFT JOIN (SELECT store_id, count(*) AS pending, min(created_at) AS oldest
                                FROM demper.outbox WHERE status = 'pending' GROUP BY store_id) o
                          ON o.store_id = t.store_id),
             histogram AS (
                 SELECT kind, le_seconds, sum_seconds,
                        sum(bucket_count) OVER (PARTITION BY kind ORDER BY le_seconds) AS cumulative
                   FROM demper.latency_histogram())
        -- family, type, help, sample (the family with a histogram's suffix), labels, value, and
        -- the order of families and of samples within one.
        SELECT m.* FROM stats, backlog, LATERAL (VALUES
            (1, 'demper_checks_started_total', 'counter', 'Checks started: due products claimed and their offers requested.', stats.checks_started::numeric),
            (2, 'demper_checks_ok_total', 'counter', 'Checks that ended in a decision.', stats.checks_ok),
            (3, 'demper_checks_failed_total', 'counter', 'Checks that failed and changed no price (by class: demper_checks_failed_by_class_total).', stats.checks_failed),
            (5, 'demper_price_changes_total', 'counter', 'Prices the workers changed.', stats.price_changes),
            (6, 'demper_price_up_total', 'counter', 'Price changes upwards.', stats.price_up),
            (7, 'demper_price_down_total', 'counter', 'Price changes downwards.', stats.price_down),
            (8, 'demper_floor_hits_total', 'counter', 'Decisions that stopped at the product''s floor.', stats.floor_hits),
            (9, 'demper_decisions_discarded_total', 'counter', 'Decisions dropped because a user changed the product during its check.', stats.decisions_discarded),
            (10, 'demper_budget_deferred_total', 'counter', 'Price changes deferred by a store''s change budget.', stats.budget_deferred),
            (11, 'demper_proposals_total', 'counter', 'Decisions recorded as proposals (stores in approval mode).', stats.proposals),
            (12, 'demper_pushes_ok_total', 'counter', 'Price pushes the marketplace accepted, or that a newer price replaced.', stats.pushes_ok),
            (13, 'demper_pushes_failed_total', 'counter', 'Price pushes that failed for good.', stats.pushes_failed),
            (14, 'demper_pushes_retried_total', 'counter', 'Price pushes scheduled again after a failure.', stats.pushes_retried),
            (15, 'demper_http_requests_total', 'counter', 'HTTP requests sent to the marketplace.', stats.http_requests),
            (16, 'demper_http_retries_total', 'counter', 'HTTP requests sent again after a failure.', stats.http_retries),
            (17, 'demper_rate_limit_waits_total', 'counter', 'Requests that waited for the rate limiter.', stats.rate_limit_waits),
            (18, 'demper_bans_total', 'counter', 'Ban answers from the marketplace (403, 429, 526).', stats.bans),
            (19, 'demper_breaker_opens_total', 'counter', 'Times a host''s circuit breaker opened.', stats.breaker_opens),
            (20, 'demper_egress_cooldowns_total', 'counter', 'Times an egress rested after a ban signal.', stats.egress_cooldowns),
            (21, 'demper_in_flight', 'gauge', 'HTTP requests in flight.', stats.in_flight),
            (22, 'demper_queued', 'gauge', 'HTTP requests waiting for the rate limiter or a connection slot.', stats.queued),
            (23, 'demper_checks_per_second', 'gauge', 'Checks per second of all workers (moving average).', stats.checks_per_second::numeric),
            (24, 'demper_backlog_due', 'gauge', 'Active products due for a check now.', backlog.due_now),
            (25, 'demper_backlog_oldest_due_seconds', 'gauge', 'How long the oldest due product has been due.', extract(epoch FROM backlog.oldest_due_age)),
            (26, 'demper_backlog_in_check', 'gauge', 'Active products being checked now.', backlog.in_check),
            (28, 'demper_wake_requests_total', 'counter', 'Committed transactions that woke the workers (wake_workers, check_now): one per transaction.', stats.wake_requests),
            (29, 'demper_pushes_verified_total', 'counter', 'Accepted pushes whose price the cabinet shows.', stats.pushes_verified),
            (30, 'demper_pushes_rejected_total', 'counter', 'Accepted pushes the cabinet did not show within demper.push_verify_timeout.', stats.pushes_rejected),
            (31, 'demper_offers_off_sale_total', 'counter', 'Offers the marketplace took off sale after a price push.', stats.offers_off_sale),
            (32, 'demper_catalogue_syncs_total', 'counter', 'Catalogue imports from a cabinet started.', stats.catalogue_syncs),
            (33, 'demper_catalogue_sync_failures_total', 'counter', 'Catalogue imports that ended with an error.', stats.catalogue_sync_failures),
            (34, 'demper_schedule_pressure', 'gauge', 'The adaptive schedule''s pressure: every product''s interval is stretched (above 1) or shrunk (below 1) by it to fit the request budget; 1 when demper.adaptive_intervals is off.', stats.schedule_pressure),
            (27, 'demper_active_products', 'gauge', 'Active products.', backlog.active_products)
        ) AS v(ord, family, type, help, value),
        LATERAL (SELECT v.family, v.type, v.help, v.family AS sample, '' AS labels, v.value, v.ord, 0::numeric AS seq) m
        UNION ALL
        SELECT 'demper_checks_failed_by_class_total', 'counter', 'Failed checks by error class.',
               'demper_checks_failed_by_class_total', format('{class="%s"}', substr(key, 8)), value::numeric, 4, 0
          FROM stats, jsonb_each(to_jsonb(stats)) WHERE key LIKE 'failed\_%'
        UNION ALL
        SELECT 'demper_workers_by_state', 'gauge', 'Running demper workers by state (as in demper.status).',
               'demper_workers_by_state', format('{state="%s"}', k.state), count(w.pid), 30, 0
          FROM (SELECT unnest(ARRAY['starting', 'waiting for extension', 'disabled', 'checking', 'idle'])
                UNION SELECT state FROM demper.worker_status()) k(state)
          LEFT JOIN demper.worker_status() w ON w.state = k.state
         GROUP BY k.state
        UNION ALL
        SELECT format('demper_%s_latency_seconds', kind), 'histogram',
               CASE kind WHEN 'check' THEN 'Time from a check''s request to its answer.'
                         ELSE 'Time from a push''s request to its answer.' END,
               format('demper_%s_latency_seconds_bucket', kind),
               format('{le="%s"}', CASE WHEN le_seconds = 'Infinity' THEN '+Inf' ELSE le_seconds::text END),
               cumulative, 40, le_seconds::numeric
          FROM histogram
        UNION ALL
        SELECT format('demper_%s_latency_seconds', kind), 'histogram', NULL,
               format('demper_%s_latency_seconds_%s', kind, part), '', value, 40, NULL
          FROM (SELECT kind, 'sum' AS part, max(sum_seconds)::numeric AS value FROM histogram GROUP BY kind
                UNION ALL
                SELECT kind, 'count', max(cumulative) FROM histogram GROUP BY kind) t
        UNION ALL
        SELECT 'demper_http_' || e.family, e.type, e.help, 'demper_http_' || e.family,
               format('{kind="%s",name="%s"}', kind, name), e.value, 50 + e.ord, 0
          FROM endpoint, LATERAL (VALUES
              (1, 'effective_rate_per_second', 'gauge', 'Requests per second the rate limiter admits now to the host or egress.', effective_rate::numeric, true),
              (2, 'bans_total', 'counter', 'Ban answers received through the host or egress.', bans, true),
              (3, 'in_flight', 'gauge', 'HTTP requests in flight to the host or through the egress.', in_flight, true),
              (4, 'breaker_open', 'gauge', '1 while the host''s circuit breaker is open or half open.', breaker_open, kind = 'host'),
              (5, 'breaker_opens_total', 'counter', 'Times the host''s circuit breaker opened.', breaker_opens, kind = 'host'),
              (6, 'egress_resting', 'gauge', '1 while the egress rests after a ban signal.', resting, kind = 'egress')
          ) AS e(ord, family, type, help, value, applies)
         WHERE e.applies
        UNION ALL
        SELECT 'demper_store_' || f.family, f.type, f.help, 'demper_store_' || f.family,
               format('{store_id="%s"%s}', store_id, f.label), f.value, 60 + f.ord, store_id
          FROM store, LATERAL (VALUES
              (1, 'checks_total', 'counter', 'Checks per store and outcome (ok, failed).', ',outcome="ok"', checks_ok::numeric),
              (1, 'checks_total', 'counter', 'Checks per store and outcome (ok, failed).', ',outcome="failed"', checks_failed),
              (2, 'price_changes_total', 'counter', 'Price changes per store and direction (up, down).', ',direction="up"', price_up),
              (2, 'price_changes_total', 'counter', 'Price changes per store and direction (up, down).', ',direction="down"', price_down),
              (3, 'floor_hits_total', 'counter', 'Decisions per store that stopped at the product''s floor.', '', floor_hits),
              (4, 'pushes_total', 'counter', 'Price pushes per store and outcome (ok, failed).', ',outcome="ok"', pushes_ok),
              (4, 'pushes_total', 'counter', 'Price pushes per store and outcome (ok, failed).', ',outcome="failed"', pushes_failed),
              (5, 'active_products', 'gauge', 'Active products of the store.', '', active_products),
              (6, 'products_at_floor', 'gauge', 'Active products of the store priced at their floor.', '', at_floor),
              (7, 'pushes_pending', 'gauge', 'Price changes of the store waiting to be pushed.', '', pushes_pending),
              (8, 'oldest_pending_push_seconds', 'gauge', 'How long the store''s oldest pending push has waited.', '', oldest_pending_push_seconds),
              (9, 'needs_login', 'gauge', '1 when the marketplace refused the store''s credentials (its pushes wait for new ones).', '', needs_login::int),
              (10, 'pushes_paused', 'gauge', '1 while the store''s pushes pause after a ban.', '', pushes_paused::int)
          ) AS f(ord, family, type, help, label, value)
        ORDER BY ord, family, seq, labels, sample
    LOOP
        IF r.family <> family THEN
            out := out || format('# HELP %s %s', r.family, r.help) || format('# TYPE %s %s', r.family, r.type);
            family := r.family;
        END IF;
        out := out || format('%s%s %s', r.sample, r.labels,
                             CASE r.value::text WHEN 'Infinity' THEN '+Inf' WHEN '-Infinity' THEN '-Inf'
                                                ELSE r.value::text END);
    END LOOP;
    RETURN array_to_string(out, E'\n') || E'\n';
END
$$;
COMMENT ON FUNCTION demper.metrics() IS 'All demper metrics in the Prometheus text exposition format';

-- ============================================================================================
-- Backups
-- ============================================================================================

-- pg_dump leaves out the rows of an extension's tables unless they are marked as the extension's
-- configuration. Everything users own is marked, with the sequences of its ids (or a restored
-- database would hand out ids again). The due queue is not: it is derived from the products, by
-- the sync_schedule trigger while a dump is restored, and by the worker when it starts.
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

-- ============================================================================================
-- Roles and privileges
-- ============================================================================================

-- demper_admin configures stores, products and credentials; demper_reader sees stats, status,
-- history and explanations; demper_worker is the role the background workers run their SQL as
-- (they connect as the bootstrap superuser, which they need only to start before the extension
-- exists, and switch to demper_worker for every transaction). Roles are cluster-wide: they are
-- created once and kept by DROP EXTENSION.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demper_reader') THEN
        CREATE ROLE demper_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demper_admin') THEN
        CREATE ROLE demper_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demper_worker') THEN
        CREATE ROLE demper_worker NOLOGIN BYPASSRLS;
    END IF;
END
$$;

-- Nothing is granted to PUBLIC. Functions are executable by PUBLIC by default in PostgreSQL, so
-- take that back explicitly.
REVOKE ALL ON ALL TABLES IN SCHEMA demper FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA demper FROM PUBLIC;

GRANT USAGE ON SCHEMA demper TO demper_reader, demper_admin;

-- Reader: everything except the credentials column and the due queue.
GRANT SELECT ON demper.product, demper.price_history, demper.proposal, demper.outbox,
                demper.product_status, demper.backlog, demper.push_status, demper.store_stats,
                demper.status TO demper_reader;
GRANT SELECT (id, name, merchant_id, city_id, active, created_at, seller_id, ignored_merchants,
              max_delivery_duration, outlier_share, timezone, work_start, work_end, change_budget,
              change_budget_window, approval_mode, push_mode, credentials_key, needs_login,
              push_paused_until, last_push_error, feed_store_ids, owner_role)
    ON demper.store TO demper_reader;
GRANT EXECUTE ON FUNCTION demper.demper_stats(), demper.http_status(), demper.latency_histogram(),
                          demper.store_counters(), demper.worker_status(), demper.metrics(),
                          demper.explain(bigint), demper.in_check(bigint), demper.due_queue(),
                          demper.in_working_hours(demper.store, timestamptz),
                          demper.in_working_hours(time, time, text, timestamptz),
                          demper.next_opening(demper.store, timestamptz),
                          demper.store_hours(demper.store, timestamptz),
                          demper.check_interval(), demper.visible_store(bigint),
                          demper.caller_role(), demper.caller_may_manage(bigint),
                          demper.is_member_of(name, name), demper.engine_figures_visible(),
                          demper.require_engine_figures() TO demper_reader;

-- Admin: the reader's rights, plus configuring stores and products, acting on proposals, setting
-- credentials (write-only: the column stays unreadable), making products due, reading the feed,
-- pruning and repairing the queue. Whoever writes products evaluates their constraints, so the
-- admin runs the two format checks too (a role given write access to demper.product some other
-- way needs EXECUTE on them as well).
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
                          demper.price_feed(bigint), demper.demper_stats_reset(),
                          demper.prune_batch(interval, integer), demper.repair_queue(boolean),
                          demper.is_product_code(text), demper.is_city_id(text) TO demper_admin;

-- Worker: exactly what its statements need (src/pg/catalog_*.cpp). It reads the catalogue; writes
-- a check's outcome into the product's status columns, the due queue, history, proposals and the
-- outbox; records push results on the outbox and a store's push state; and calls the functions
-- its statements use. It bypasses row-level security (it works for every seller) and deletes
-- nothing: pruning and repairing the queue run as the extension's owner.
GRANT USAGE ON SCHEMA demper TO demper_worker;
GRANT SELECT ON demper.store, demper.product, demper.schedule, demper.price_history, demper.proposal,
                demper.outbox TO demper_worker;
GRANT UPDATE (price, last_check_time, next_check_at, check_failures, last_error_class, last_error,
              last_reason, last_competitor_price, last_decided_price, last_explain)
    ON demper.product TO demper_worker;
GRANT UPDATE (next_check_at, lease_token, lease_until) ON demper.schedule TO demper_worker;
GRANT UPDATE (push_paused_until, last_push_error, needs_login) ON demper.store TO demper_worker;
GRANT INSERT ON demper.price_history, demper.proposal, demper.outbox TO demper_worker;
GRANT UPDATE (old_price, new_price, competitor_price, reason, created_at, status, decided_at, decided_by)
    ON demper.proposal TO demper_worker;
GRANT UPDATE (price, created_at, next_attempt_at, lease_token, lease_until, pushed_price, attempts,
              status, done_at, job_id, last_error)
    ON demper.outbox TO demper_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA demper TO demper_worker;
GRANT EXECUTE ON FUNCTION demper.in_working_hours(demper.store, timestamptz),
                          demper.in_working_hours(time, time, text, timestamptz),
                          demper.store_hours(demper.store, timestamptz),
                          demper.next_opening(demper.store, timestamptz), demper.repair_queue(boolean),
                          demper.prune_batch(interval, integer), demper.is_product_code(text),
                          demper.is_city_id(text), demper.check_interval(), demper.caller_role(),
                          demper.caller_may_manage(bigint), demper.is_member_of(name, name)
    TO demper_worker;

-- The seller's cabinet (catalogue import, verified pushes): readers see the import's state, admins
-- ask for an import and set the floor rule of imported listings; the worker imports listings
-- (inserts products, their due-queue rows, and updates what the cabinet owns of them: never the
-- seller's floor, ceiling or strategy) and records what verification found.
GRANT SELECT ON demper.catalogue_sync TO demper_reader;
GRANT SELECT (import_floor_percent) ON demper.store TO demper_reader;
GRANT UPDATE (import_floor_percent) ON demper.store TO demper_admin;
GRANT EXECUTE ON FUNCTION demper.sync_catalogue(bigint) TO demper_admin;
GRANT INSERT ON demper.product, demper.schedule TO demper_worker;
GRANT DELETE ON demper.schedule TO demper_worker;
GRANT UPDATE (product_code, model, brand, city_id, bot_active, inputs_version, availabilities,
              cabinet_synced_at, cabinet_updated_at, cabinet_archived)
    ON demper.product TO demper_worker;
GRANT SELECT, INSERT, UPDATE ON demper.catalogue_sync_state TO demper_worker;
GRANT UPDATE (verify_status, verify_after, verified_at, verify_detail, waiting_for)
    ON demper.outbox TO demper_worker;

-- The adaptive schedule: readers see a store's bounds and war policy, admins set them (a product's
-- with the product); the worker writes what a check taught and the interval it chose.
GRANT SELECT (check_interval_min, check_interval_max, war_policy) ON demper.store TO demper_reader;
GRANT UPDATE (check_interval_min, check_interval_max, war_policy) ON demper.store TO demper_admin;
GRANT UPDATE (schedule_state, war_rival) ON demper.product TO demper_worker;
GRANT UPDATE (base_interval_s, shortest_s, longest_s) ON demper.schedule TO demper_worker;
REVOKE ALL ON FUNCTION demper.validate_schedule_settings() FROM PUBLIC;
