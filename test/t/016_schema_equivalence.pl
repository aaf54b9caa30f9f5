# One schema, two ways in: a fresh CREATE EXTENSION runs sql/demper--<version>.sql alone, an
# existing install reaches <version> through the upgrade scripts from 0.1.0. Both must end in the
# same schema, object by object (test/schema/describe_extension.sql describes it from the catalogs:
# pg_dump leaves out an extension's members). The comparison is shown to fail when one object of
# the upgraded database differs, and both ways must create the roles. First of all, the version is
# written once: demper.control's default_version, which META.json and the install script follow.
use strict;
use warnings;
use Cwd qw(abs_path);
use FindBin;
use lib $FindBin::RealBin;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time;
my $root = abs_path("$FindBin::RealBin/../..");
BAIL_OUT("$root is not demper's source tree: run this test from a copy of the whole tree")
  unless -f "$root/demper.control";

my $version;
subtest 'the version has one source: demper.control, and META.json and the install script agree' => sub {
	($version) = slurp_file("$root/demper.control") =~ /^default_version\s*=\s*'([^']*)'\s*$/m;
	like($version // '', qr/^\d+\.\d+\.\d+$/, 'demper.control has a default_version x.y.z');
	my $meta = JSON::PP->new->decode(slurp_file("$root/META.json"));
	is($meta->{version}, $version, 'META.json: version');
	is($meta->{provides}{demper}{version}, $version, 'META.json: provides.demper.version');
	is($meta->{provides}{demper}{file}, "sql/demper--$version.sql", 'META.json: provides.demper.file');
	ok(-f "$root/sql/demper--$version.sql", "sql/demper--$version.sql exists (the full install script)");
};
BAIL_OUT('no usable version in demper.control') unless defined $version && $version =~ /^\d+\.\d+\.\d+$/;

# The roles each way in creates, from the scripts themselves.
sub created_roles {
	my %roles = map { $_ => 1 } map { slurp_file($_) =~ /\bCREATE ROLE (\w+)/g } @_;
	return [ sort keys %roles ];
}
my $fresh_roles = created_roles("$root/sql/demper--$version.sql");
my $chain_roles = created_roles("$root/sql/demper--0.1.0.sql", glob("$root/sql/demper--*--*.sql"));
ok(@$fresh_roles > 0, "the install script creates roles (@$fresh_roles)");
is_deeply($fresh_roles, $chain_roles, 'the upgrade scripts create the same roles');
my $role_list = join(', ', map { "'$_'" } @$fresh_roles);

# The worker is loaded (the C functions need the library) but claims nothing, in a database
# without the extension.
my $node = PostgreSQL::Test::Cluster->new('schema');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'demper'\ndemper.database = 'postgres'\ndemper.enabled = off\n");
$node->start;
my $psql = sub { my ($db, $sql) = @_; return $node->safe_psql($db, $sql); };
is($psql->('postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'demper'"),
	$version, "the installed demper.control is this tree's ($version)");

my $describe_sql = slurp_file("$root/test/schema/describe_extension.sql");
# describe returns the description of the extension in $db, after $change when one is given (in a
# transaction that is rolled back).
sub describe {
	my ($db, $change) = @_;
	return $psql->($db, $change ? "BEGIN;\n$change;\n$describe_sql\nROLLBACK;" : $describe_sql);
}
sub roles_of { return join("\n", grep { /^role / } split /\n/, $_[0]); }
sub existing_roles {
	return $psql->('postgres',
		"SELECT string_agg(rolname, ' ' ORDER BY rolname) FROM pg_roles WHERE rolname IN ($role_list)");
}
sub extversion { return $psql->($_[0], "SELECT extversion FROM pg_extension WHERE extname = 'demper'"); }

# unified_diff returns `diff -u` of two descriptions ('' when they are equal).
my $diff_no = 0;
sub unified_diff {
	my ($left, $left_name, $right, $right_name) = @_;
	$diff_no++;
	my $dir = $node->basedir;
	my ($left_file, $right_file) = ("$dir/$diff_no-$left_name.txt", "$dir/$diff_no-$right_name.txt");
	for ([ $left_file, $left ], [ $right_file, $right ]) {
		open my $fh, '>', $_->[0] or die "cannot write $_->[0]: $!";
		print $fh $_->[1], "\n";
		close $fh;
	}
	my ($out) = run_command([ 'diff', '-u', '--label', $left_name, '--label', $right_name, $left_file, $right_file ]);
	return $out;
}

# 1. A fresh install in a cluster that has none of the roles yet creates them. The database is
#    dropped afterwards, and the roles with it, so that the upgrade chain must create them again.
is(existing_roles(), '', 'a new cluster has none of the roles');
$psql->('postgres', 'CREATE DATABASE roles_fresh');
$psql->('roles_fresh', 'CREATE EXTENSION demper');
is(extversion('roles_fresh'), $version, "fresh install: extversion $version");
is(existing_roles(), "@$fresh_roles", 'fresh install: every role it creates exists');
my $roles_fresh = roles_of(describe('roles_fresh'));
$psql->('postgres', 'DROP DATABASE roles_fresh');
$psql->('postgres', "DROP ROLE $_") for reverse @$fresh_roles;

# 2. The upgrade chain from 0.1.0.
$psql->('postgres', 'CREATE DATABASE upgraded');
$psql->('upgraded', "CREATE EXTENSION demper VERSION '0.1.0'");
$psql->('upgraded', 'ALTER EXTENSION demper UPDATE');
is(extversion('upgraded'), $version, "upgrade chain from 0.1.0: extversion $version");
is(existing_roles(), "@$chain_roles", 'upgrade chain: every role it creates exists');
my $upgraded = describe('upgraded');
is(roles_of($upgraded), $roles_fresh, 'the roles are alike (attributes and memberships) whichever way created them');

# 3. A fresh install beside it (the roles exist by now) and the comparison.
$psql->('postgres', 'CREATE DATABASE fresh');
$psql->('fresh', 'CREATE EXTENSION demper');
is(extversion('fresh'), $version, "fresh install: extversion $version");
my $fresh = describe('fresh');

# The description covers every kind of object demper has (a broken query must not pass as equal).
for my $kind (
	[ 'the extension', qr/^extension demper: version /m ],
	[ 'configuration tables', qr/^extension demper: configuration table demper\.store /m ],
	[ 'the schema', qr/^schema demper: owner /m ],
	[ 'columns', qr/^table demper\.product: column 001 id: bigint/m ],
	[ 'storage options', qr/^table demper\.product: relkind r, .*options fillfactor=80/m ],
	[ 'constraints', qr/^constraint product_code_format on table demper\.product: CHECK /m ],
	[ 'indexes', qr/^index demper\.schedule_due_idx: CREATE INDEX /m ],
	[ 'triggers', qr/^trigger product_validate_update on table demper\.product: CREATE TRIGGER /m ],
	[ 'policies', qr/^policy store_owner on table demper\.store: permissive /m ],
	[ 'views', qr/^view demper\.backlog: relkind v, .*options security_invoker=true/m ],
	[ 'sequences', qr/^sequence demper\.store_id_seq: bigint /m ],
	[ 'function definitions', qr/^function demper\.approve\(bigint\): definition CREATE OR REPLACE FUNCTION/m ],
	[ 'function properties', qr/^function demper\.in_check\(bigint\): kind f, .*security definer t/m ],
	[ 'column privileges', qr/^column owner_role of table demper\.store: initial privileges /m ],
	[ 'roles', qr/^role demper_admin: .*member of demper_reader/m ])
{
	like($upgraded, $kind->[1], "the description covers $kind->[0]");
}
my $members = () = $upgraded =~ /: member of extension demper \(e\)$/mg;
cmp_ok($members, '>=', 40, "the description lists the extension's members ($members)");

my $diff = unified_diff($upgraded, 'upgraded-from-0.1.0', $fresh, "fresh-$version");
my $lines = () = $fresh =~ /\n/g;
ok($diff eq '', "fresh install and upgrade chain end in the same schema ($lines lines of description)")
  or diag("the schemas differ:\n$diff");

# 4. The comparison fails when one object differs: each change below, made in the upgraded
#    database inside a transaction that is rolled back, must show in the diff.
my @changes = (
	[	'a column default',
		q{ALTER TABLE demper.store ALTER COLUMN timezone SET DEFAULT 'Asia/Aqtobe'},
		qr/^[-+]table demper\.store: column \d+ timezone: .*Asia\/Aqtobe/m ],
	[	'a function body',
		q{CREATE OR REPLACE FUNCTION demper.check_interval() RETURNS interval
		  LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT interval '15min' $$},
		qr/^[-+]AS \$function\$ SELECT interval '15min' \$function\$/m ],
	[	'a function property',
		q{ALTER FUNCTION demper.in_check(bigint) SECURITY INVOKER},
		qr/^[-+]function demper\.in_check\(bigint\): kind f, .*security definer f/m ],
	[	'a privilege',
		q{GRANT SELECT ON demper.schedule TO demper_reader},
		qr/^[-+]table demper\.schedule: relkind r, .*demper_reader=r\//m ],
	[	'a storage option',
		q{ALTER TABLE demper.product SET (fillfactor = 100)},
		qr/^[-+]table demper\.product: relkind r, .*fillfactor=100/m ],
	[	'a CHECK constraint',
		q{ALTER TABLE demper.product DROP CONSTRAINT product_step_at_least_1,
		  ADD CONSTRAINT product_step_at_least_1 CHECK (step >= 2)},
		qr/^[-+]constraint product_step_at_least_1 on table demper\.product: CHECK \(step >= 2\)/m ],
	[	'the column order',
		q{ALTER TABLE demper.price_history DROP COLUMN competitor_price, ADD COLUMN competitor_price bigint},
		qr/^[-+]table demper\.price_history: column 008 competitor_price: bigint/m ],
	[	'an index',
		q{DROP INDEX demper.schedule_due_idx},
		qr/^[-+]index demper\.schedule_due_idx: /m ],
	[	'a trigger',
		q{ALTER TABLE demper.product DISABLE TRIGGER product_enqueue_push},
		qr/^[-+]trigger product_enqueue_push on table demper\.product: .*enabled D/m ],
	[	'a policy',
		q{ALTER POLICY store_owner ON demper.store TO demper_admin},
		qr/^[-+]policy store_owner on table demper\.store: permissive for all to demper_admin /m ],
	[	'a comment',
		q{COMMENT ON TABLE demper.schedule IS 'the queue'},
		qr/^[-+]table demper\.schedule: comment 'the queue'/m ],
	[	'a view',
		q{CREATE OR REPLACE VIEW demper.status AS
		  SELECT pid, state, database, in_check AS current_batch, checks_per_second, started_at,
		         now() - started_at AS uptime, last_error, last_error_at, 1 AS extra
		    FROM demper.worker_status()},
		qr/^[-+]view demper\.status: column 010 extra: integer/m ],
	[	'the membership of an object',
		q{ALTER EXTENSION demper DROP VIEW demper.status},
		qr/^[-+]view demper\.status: member of extension demper/m ],
	[	'a configuration table',
		q{UPDATE pg_catalog.pg_extension SET extcondition[1] = 'WHERE active' WHERE extname = 'demper'},
		qr/^[-+]extension demper: configuration \w+ demper\.\w+ .*WHERE active/m ]);
for my $change (@changes) {
	my ($what, $sql, $shows) = @$change;
	my $changed_diff = unified_diff(describe('upgraded', $sql), 'upgraded-changed', $fresh, "fresh-$version");
	like($changed_diff, $shows, "the comparison reports a change of $what");
}
$diff = unified_diff(describe('upgraded'), 'upgraded-after', $fresh, "fresh-$version");
ok($diff eq '', 'after the changes were rolled back, the schemas are the same again')
  or diag("the schemas differ:\n$diff");

$node->stop;
diag(sprintf('016_schema_equivalence took %.1f s', time - $t_start));
done_testing();
