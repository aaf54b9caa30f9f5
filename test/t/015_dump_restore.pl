# Backups: pg_dump of a database where demper runs keeps everything users own (stores, products,
# history, proposals, outbox, and the sequences of their ids), pg_restore into a new database brings
# it back, and the worker pointed at the restored database checks the restored products: their
# places in the due queue come back too, also when the restore ran with triggers disabled.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $mock = start_mock(synthetic => 100000);
my $node = demper_node('dump', $mock);
my $psql = sub { my ($db, $sql) = @_; return $node->safe_psql($db, $sql); };

$psql->('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Backed up', 'BK1')");
insert_products($node, map { { code => 30000 + $_, price => 900000, min => 100 } } 1 .. 39);
$psql->('postgres', "INSERT INTO demper.product (store_id, product_code, sku, price, min_price, bot_active) "
	  . "VALUES (1, '30040', 'paused', 900000, 100, false)");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE bot_active AND (last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)"),
	'the worker checked every active product');

# What the users own, as one comparable text per table.
my %tables = (
	store => 'SELECT id, name, merchant_id FROM demper.store ORDER BY id',
	product => 'SELECT id, product_code, price, min_price, bot_active, last_reason FROM demper.product ORDER BY id',
	price_history => 'SELECT id, product_id, old_price, new_price FROM demper.price_history ORDER BY id',
	schedule => 'SELECT product_id FROM demper.schedule ORDER BY product_id');
my %before = map { ($_ => $psql->('postgres', $tables{$_})) } keys %tables;
my $history_rows = $psql->('postgres', 'SELECT count(*) FROM demper.price_history');
cmp_ok($history_rows, '>=', 39, "history before the dump ($history_rows rows)");
is(scalar(split /\n/, $before{schedule}), 39, 'the due queue holds the 39 active products');

my $dump = $node->basedir . '/shop.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump');

# A whole restore, and a data-only restore with triggers disabled into a database where the
# extension was created first (as some backup tools do).
for my $case ([ 'restored', [] ], [ 'restored_no_triggers', [ '--data-only', '--disable-triggers' ] ]) {
	my ($db, $extra) = @$case;
	$psql->('postgres', "CREATE DATABASE $db");
	$psql->($db, 'CREATE EXTENSION demper') if @$extra;
	$node->command_ok([ 'pg_restore', '--exit-on-error', @$extra, '-d', $node->connstr($db), $dump ],
		"pg_restore @$extra into $db");
	for my $t (qw(store product price_history)) {
		is($psql->($db, $tables{$t}), $before{$t}, "$db: $t as dumped");
	}
	# A new row gets a new id, not one the dump already holds.
	my $new_id = $psql->($db,
		"INSERT INTO demper.product (store_id, product_code, sku, price, min_price) VALUES (1, '39999', 'new-$db', 5000, 100) RETURNING id");
	cmp_ok($new_id, '>', 40, "$db: the id sequence continues after the restored rows ($new_id)");
	$psql->($db, "DELETE FROM demper.product WHERE id = $new_id");
}
is($psql->('restored', $tables{schedule}), $before{schedule},
	'restored with triggers: the due queue was rebuilt row by row');
is($psql->('restored_no_triggers', 'SELECT count(*) FROM demper.schedule'), '0',
	'restored with triggers disabled: the due queue is empty until the worker starts');

# Point the worker at the restore made without triggers: it rebuilds the due queue and checks the
# products there.
$node->append_conf('postgresql.conf', "demper.database = 'restored_no_triggers'\n");
my $log_offset = -s $node->logfile;
$node->restart;
ok(poll_until(sub { $psql->('restored_no_triggers', $tables{schedule}) eq $before{schedule} }, 60),
	'the worker rebuilt the due queue of the restored database');
ok(poll_until(sub { slurp_file($node->logfile, $log_offset) =~ /repaired the due queue: 39 products added, 0 entries removed/ }, 30),
	'and said so in the log');
$psql->('restored_no_triggers',
	"UPDATE demper.product SET next_check_at = now(), last_check_time = NULL; SELECT demper.wake_workers()");
ok( $node->poll_query_until('restored_no_triggers',
		"SELECT count(*) = 0 FROM demper.product WHERE bot_active AND (last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)"),
	'the worker checks the restored products');
is($psql->('restored_no_triggers', "SELECT last_check_time IS NULL FROM demper.product WHERE product_code = '30040'"), 't',
	'the inactive product stays unchecked');

reliability('pg_dump and pg_restore (with and without triggers) of a database demper runs in', 2, 0);
$node->stop;
$mock->stop;
done_testing();
