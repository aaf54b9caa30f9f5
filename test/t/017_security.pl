# Attacks by ordinary database users (issue 14), each performed for real against a running worker:
#   1. the database owner plants functions and an operator in public that the worker's SQL would
#      bind to (array_to_string over text[], power(int, int), timestamp + time), to become superuser
#      through the worker; the worker must run as demper_worker, with its search_path pinned;
#   2. CREATE EXTENSION into a demper schema someone else created (with a planted operator), or
#      into a non-empty one, or into a database whose encoding is not UTF8: refused;
#   3. secrets in the server log: set_credentials failing (unknown store, bad character) and
#      succeeding, and proxy credentials given through demper.proxies_file: none of them may
#      appear anywhere in the server log, at PostgreSQL's default logging settings;
#   4. tenants with row-level security on: a seller inserting a store under another seller's
#      seller_id, probing merchant ids through unique violations, reading the due queue and the
#      store counters, calling in_check on another seller's product, pruning, and a dropped owner
#      role breaking the others' queries; the engine-wide figures (demper_stats, http_status,
#      latency_histogram, worker_status, the status view, metrics, demper_stats_reset) are the
#      operator's: refused to a seller, allowed to pg_monitor and the superuser, and to everyone
#      granted them once row security is off.
# Each attack prints a RELIABILITY line (scripts/reliability.sh): "lost" counts attacks that worked.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $t_start = time;
my $mock = start_mock(egresses => 2);
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $key = write_key_file("$tmp/key");
my $push_url = 'http://127.0.0.1:' . $mock->port . '/pricefeed/upload/merchant/process';
my $node = demper_node('security', $mock,
	'demper.credentials_key_file' => "'$key'",
	'demper.push_url' => "'$push_url'",
	# PostgreSQL's defaults: the test framework logs every statement, which no server should.
	'log_statement' => "'none'",
	'log_min_error_statement' => "'error'");

sub psql { return $node->safe_psql('postgres', $_[0]) }

# as runs $sql as login role $role in database $db; returns (ok, stdout, stderr).
sub as
{
	my ($role, $sql, $db) = @_;
	my ($ret, $out, $err) = $node->psql($db // 'postgres', $sql, extra_params => ['-U', $role]);
	return ($ret == 0, $out, $err);
}

# checked_after waits until every product of store $store was checked after time $t (SQL).
sub checked_after
{
	my ($store, $t) = @_;
	return poll_until(
		sub {
			psql("SELECT count(*) = 0 FROM demper.product WHERE store_id = $store AND bot_active
			        AND (last_check_time IS NULL OR last_check_time < '$t')") eq 't';
		},
		120);
}

wait_for_worker($node);

# ---------------------------------------------------------------------------------------------
# 1. The worker's role and search_path, against a database owner who plants look-alikes.
psql(q{
CREATE ROLE owner1 LOGIN;
ALTER DATABASE postgres OWNER TO owner1;
GRANT CREATE ON SCHEMA public TO owner1;   -- as on clusters upgraded from PostgreSQL 14
CREATE TABLE public.worker_identity (who name, at timestamptz DEFAULT now());
GRANT INSERT ON public.worker_identity TO PUBLIC;
CREATE FUNCTION public.note_worker_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.worker_identity (who) VALUES (current_user); RETURN NULL; END $$;
CREATE TRIGGER note_worker_identity AFTER INSERT ON demper.price_history
    FOR EACH STATEMENT EXECUTE FUNCTION public.note_worker_identity();
ALTER TABLE demper.price_history ENABLE ALWAYS TRIGGER note_worker_identity;
});
my ($ok, $out, $err) = as('owner1', q{
-- A sequence counts the calls: nextval survives the rollback of the statement that called it.
CREATE SEQUENCE public.hijack_calls;
GRANT USAGE ON SEQUENCE public.hijack_calls TO PUBLIC;
CREATE FUNCTION public.array_to_string(text[], text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('public.hijack_calls');
    EXECUTE 'ALTER ROLE owner1 SUPERUSER';
    RETURN pg_catalog.array_to_string($1, $2);
END $$;
CREATE FUNCTION public.power(integer, integer) RETURNS double precision LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('public.hijack_calls');
    EXECUTE 'ALTER ROLE owner1 SUPERUSER';
    RETURN pg_catalog.power($1::float8, $2::float8);
END $$;
CREATE FUNCTION public.ts_plus_time(timestamp, time) RETURNS timestamp LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('public.hijack_calls');
    EXECUTE 'ALTER ROLE owner1 SUPERUSER';
    RETURN $1 + $2::interval;
END $$;
CREATE OPERATOR public.+ (LEFTARG = timestamp, RIGHTARG = time, FUNCTION = public.ts_plus_time);
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC;
});
ok($ok, 'attack 1: the database owner planted public.array_to_string, public.power and public.+') or diag($err);

# A store with working hours that are closed now (its products go through next_opening) and one
# always open whose products change price (history rows) and fail (back-off through power()).
my $planted_at = psql('SELECT now()');
my $open_store = psql(q{INSERT INTO demper.store (name, merchant_id) VALUES ('Open', 'SEC1') RETURNING id});
my $closed_store = psql(q{INSERT INTO demper.store (name, merchant_id, work_start, work_end, timezone)
    VALUES ('Closed', 'SEC2', (now() AT TIME ZONE 'UTC' + interval '3 hours')::time,
            (now() AT TIME ZONE 'UTC' + interval '4 hours')::time, 'UTC') RETURNING id});
$mock->set_offers("7100$_", [ [ 'RIVAL', 5000 + $_ ] ]) for 1 .. 5;
$mock->post('/_mock/fault', { product => '71006', mode => 'status', status => 500 });
insert_products($node,
	(map { { store => $open_store, code => "7100$_", price => 9000, min => 100 } } 1 .. 6),
	{ store => $closed_store, code => '71007', price => 9000, min => 100 });
ok(checked_after($open_store, $planted_at), 'attack 1: the worker checked every product after the plants');
ok(poll_until(sub { psql("SELECT last_reason FROM demper.product WHERE product_code = '71007'") eq 'outside_hours' }, 60),
	'attack 1: the closed store\'s product was scheduled for its next opening');
my $hijacked = psql('SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.hijack_calls');
is($hijacked, 0, 'attack 1: the worker called none of the planted functions or operators');
is(psql("SELECT rolsuper FROM pg_roles WHERE rolname = 'owner1'"), 'f', 'attack 1: the database owner is not superuser');
is(psql('SELECT string_agg(DISTINCT who, \',\') FROM public.worker_identity'), 'demper_worker',
	'attack 1: the worker writes as demper_worker');
is(psql(q{SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolcanlogin FROM pg_roles WHERE rolname = 'demper_worker'}), 'f',
	'attack 1: demper_worker is no superuser, cannot create roles or databases, cannot log in');
ok(psql(q{SELECT last_error_class IS NOT NULL AND check_failures > 0 FROM demper.product WHERE product_code = '71006'}) eq 't',
	'attack 1: a failing product was backed off (the power() path ran)');
reliability('attack: database owner plants public.array_to_string/power/+ for the worker to run', 3,
	$hijacked + (psql("SELECT rolsuper::int FROM pg_roles WHERE rolname = 'owner1'")),
	'worker runs as demper_worker, search_path pg_catalog, pg_temp');
psql(q{DROP TRIGGER note_worker_identity ON demper.price_history; ALTER DATABASE postgres OWNER TO postgres});

# ---------------------------------------------------------------------------------------------
# 2. CREATE EXTENSION where it must not install.
psql(q{CREATE ROLE planter LOGIN; CREATE DATABASE planted; GRANT CREATE ON DATABASE planted TO planter});
($ok, $out, $err) = as('planter', q{
CREATE SCHEMA demper;
CREATE FUNCTION demper.gt(numeric, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR demper.> (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = demper.gt);
}, 'planted');
ok($ok, 'attack 2: an ordinary user created schema demper with an operator') or diag($err);
my ($ret, $o2, $e2) = $node->psql('planted', 'CREATE EXTENSION demper');
isnt($ret, 0, 'attack 2: CREATE EXTENSION into a schema another role owns is refused');
like($e2, qr/schema "demper" already exists and belongs to role "planter"/, 'attack 2: the message names the schema and its owner');
is($node->safe_psql('planted', q{SELECT count(*) FROM pg_extension WHERE extname = 'demper'}), 0, 'attack 2: no extension was created');
psql(q{CREATE DATABASE filled});
$node->safe_psql('filled', q{CREATE SCHEMA demper; CREATE TABLE demper.leftover (x int)});
($ret, $o2, $e2) = $node->psql('filled', 'CREATE EXTENSION demper');
like($e2, qr/schema "demper" is not empty/, 'attack 2: CREATE EXTENSION into a non-empty schema is refused');
psql(q{CREATE DATABASE cp1251 ENCODING 'WIN1251' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
($ret, $o2, $e2) = $node->psql('cp1251', 'CREATE EXTENSION demper');
like($e2, qr/demper needs a database with UTF8 encoding/, 'attack 2: a WIN1251 database is refused with a clear message');
$node->safe_psql('filled', 'DROP SCHEMA demper CASCADE; CREATE SCHEMA demper');
($ret, $o2, $e2) = $node->psql('filled', 'CREATE EXTENSION demper');
is($ret, 0, 'attack 2: an empty schema the installing role owns is accepted') or diag($e2);
reliability('attack: CREATE EXTENSION into a planted, a non-empty or a non-UTF8 database/schema', 3, 0,
	'refused before any object is created');

# ---------------------------------------------------------------------------------------------
# 3. Secrets in the server log.
my %secret = (
	unknown_store => 'SessUnknownStore8f3a1c',
	bad_char => 'SessBadChar77d2e9',
	good_session => 'SessGood5b61f0',
	good_sid => 'SidGood0c9e44',
	proxy_password => 'ProxyPw4e27ab',
);
my $cred_store = psql(q{INSERT INTO demper.store (name, merchant_id, push_mode) VALUES ('Creds', 'SEC3', 'api') RETURNING id});
($ret, $o2, $e2) = $node->psql('postgres', "SELECT demper.set_credentials(999999, '$secret{unknown_store}', 'sid')");
like($e2, qr/store 999999 does not exist/, 'secrets: an unknown store is an error');
($ret, $o2, $e2) = $node->psql('postgres', "SELECT demper.set_credentials($cred_store, '$secret{bad_char}; x=1', 'sid')");
isnt($ret, 0, 'secrets: a cookie with a bad character is an error');
unlike($e2, qr/\Q$secret{bad_char}\E/, 'secrets: the error does not repeat the cookie');
psql("SELECT demper.set_credentials($cred_store, '$secret{good_session}', '$secret{good_sid}')");
my $proxy_file = "$tmp/proxies";
open my $pf, '>', $proxy_file or die "$proxy_file: $!";
print $pf "# the mock's second port is a forward proxy\nhttp://user:$secret{proxy_password}\@127.0.0.1:" . $mock->port(1) . "\n";
close $pf;
chmod 0600, $proxy_file;
my $before_proxy = time;
reload_conf($node, 'demper.proxies_file' => "'$proxy_file'");
my $proxy_port = $mock->port(1);
my $via_proxy = 0;
my $nudged = 0;
ok(poll_until(sub {
	if (time - $nudged > 1) {    # make the open store's products due again, once a second
		psql("UPDATE demper.product SET next_check_at = now() WHERE store_id = $open_store AND NOT demper.in_check(id);
		      SELECT demper.wake_workers()");
		$nudged = time;
	}
	$via_proxy = grep { $_->[1] == $proxy_port && $_->[3] =~ m{/offer-view/offers/} } mock_log($mock, $before_proxy);
	$via_proxy > 0 }, 60), 'secrets: the worker sends through the proxy of demper.proxies_file');
chmod 0644, $proxy_file;
reload_conf($node, 'demper.proxies_file' => "'$proxy_file'", 'demper.user_agent' => "'demper-security-test'");
ok(poll_until(sub { slurp_file($node->logfile) =~ /demper.proxies_file is not used: secrets file .* is accessible by group or others/ }, 30),
	'secrets: a proxies file readable by others is refused, with a warning naming the file');
$node->restart;    # the log holds whatever the shutdown and start write too
wait_for_worker($node);
my $log = slurp_file($node->logfile);
my @leaked = grep { index($log, $secret{$_}) >= 0 } sort keys %secret;
is(scalar(@leaked), 0, 'secrets: no secret used in this run is in the server log') or diag("leaked: @leaked");
unlike($log, qr/STATEMENT:.*set_credentials/, 'secrets: no STATEMENT line of set_credentials in the log');
reliability('attack: secrets into the server log (failing set_credentials, proxy credentials)', scalar(keys %secret),
	scalar(@leaked), 'whole server log searched for every secret the run used');

# ---------------------------------------------------------------------------------------------
# 4. Tenants with row-level security on.
psql(q{
CREATE ROLE seller_a LOGIN; CREATE ROLE seller_b LOGIN; CREATE ROLE seller_c LOGIN;
GRANT demper_admin TO seller_a, seller_b, seller_c;
SELECT demper.enable_row_security(true);
});
my $store_b = psql(q{INSERT INTO demper.store (name, merchant_id, seller_id, owner_role) VALUES ('B', 'MB1', 'sb', 'seller_b') RETURNING id});
my $store_a = psql(q{INSERT INTO demper.store (name, merchant_id, seller_id, owner_role) VALUES ('A', 'MA1', 'sa', 'seller_a') RETURNING id});
my $store_c = psql(q{INSERT INTO demper.store (name, merchant_id, seller_id, owner_role) VALUES ('C', 'MC1', 'sc', 'seller_c') RETURNING id});
$mock->set_offers('72001', [ [ 'RIVALX', 4000 ], [ 'OTHER', 4500 ] ]);
insert_products($node, { store => $store_b, code => '72001', price => 6000, min => 100 });
my $b_product = psql(q{SELECT id FROM demper.product WHERE product_code = '72001'});
insert_products($node, { store => $store_a, code => '72002', price => 6000, min => 100 });
my $a_product = psql(q{SELECT id FROM demper.product WHERE product_code = '72002'});

my $attacks = 0;
my $worked = 0;
# 4a. A stores under B's seller_id with the competitor's merchant id: B must still undercut it.
($ok, $out, $err) = as('seller_a', q{INSERT INTO demper.store (name, merchant_id, seller_id, owner_role) VALUES ('fake', 'RIVALX', 'sb', 'seller_a')});
ok($ok, 'tenants: seller A may insert a store under any seller_id of its own') or diag($err);
my $t4 = psql('SELECT now()');
psql("SELECT demper.check_now($b_product)");
ok(poll_until(sub { psql("SELECT last_check_time > '$t4' FROM demper.product WHERE id = $b_product") eq 't' }, 60),
	'tenants: B\'s product was checked after the fake store appeared');
my $b_price = psql("SELECT price FROM demper.product WHERE id = $b_product");
is($b_price, 3999, 'tenants: B still undercuts RIVALX (A\'s store did not join B\'s own merchant ids)');
$attacks++; $worked++ if $b_price != 3999;

# 4b. Probing merchant ids through unique violations.
($ok, $out, $err) = as('seller_a', q{INSERT INTO demper.store (name, merchant_id, owner_role) VALUES ('probe', 'MB1', 'seller_a')});
ok($ok, 'tenants: a merchant id B registered does not collide with A\'s stores');
unlike($err // '', qr/MB1/, 'tenants: no error reveals B\'s merchant id');
$attacks++; $worked++ if !$ok;

# 4c. Reading other sellers' rows through functions.
my (undef, $queue) = as('seller_a', 'SELECT string_agg(product_id::text, \',\' ORDER BY product_id) FROM demper.due_queue()');
unlike(",$queue,", qr/,$b_product,/, 'tenants: due_queue() hides B\'s products from A');
like(",$queue,", qr/,$a_product,/, 'tenants: due_queue() shows A its own product');
$attacks++; $worked++ if ",$queue," =~ /,$b_product,/;
my (undef, $counters) = as('seller_a', 'SELECT string_agg(store_id::text, \',\') FROM demper.store_counters()');
unlike(",$counters,", qr/,$store_b,/, 'tenants: store_counters() hides B\'s store from A');
$attacks++; $worked++ if ",$counters," =~ /,$store_b,/;
my (undef, $stores) = as('seller_a', 'SELECT string_agg(name, \',\' ORDER BY name) FROM demper.store');
is($stores, 'A,fake,probe', 'tenants: A sees only its own stores');
my (undef, $status) = as('seller_a', 'SELECT count(*) FROM demper.product_status');
is($status, 1, 'tenants: product_status shows A only its own product');
$attacks++; $worked++ if $stores ne 'A,fake,probe' || $status != 1;

# 4d. Pruning: A's old history goes, B's stays (prune_batch works for demper_admin at all).
psql(qq{INSERT INTO demper.price_history (product_id, store_id, changed_at, old_price, new_price, reason)
        VALUES ($a_product, $store_a, now() - interval '10 days', 1, 2, 'old'),
               ($b_product, $store_b, now() - interval '10 days', 1, 2, 'old')});
($ok, $out, $err) = as('seller_a', q{SELECT demper.prune_batch('1 day', 100)});
ok($ok, 'tenants: demper_admin may prune') or diag($err);
is(psql(qq{SELECT count(*) FROM demper.price_history WHERE reason = 'old' AND store_id = $store_a}), 0, 'tenants: A pruned its own old history');
is(psql(qq{SELECT count(*) FROM demper.price_history WHERE reason = 'old' AND store_id = $store_b}), 1, 'tenants: B\'s old history survived A\'s prune');
$attacks++; $worked++ if psql(qq{SELECT count(*) FROM demper.price_history WHERE reason = 'old' AND store_id = $store_b}) != 1;

# 4e. A dropped owner role breaks nobody else's queries.
psql(q{DROP OWNED BY seller_c; DROP ROLE seller_c});
($ok, $out, $err) = as('seller_b', 'SELECT count(*) FROM demper.store');
ok($ok, 'tenants: after DROP ROLE of another seller, B still reads its stores') or diag($err);
is($out, 1, 'tenants: B sees its one store');
($ok, $out, $err) = as('seller_a', 'SELECT count(*) FROM demper.product_status');
ok($ok, 'tenants: A reads product_status after the drop') or diag($err);
$attacks++; $worked++ if !$ok;
reliability('attack: tenant vs tenant with row-level security (seller_id, unique probe, functions, prune, DROP ROLE)',
	$attacks, $worked, 'each a separate attack by a demper_admin seller');

# 4f. The engine-wide figures: every seller's checks, changes, pushes, hosts and egresses. With row
# security on they are the operator's (superuser, the extension's owner, pg_monitor); a seller may
# neither read them, through any of the functions or the status view, nor reset them.
psql(q{CREATE ROLE watcher LOGIN; GRANT demper_reader, pg_monitor TO watcher});
my %engine = (
	'demper_stats()' => 'SELECT count(*) FROM demper.demper_stats()',
	'http_status()' => 'SELECT count(*) FROM demper.http_status()',
	'latency_histogram()' => 'SELECT count(*) FROM demper.latency_histogram()',
	'worker_status()' => 'SELECT count(*) FROM demper.worker_status()',
	'the status view' => 'SELECT count(*) FROM demper.status',
	'metrics()' => 'SELECT length(demper.metrics()) > 0',
	'demper_stats_reset()' => 'SELECT demper.demper_stats_reset()');
my $refusal = qr/ERROR:  42501: permission denied for demper's engine-wide figures\n.*DETAIL:  Row security is on: these figures cover every seller's stores\.\n.*HINT:  Per-store figures are in demper\.store_stats; an operator's monitoring role needs pg_monitor\./s;
my ($engine_attacks, $engine_worked) = (0, 0);
my $resets_before = psql('SELECT stats_reset FROM demper.demper_stats()');
for my $what (sort keys %engine)
{
	($ok, $out, $err) = as('seller_a', "\\set VERBOSITY verbose\n$engine{$what}");
	ok(!$ok, "engine figures: a seller with row security on is refused $what");
	like($err, $refusal, "engine figures: $what refuses the seller with 42501 and says why") or diag($err);
	$engine_attacks++;
	$engine_worked++ if $ok;
}
is(psql('SELECT stats_reset FROM demper.demper_stats()'), $resets_before, 'engine figures: the seller\'s reset reset nothing');
# The seller's own backlog still reads, without the whole engine's rate.
($ok, $out, $err) = as('seller_a', 'SELECT due_now >= 0, checks_per_second IS NULL FROM demper.backlog');
ok($ok, 'engine figures: a seller still reads its backlog') or diag($err);
is($out, 't|t', 'engine figures: the seller\'s backlog leaves out the engine\'s check rate');
$engine_attacks++;
$engine_worked++ if $out ne 't|t';
for my $what (grep { $_ ne 'demper_stats_reset()' } sort keys %engine)
{
	($ok, $out, $err) = as('watcher', $engine{$what});
	ok($ok, "engine figures: a monitoring role (pg_monitor) reads $what with row security on") or diag($err);
}
is(psql('SELECT checks_per_second IS NOT NULL FROM demper.backlog'), 't', 'engine figures: the superuser\'s backlog has the rate');
ok(psql('SELECT length(demper.metrics()) > 0') eq 't', 'engine figures: the superuser reads metrics() with row security on');
psql('SELECT demper.demper_stats_reset()');
isnt(psql('SELECT stats_reset FROM demper.demper_stats()'), $resets_before, 'engine figures: the superuser may reset them');
reliability('attack: tenant reads or resets the engine-wide figures with row-level security on (functions, status view, metrics, reset)',
	$engine_attacks, $engine_worked, 'each as a demper_admin seller; a pg_monitor role and the superuser still read them');

psql('SELECT demper.enable_row_security(false)');
# With row security off (one seller) nothing is refused to demper_reader and demper_admin.
for my $what (sort keys %engine)
{
	($ok, $out, $err) = as('seller_a', $engine{$what});
	ok($ok, "engine figures: with row security off, a demper_admin role may call $what") or diag($err);
}
diag(sprintf('total %.1f s', time - $t_start));
done_testing();
