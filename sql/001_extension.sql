-- The extension installs into schema demper, grants nothing to PUBLIC, and defines its settings.
CREATE EXTENSION demper;
SELECT extversion, extrelocatable FROM pg_extension WHERE extname = 'demper';

SELECT c.relname, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'demper' AND c.relkind IN ('r', 'v')
 ORDER BY c.relname;

SELECT p.proname, p.pronargs, p.prorettype::regtype
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'demper'
 ORDER BY p.proname, p.pronargs;

-- Nothing is executable or readable by PUBLIC.
SELECT p.proname AS public_can_execute
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'demper'
   AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0));
SELECT c.relname AS public_can_read
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'demper'
   AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0);

CREATE ROLE demper_regress_stranger;
SET ROLE demper_regress_stranger;
SELECT count(*) FROM demper.product;
SELECT demper.demper_stats_reset();
SELECT demper.check_now(1);
RESET ROLE;
DROP ROLE demper_regress_stranger;

-- Settings: every one under the reserved prefix, with its unit and context.
SELECT name, setting, unit, context, vartype
  FROM pg_settings WHERE name LIKE 'demper.%' ORDER BY name;
SET demper.no_such_setting = 1;
SET demper.dry_run = on;
ALTER SYSTEM SET demper.offers_url = 'ftp://example.com/{product_code}';
ALTER SYSTEM SET demper.offers_url = 'not a url';
ALTER SYSTEM SET demper.requests_per_second = -1;
ALTER SYSTEM SET demper.batch_size = 0;
ALTER SYSTEM SET demper.http_version = '2.0';
ALTER SYSTEM SET demper.http_version = 'HTTP/1.1';
-- A bad proxy URL is refused without repeating it: it may carry a password.
ALTER SYSTEM SET demper.proxies = 'http://127.0.0.1:3128, ftp://user:s3cret@proxy.example:21';
