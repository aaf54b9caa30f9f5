# kill -9 of the worker mid-batch loses no product and writes no partial decision: after crash
# recovery every product is checked (those leased by the dead worker after their lease), ends at
# the rule's price, and the history holds exactly one row per changed product, from the initial
# price to the current one. Two rounds: killed while requests are in flight, and killed as soon as
# the first decisions come back (while apply is likely).
# Then the server starts five more times, three ways (fast stop and start twice, immediate stop and
# start, kill -9 of a client backend twice), with a client changing the catalog right away: after
# every start the workers run again, and the launcher never failed.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $own = '30012345';
my $mock = start_mock();
my $node = demper_node('crash', $mock,
	'demper.lease_time' => "'10s'",
	'demper.requests_per_second' => 500,
	'demper.burst' => 50,
	'demper.batch_size' => 50,
	'demper.max_inflight' => 64,
	'demper.http_timeout' => "'10s'",
	restart_after_crash => 'on',     # the test framework turns it off
	log_line_prefix => "'%m [%p] %b '");    # the backend type names the launcher's lines
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shop A', '$own')");

# products returns 200 products with offer books set in the mock: most change price (some held
# at a floor), every tenth is already at the rule's price (no change, no history row).
sub products
{
	my ($base) = @_;
	my @p;
	for my $i (0 .. 199)
	{
		my $c = { code => $base + $i, price => 50000 + $i, min => ($i % 3 == 0 ? 30000 : 100), step => 1 };
		my $offers = [['M1', 20000 + 7 * $i], ['M2', 45000], [$own, 10000]];
		$c->{expected} = expected_price(price => $c->{price}, min_price => $c->{min}, max_price => undef,
			step => 1, own => $own, offers => $offers);
		$c->{price} = $c->{expected} if $i % 10 == 5;
		$mock->set_offers($c->{code}, $offers);
		push @p, $c;
	}
	return @p;
}

sub round
{
	my ($name, $base, $latency_ms, $kill_when) = @_;
	my @p = products($base);
	my $where = "product_code::bigint BETWEEN $base AND " . ($base + 199);
	my %initial = map { $_->{code} => $_->{price} } @p;
	my %expected = map { $_->{code} => $_->{expected} } @p;

	$mock->fault(mode => 'latency', latency_ms => $latency_ms);
	my $pid = wait_for_worker($node);
	my $baseline = demper_stats($node);
	insert_products($node, @p);
	my $stats;
	ok(poll_until(sub { $stats = demper_stats($node); $kill_when->($stats, $baseline) }, 60),
		"$name: the worker is mid-batch");
	my $t_kill = time;
	kill 'KILL', $pid;
	diag(sprintf('%s: killed worker %d with %d in flight, %d checks ok so far',
		$name, $pid, $stats->{in_flight}, $stats->{checks_ok} - $baseline->{checks_ok}));
	ok(defined DemperTest::wait_for_exit($pid, 60), "$name: the worker died");

	ok(wait_for_connections($node), "$name: the node accepts connections again after crash recovery");
	my $t_up = time;
	$mock->fault(mode => 'none');
	my $new_pid = wait_for_worker($node);
	isnt($new_pid, $pid, "$name: a new worker runs");
	my ($leased, $before_kill) = split /\|/, $node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) > now()), count(*) FILTER (WHERE last_check_time < to_timestamp($t_kill)) FROM demper.product WHERE $where");
	diag(sprintf('%s: node up %.2f s after kill -9; %d products still leased by the dead worker, %d decided before the kill',
		$name, $t_up - $t_kill, $leased, $before_kill));

	ok( $node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM demper.product WHERE $where AND (last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)"),
		"$name: every product is checked after the crash: nothing lost");
	diag(sprintf('%s: all 200 products checked %.2f s after kill -9', $name, time - $t_kill));

	my %price = map { split /\|/ } split /\n/,
	  $node->safe_psql('postgres', "SELECT product_code, price FROM demper.product WHERE $where");
	my @wrong = grep { $price{$_} != $expected{$_} } sort keys %expected;
	is(scalar(@wrong), 0, "$name: every price equals the rule's result")
	  or diag(join("\n", map { "$_: got $price{$_}, expected $expected{$_}" } @wrong[0 .. ($#wrong < 4 ? $#wrong : 4)]));

	my @hist = map { [split /\|/] } grep { length } split /\n/, $node->safe_psql('postgres',
		"SELECT p.product_code, h.old_price, h.new_price FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE $where");
	my %rows;
	$rows{ $_->[0] }++ for @hist;
	my @changed = grep { $price{$_} != $initial{$_} } sort keys %initial;
	my @iff = grep { ($price{$_} != $initial{$_}) != (($rows{$_} // 0) > 0) } sort keys %initial;
	is(scalar(@iff), 0, "$name: a product's price changed if and only if it has a history row")
	  or diag("mismatch: @iff[0 .. ($#iff < 9 ? $#iff : 9)]");
	my @multi = grep { $rows{$_} != 1 } keys %rows;
	is(scalar(@multi), 0, "$name: exactly one history row per changed product")
	  or diag(join(', ', map { "$_: $rows{$_} rows" } @multi));
	my @bad = grep { $_->[1] != $initial{ $_->[0] } || $_->[2] != $price{ $_->[0] } } @hist;
	is(scalar(@bad), 0, "$name: every history row goes from the initial price to the current one")
	  or diag(join("\n", map { "$_->[0]: $_->[1] -> $_->[2]" } @bad));
	is(scalar(@hist), scalar(@changed), "$name: history rows = changed products");
	diag(sprintf('%s: %d products changed, %d history rows', $name, scalar(@changed), scalar(@hist)));
}

# Round 1: every answer takes 1.5 s; killed as soon as requests are in flight.
round('round 1 (in flight)', 400000, 1500, sub { $_[0]->{in_flight} > 0 });

# Round 2: slower rate and quick answers; killed as soon as the first checks come back, while
# their batch is being applied.
$node->safe_psql('postgres', 'ALTER SYSTEM SET demper.requests_per_second = 50');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
round('round 2 (applying)', 500000, 50, sub { $_[0]->{checks_ok} > $_[1]->{checks_ok} });

# ---------------------------------------------------------------------------------------------
# Server starts. The launcher, bound to no database, reads pg_database as soon as the server
# accepts connections, while clients connect and change the catalog (a VACUUM FULL of pg_database
# gives it a new file and invalidates every process's entry for it). Every start removes the
# shared relation cache file (global/pg_internal.init), and a process without a database cannot
# open a relation that is not in that file or built in at start: when the launcher looked the
# database up through pg_database's name index, it died with FATAL "cannot read pg_class without
# having selected a database" at nearly every start and the workers came 5 s late (its restart).

# worker_pids returns the pids of the running demper workers, sorted ('' while none runs).
sub worker_pids
{
	my $out = eval {
		$node->safe_psql('postgres',
			"SELECT pg_stat_clear_snapshot(); SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity WHERE backend_type = 'demper worker'"
		);
	};
	$out //= '';
	$out =~ s/^\s+|\s+$//g;    # the first statement's empty line
	return $out;
}

# churn changes the catalog the way clients do right after a start.
sub churn
{
	$node->safe_psql('postgres',
		'CREATE TABLE launcher_churn (a int); DROP TABLE launcher_churn; VACUUM FULL pg_database; VACUUM pg_database');
}

# after_start checks one start ($how) begun at $t_start: the workers run again (not those of
# before) and the log has no failure of the launcher so far.
sub after_start
{
	my ($how, $t_start, $before) = @_;
	churn();
	my $pids = '';
	ok(poll_until(sub { $pids = worker_pids(); $pids ne '' && $pids ne $before }, 60),
		"$how: the workers run again");
	diag(sprintf('%s: workers %s ran %.2f s after the start began', $how, $pids, time - $t_start));
	is( server_log_count($node,
			qr/^.*(?:\] demper launcher (?:FATAL|ERROR|PANIC):|cannot read pg_class without having selected a database).*$/),
		0,
		"$how: no FATAL or ERROR from the launcher in the log so far");
	return $pids;
}

my $pids = worker_pids();
for my $n (1 .. 2)
{
	$node->stop('fast');
	my $t = time;
	$node->start;
	$pids = after_start("fast stop and start $n", $t, $pids);
}

$node->stop('immediate');
my $t_immediate = time;
$node->start;
$pids = after_start('immediate stop and start (crash recovery)', $t_immediate, $pids);

for my $n (1 .. 2)
{
	my $client = $node->background_psql('postgres');
	my $victim = $client->query_safe('SELECT pg_backend_pid()');
	my $t = time;
	kill 'KILL', $victim;
	ok(defined DemperTest::wait_for_exit($victim, 60), "kill -9 of backend $n: the backend died");
	eval { $client->quit };    # its server restarts without it
	ok(wait_for_connections($node), "kill -9 of backend $n: the node accepts connections again");
	$pids = after_start("kill -9 of backend $n (crash restart)", $t, $pids);
}
my $starts = server_log_count($node, qr/database system is ready to accept connections/);
diag("server starts in this test: $starts");

$node->stop;
$mock->stop;
done_testing();
