-- describe_extension.sql: a canonical text description of everything an extension installed in the
-- current database, one fact per row, sorted, free of OIDs: two databases hold the same extension
-- schema exactly when their descriptions are equal. pg_dump cannot serve here, since it leaves out
-- an extension's members.
--
--   psql -XAtq -d DB -v extension=demper -f test/schema/describe_extension.sql
--
-- (extension defaults to demper). It reads catalogs only. The objects described are the
-- extension's members (pg_depend deptype 'e'), its schema, and everything that hangs off them
-- (deptype 'a' or 'i': columns' defaults, constraints, indexes, triggers, policies, rules, row
-- types, identity sequences, TOAST tables). For each: its dependency edges (membership included), owner, ACL,
-- initial privileges, comment, and its definition as the server prints it back (pg_get_*def). The
-- roles named in those ACLs and policies are described too; roles are cluster-wide, so two
-- databases of one cluster always agree on them.
--
-- Column options the server sets by itself (pg_attver, in recent minor releases of 15) differ
-- between any two tables and are left out.
--
-- What history leaves in storage only is left out: column order is the order among the columns
-- not dropped (a table that lost a column in an upgrade matches one created without it), and the
-- value a column added later with a default gives to rows older than it (atthasmissing) is not
-- shown. ACL items are sorted (their order means nothing); a NULL ACL (the built-in default)
-- shows as "acl default", apart from an explicit ACL that grants the same.

\if :{?extension}
\else
\set extension demper
\endif

WITH RECURSIVE
ext AS (
    SELECT e.* FROM pg_catalog.pg_extension e WHERE e.extname = :'extension'
),
-- Members, then whatever depends automatically or internally on something already found.
closure (classid, objid) AS (
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend d JOIN ext ON d.refobjid = ext.oid
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
    UNION
    -- The schema: CREATE EXTENSION makes it, but not as a member, and the scripts grant on it.
    SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass, ext.extnamespace FROM ext
    UNION
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend d
      JOIN closure c ON d.refclassid = c.classid AND d.refobjid = c.objid
     WHERE d.deptype IN ('a', 'i')
),
-- A name for each object without OIDs in it: TOAST tables and their indexes, and the triggers
-- that implement foreign keys, are named by what they serve.
obj AS (
    SELECT c.classid, c.objid,
           CASE
           WHEN c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = c.objid) = 't' THEN
               'toast table of ' || (SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, t.oid, 0)
                                       FROM pg_catalog.pg_class t WHERE t.reltoastrelid = c.objid)
           WHEN c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
                             WHERE i.indexrelid = c.objid AND t.relkind = 't') THEN
               'index of toast table of ' || (SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, t.oid, 0)
                                                FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class t ON t.reltoastrelid = i.indrelid
                                               WHERE i.indexrelid = c.objid)
           WHEN c.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass
                AND (SELECT tgisinternal FROM pg_catalog.pg_trigger WHERE oid = c.objid) THEN
               (SELECT format('internal trigger %s on %s for %s', tg.tgfoid::pg_catalog.regproc,
                              pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, tg.tgrelid, 0),
                              pg_catalog.pg_describe_object('pg_catalog.pg_constraint'::pg_catalog.regclass, tg.tgconstraint, 0))
                  FROM pg_catalog.pg_trigger tg WHERE tg.oid = c.objid)
           ELSE pg_catalog.pg_describe_object(c.classid, c.objid, 0)
           END AS name
      FROM (SELECT DISTINCT classid, objid FROM closure) c
),
rel AS (
    SELECT o.name, r.* FROM obj o JOIN pg_catalog.pg_class r ON r.oid = o.objid
     WHERE o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
),
fn AS (
    SELECT o.name, p.* FROM obj o JOIN pg_catalog.pg_proc p ON p.oid = o.objid
     WHERE o.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
),
facts (fact) AS (
    -- The extension itself.
    SELECT format('extension %s: version %s, schema %s, owner %s, relocatable %s', e.extname, e.extversion,
                  e.extnamespace::pg_catalog.regnamespace, e.extowner::pg_catalog.regrole, e.extrelocatable)
      FROM ext e
    UNION ALL
    SELECT format('extension %s: configuration %s (%s) with condition %L', e.extname,
                  pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, c.reloid, 0),
                  c.reloid::pg_catalog.regclass, c.cond)
      FROM ext e
      CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(e.extconfig), pg_catalog.unnest(e.extcondition)) AS c (reloid, cond)

    -- Dependencies of every object: membership, ownership of identity sequences, what a view,
    -- trigger, policy or constraint uses.
    UNION ALL
    SELECT format('%s: %s %s (%s)', coalesce(
                      CASE WHEN d.objsubid = 0 THEN o.name END,
                      pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)),
                  CASE d.deptype WHEN 'e' THEN 'member of' WHEN 'a' THEN 'hangs off' WHEN 'i' THEN 'part of'
                                 WHEN 'n' THEN 'uses' ELSE 'depends on' END,
                  coalesce(CASE WHEN d.refobjsubid = 0 THEN ro.name END,
                           CASE WHEN d.refobjsubid <> 0 AND ro.name IS NOT NULL THEN
                               format('column %s of %s',
                                      (SELECT attname FROM pg_catalog.pg_attribute
                                        WHERE attrelid = d.refobjid AND attnum = d.refobjsubid), ro.name) END,
                           pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)),
                  d.deptype)
      FROM pg_catalog.pg_depend d
      JOIN obj o ON o.classid = d.classid AND o.objid = d.objid
      LEFT JOIN obj ro ON ro.classid = d.refclassid AND ro.objid = d.refobjid

    -- Comments, of objects and of their columns.
    UNION ALL
    SELECT format('%s: comment %L', CASE WHEN ds.objsubid = 0 THEN o.name
                                         ELSE pg_catalog.pg_describe_object(ds.classoid, ds.objoid, ds.objsubid) END,
                  ds.description)
      FROM pg_catalog.pg_description ds
      JOIN obj o ON o.classid = ds.classoid AND o.objid = ds.objoid

    -- Initial privileges (what pg_dump compares ACLs with).
    UNION ALL
    SELECT format('%s: initial privileges (%s) %s',
                  CASE WHEN ip.objsubid = 0 THEN o.name
                       ELSE pg_catalog.pg_describe_object(ip.classoid, ip.objoid, ip.objsubid) END,
                  ip.privtype,
                  (SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C") FROM pg_catalog.unnest(ip.initprivs) a))
      FROM pg_catalog.pg_init_privs ip
      JOIN obj o ON o.classid = ip.classoid AND o.objid = ip.objoid

    -- Schemas.
    UNION ALL
    SELECT format('%s: owner %s, acl %s', o.name, n.nspowner::pg_catalog.regrole,
                  coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
                              FROM pg_catalog.unnest(n.nspacl) a), 'default'))
      FROM obj o JOIN pg_catalog.pg_namespace n ON n.oid = o.objid
     WHERE o.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass

    -- Relations: kind, owner, ACL, storage options, row security.
    UNION ALL
    SELECT format('%s: relkind %s, persistence %s, access method %s, tablespace %s, owner %s, acl %s, options %s, '
                  'row security %s, forced %s, replica identity %s, partition %s',
                  r.name, r.relkind, r.relpersistence,
                  coalesce((SELECT amname FROM pg_catalog.pg_am WHERE oid = r.relam), '-'),
                  coalesce((SELECT spcname FROM pg_catalog.pg_tablespace WHERE oid = r.reltablespace), 'default'),
                  r.relowner::pg_catalog.regrole,
                  coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
                              FROM pg_catalog.unnest(r.relacl) a), 'default'),
                  coalesce((SELECT pg_catalog.string_agg(o, ',' ORDER BY o COLLATE "C")
                              FROM pg_catalog.unnest(r.reloptions) o), '-'),
                  r.relrowsecurity, r.relforcerowsecurity, r.relreplident, r.relispartition)
      FROM rel r

    -- Columns of tables, views and composite types, numbered among the columns not dropped.
    UNION ALL
    SELECT format('%s: column %s %s: %s%s%s%s%s, collation %s, storage %s, compression %s, statistics %s, '
                  'options %s, acl %s',
                  c.name, pg_catalog.lpad(c.position::text, 3, '0'), c.attname,
                  pg_catalog.format_type(c.atttypid, c.atttypmod),
                  CASE WHEN c.attnotnull THEN ' not null' ELSE '' END,
                  CASE c.attidentity WHEN 'a' THEN ' generated always as identity'
                                     WHEN 'd' THEN ' generated by default as identity' ELSE '' END,
                  CASE WHEN c.attgenerated = 's' THEN ' generated stored' ELSE '' END,
                  coalesce(' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true), ''),
                  coalesce((SELECT collname FROM pg_catalog.pg_collation WHERE oid = c.attcollation), '-'),
                  c.attstorage, coalesce(nullif(c.attcompression, ''), '-'), c.attstattarget,
                  coalesce((SELECT pg_catalog.string_agg(o, ',' ORDER BY o COLLATE "C")
                              FROM pg_catalog.unnest(c.attoptions) o WHERE o NOT LIKE 'pg\_attver=%'), '-'),
                  coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
                              FROM pg_catalog.unnest(c.attacl) a), 'default'))
      FROM (SELECT r.name, a.*,
                   pg_catalog.row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS position
              FROM rel r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid
             WHERE a.attnum > 0 AND NOT a.attisdropped AND r.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')) c
      LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = c.attrelid AND ad.adnum = c.attnum

    -- Constraints, as the server prints them back.
    UNION ALL
    SELECT format('%s: %s%s%s%s', o.name, pg_catalog.pg_get_constraintdef(con.oid, true),
                  CASE WHEN con.condeferrable THEN ' deferrable' ELSE '' END,
                  CASE WHEN con.condeferred THEN ' initially deferred' ELSE '' END,
                  CASE WHEN NOT con.convalidated THEN ' not validated' ELSE '' END,
                  CASE WHEN con.connoinherit THEN ' no inherit' ELSE '' END)
      FROM obj o JOIN pg_catalog.pg_constraint con ON con.oid = o.objid
     WHERE o.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass

    -- Indexes.
    UNION ALL
    SELECT format('%s: %s%s%s', r.name, pg_catalog.pg_get_indexdef(i.indexrelid),
                  CASE WHEN i.indisprimary THEN ' (primary key)' ELSE '' END,
                  CASE WHEN i.indisclustered THEN ' (clustered)' ELSE '' END)
      FROM rel r JOIN pg_catalog.pg_index i ON i.indexrelid = r.oid
     WHERE r.relkind IN ('i', 'I') AND r.relnamespace <> 'pg_toast'::pg_catalog.regnamespace

    -- Views.
    UNION ALL
    SELECT format('%s: %s', r.name, pg_catalog.pg_get_viewdef(r.oid, true))
      FROM rel r WHERE r.relkind IN ('v', 'm')

    -- Sequences.
    UNION ALL
    SELECT format('%s: %s start %s increment %s min %s max %s cache %s%s', r.name,
                  pg_catalog.format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
                  s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END)
      FROM rel r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid

    -- Triggers (those behind foreign keys are named after their constraint above).
    UNION ALL
    SELECT format('%s: %s, enabled %s', o.name,
                  CASE WHEN t.tgisinternal THEN format('type %s', t.tgtype) ELSE pg_catalog.pg_get_triggerdef(t.oid, true) END,
                  t.tgenabled)
      FROM obj o JOIN pg_catalog.pg_trigger t ON t.oid = o.objid
     WHERE o.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass

    -- Row-level security policies.
    UNION ALL
    SELECT format('%s: %s for %s to %s using %s with check %s', o.name,
                  CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                  CASE p.polcmd WHEN '*' THEN 'all' WHEN 'r' THEN 'select' WHEN 'a' THEN 'insert'
                                WHEN 'w' THEN 'update' WHEN 'd' THEN 'delete' END,
                  (SELECT pg_catalog.string_agg(CASE WHEN rl = 0 THEN 'public' ELSE rl::pg_catalog.regrole::text END,
                                                ',' ORDER BY rl)
                     FROM pg_catalog.unnest(p.polroles) rl),
                  coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid, true), '-'),
                  coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid, true), '-'))
      FROM obj o JOIN pg_catalog.pg_policy p ON p.oid = o.objid
     WHERE o.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass

    -- Rules other than the views' own.
    UNION ALL
    SELECT format('%s: %s, enabled %s', o.name, pg_catalog.pg_get_ruledef(rw.oid, true), rw.ev_enabled)
      FROM obj o JOIN pg_catalog.pg_rewrite rw ON rw.oid = o.objid
     WHERE o.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND rw.rulename <> '_RETURN'

    -- Functions and procedures: each property on its own, then the whole definition.
    UNION ALL
    SELECT format('%s: kind %s, language %s, owner %s, acl %s, security definer %s, leakproof %s, strict %s, '
                  'returns set %s, volatility %s, parallel %s, cost %s, rows %s, support %s, config %s',
                  f.name, f.prokind, (SELECT lanname FROM pg_catalog.pg_language WHERE oid = f.prolang),
                  f.proowner::pg_catalog.regrole,
                  coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
                              FROM pg_catalog.unnest(f.proacl) a), 'default'),
                  f.prosecdef, f.proleakproof, f.proisstrict, f.proretset, f.provolatile, f.proparallel,
                  f.procost, f.prorows, f.prosupport,
                  coalesce(pg_catalog.array_to_string(f.proconfig, ' '), '-'))
      FROM fn f
    UNION ALL
    SELECT format('%s: definition %s', f.name,
                  CASE WHEN f.prokind = 'a' THEN 'aggregate' ELSE pg_catalog.pg_get_functiondef(f.oid) END)
      FROM fn f

    -- Types (the row types of tables and views, and any type of the extension's own).
    UNION ALL
    SELECT format('%s: %s, type %s, category %s, owner %s, acl %s, not null %s, default %s', o.name,
                  pg_catalog.format_type(t.oid, NULL), t.typtype, t.typcategory, t.typowner::pg_catalog.regrole,
                  coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text COLLATE "C")
                              FROM pg_catalog.unnest(t.typacl) a), 'default'),
                  t.typnotnull, coalesce(t.typdefault, '-'))
      FROM obj o JOIN pg_catalog.pg_type t ON t.oid = o.objid
     WHERE o.classid = 'pg_catalog.pg_type'::pg_catalog.regclass

    -- Roles the extension's privileges and policies name, and their memberships of each other.
    UNION ALL
    SELECT format('role %s: superuser %s, inherit %s, create role %s, create db %s, login %s, replication %s, '
                  'bypass rls %s, connection limit %s, member of %s',
                  ro.rolname, ro.rolsuper, ro.rolinherit, ro.rolcreaterole, ro.rolcreatedb, ro.rolcanlogin,
                  ro.rolreplication, ro.rolbypassrls, ro.rolconnlimit,
                  coalesce((SELECT pg_catalog.string_agg(m.roleid::pg_catalog.regrole::text
                                                         || CASE WHEN m.admin_option THEN ' with admin' ELSE '' END,
                                                         ',' ORDER BY m.roleid::pg_catalog.regrole::text)
                              FROM pg_catalog.pg_auth_members m WHERE m.member = ro.oid), '-'))
      FROM pg_catalog.pg_roles ro
     WHERE ro.oid IN (
               SELECT (pg_catalog.aclexplode(acl)).grantee
                 FROM (SELECT relacl FROM rel
                       UNION ALL SELECT proacl FROM fn
                       UNION ALL SELECT a.attacl FROM rel JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid
                       UNION ALL SELECT n.nspacl FROM obj o JOIN pg_catalog.pg_namespace n ON n.oid = o.objid
                                  WHERE o.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass) acls (acl)
                WHERE acl IS NOT NULL
               UNION
               SELECT pg_catalog.unnest(p.polroles)
                 FROM obj o JOIN pg_catalog.pg_policy p ON p.oid = o.objid
                WHERE o.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass)
       AND ro.oid <> (SELECT extowner FROM ext)
)
SELECT fact FROM facts ORDER BY fact COLLATE "C";
