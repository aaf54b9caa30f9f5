# Signals: SIGHUP (pg_reload_conf) changes the rate without a restart; SIGTERM ends the worker
# promptly even with requests in flight, changes no price and loses no product; demper.enabled = off
# stops new claims and on resumes them.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use IPC::Run;

my $own = '30012345';
my $mock = start_mock(synthetic => 1000000);

# Part 1 starts slow: 5 requests per second, a bucket of 2. max_inflight is small so that what is
# claimed ahead (max_inflight + 2 s of the rate) is sent well within the 10 s lease.
my $node = demper_node('signals', $mock,
	'demper.requests_per_second' => 5,
	'demper.burst' => 2,
	'demper.max_inflight' => 8,
	'demper.lease_time' => "'10s'");
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shop A', '$own')");

sub count_where
{
	my ($where) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM demper.product WHERE $where");
}

sub reload
{
	my (%set) = @_;
	$node->safe_psql('postgres', join('', map { "ALTER SYSTEM SET $_ = $set{$_};\n" } sort keys %set));
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
}

# ---------------------------------------------------------------------------------------------
# 1. SIGHUP changes the rate.
my $pid1 = wait_for_worker($node);
my $start = time;
insert_products($node, map { { code => $_, price => 600000, min => 10 } } 1 .. 400);

my @slow;
ok(poll_until(sub { @slow = mock_request_times($mock, $start); @slow >= 25 }, 120),
	'slow phase: at least 25 requests arrived');
my $t_reload = time;
reload('demper.requests_per_second' => 100);
@slow = grep { $_ < $t_reload } mock_request_times($mock, $start);
my $slow_max = max_in_window(1, @slow);
diag(sprintf('slow phase: %d requests in %.2f s, at most %d in any 1 s window (rate 5, burst 2)',
	scalar(@slow), $slow[-1] - $slow[0], $slow_max));
cmp_ok($slow_max, '<=', 7, 'slow phase: no 1 s window holds more than rate + burst (7) requests');

my @fast;
ok( poll_until(sub { @fast = mock_request_times($mock, $t_reload); max_in_window(1, @fast) > 7 }, 60),
	'after pg_reload_conf() a 1 s window holds more than 7 requests: the new rate took effect');
my $first_fast;
for my $i (7 .. $#fast)
{
	if ($fast[$i] - $fast[ $i - 7 ] < 1)
	{
		$first_fast = $fast[$i];
		last;
	}
}
diag(sprintf('reload to rate 100: first 1 s window above 7 requests completed %.2f s after pg_reload_conf()',
	$first_fast - $t_reload)) if defined $first_fast;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM demper.product WHERE last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL"),
	'every product of part 1 was checked');
diag(sprintf('fast phase: at most %d requests in any 1 s window',
	max_in_window(1, mock_request_times($mock, $t_reload))));
is(wait_for_worker($node), $pid1, 'the worker was not restarted by the reload (same pid)');

# ---------------------------------------------------------------------------------------------
# 2. SIGTERM with requests in flight: the worker exits promptly, changes no price, loses no product.
reload(
	'demper.requests_per_second' => 500,
	'demper.burst' => 50,
	'demper.max_inflight' => 64,
	'demper.http_timeout' => "'60s'");
$mock->fault(mode => 'latency', latency_ms => 30000);
my @p2;
for my $i (0 .. 199)
{
	my $c = { code => 200000 + $i, price => 9000, min => 100 };
	my $offers = [['M1', 3000 + $i], ['M2', 7000], [$own, 1000]];
	$c->{expected} = expected_price(price => 9000, min_price => 100, max_price => undef, step => 1,
		own => $own, offers => $offers);
	$mock->set_offers($c->{code}, $offers);
	push @p2, $c;
}
my $p2_where = 'product_code::bigint BETWEEN 200000 AND 200199';
insert_products($node, @p2);
my $in_flight = 0;
ok(poll_until(sub { $in_flight = demper_stats($node)->{in_flight}; $in_flight >= 20 }, 60),
	'requests are in flight (in_flight >= 20) before SIGTERM');
my $pid2 = wait_for_worker($node);
is($pid2, $pid1, 'still the same worker before SIGTERM');
my $t_term = time;
kill 'TERM', $pid2;
my $exit_s = DemperTest::wait_for_exit($pid2, 60);
ok(defined $exit_s, 'the worker exited after SIGTERM');
diag(sprintf('SIGTERM exit took %.3f s with %d requests in flight (requirement: 1 s)',
	$exit_s // -1, $in_flight));
cmp_ok($exit_s // 999, '<', 5, 'the worker exits within 5 s of SIGTERM although 30 s answers are pending');

is(count_where("$p2_where AND price <> 9000"), '0', 'SIGTERM changed no price');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE $p2_where"),
	'0', 'SIGTERM wrote no price history');
is(count_where("$p2_where AND last_check_time IS NOT NULL"), '0', 'SIGTERM recorded no check result');
# Whether the worker hands its leases back on SIGTERM (due at once) or leaves them to expire, no
# product may be pushed into the future unchecked.
my ($leased, $due) = split /\|/, $node->safe_psql('postgres',
	"SELECT count(*) FILTER (WHERE (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) > now()), count(*) FILTER (WHERE next_check_at <= now() AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL) FROM demper.product WHERE $p2_where");
diag("after SIGTERM: $leased products still leased, $due due now (released or never claimed)");
is(count_where("$p2_where AND next_check_at > now() AND ((SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) <= now())"), '0',
	'after SIGTERM every product is either still leased or due now: none is pushed into the future unchecked');
# The worker's stop_cleanly (src/pg/worker.cpp) is meant to hand the leases of the products still
# in check back on SIGTERM, due at once, so a restart need not wait for the lease to expire.
is($leased, '0', 'SIGTERM hands back the leases of the products in flight (stop_cleanly released them)');

$mock->fault(mode => 'none');
my $pid3;
ok(poll_until(sub { $pid3 = worker_pid($node); $pid3 =~ s/\D//g; $pid3 ne '' && $pid3 ne $pid2 }, 60),
	'the worker comes back with a new pid');
diag(sprintf('worker restarted %.2f s after SIGTERM', time - $t_term));
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE $p2_where AND (last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)"),
	'every product in flight at SIGTERM is checked afterwards: nothing lost');
diag(sprintf('all part-2 products checked %.2f s after SIGTERM', time - $t_term));
my %got = map { split /\|/ } split /\n/,
  $node->safe_psql('postgres', "SELECT product_code, price FROM demper.product WHERE $p2_where");
my @wrong = grep { $got{ $_->{code} } != $_->{expected} } @p2;
is(scalar(@wrong), 0, 'every product of part 2 ends at the rule\'s price')
  or diag(join("\n", map { "$_->{code}: got $got{$_->{code}}, expected $_->{expected}" } @wrong[0 .. 4]));
is($node->safe_psql('postgres',
	"SELECT count(*), count(DISTINCT h.product_id), count(*) FILTER (WHERE h.old_price <> 9000 OR h.new_price <> p.price) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE $p2_where"),
	'200|200|0', 'exactly one history row per product of part 2, from 9000 to its current price');

# ---------------------------------------------------------------------------------------------
# 3. demper.enabled = off stops new claims; on resumes them.
reload('demper.requests_per_second' => 20, 'demper.burst' => 2, 'demper.max_inflight' => 8);
my $p3_where = 'product_code::bigint BETWEEN 300001 AND 300300';
my $before = $mock->stats->{offer_requests};
insert_products($node, map { { code => $_, price => 600000, min => 10 } } 300001 .. 300300);
ok(poll_until(sub { $mock->stats->{offer_requests} - $before >= 30 }, 60), 'part 3: requests arrive');
reload('demper.enabled' => 'off');
my $t_off = time;

# Drained: nothing in flight or queued, no product leased, and checks_started stable over a poll.
my $last_started = -1;
ok( poll_until(
		sub {
			my $s = demper_stats($node);
			my $stable = $s->{checks_started} == $last_started;
			$last_started = $s->{checks_started};
			return $stable && $s->{in_flight} == 0 && $s->{queued} == 0
			  && count_where("$p3_where AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL") == 0;
		},
		60),
	'with enabled = off the in-flight checks drain');
diag(sprintf('drained %.2f s after enabled = off', time - $t_off));
my $requests_off = $mock->stats->{offer_requests};
my $started_off = demper_stats($node)->{checks_started};
my $unchecked = count_where("$p3_where AND last_check_time IS NULL");
diag("products left unchecked while disabled: $unchecked");
cmp_ok($unchecked, '>', 0, 'products are still due while disabled');
# check_now wakes the worker: with enabled = on it would claim at once.
$node->safe_psql('postgres',
	"SELECT demper.check_now(id) FROM demper.product WHERE $p3_where AND last_check_time IS NULL LIMIT 5");
ok( !poll_until(
		sub {
			$mock->stats->{offer_requests} > $requests_off
			  || demper_stats($node)->{checks_started} > $started_off;
		},
		3),
	'no new claim and no new request while disabled, even after check_now');
is(count_where("$p3_where AND last_check_time IS NULL"), $unchecked, 'no product was checked while disabled');

my $t_on = time;
reload('demper.enabled' => 'on', 'demper.requests_per_second' => 200, 'demper.burst' => 20);
ok(poll_until(sub { $mock->stats->{offer_requests} > $requests_off }, 30),
	'requests resume after enabled = on');
diag(sprintf('first request %.2f s after enabled = on', time - $t_on));
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM demper.product WHERE $p3_where AND (last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)"),
	'every product of part 3 is checked after enabled = on');
is(wait_for_worker($node), $pid3, 'enabled off/on did not restart the worker');

# ---------------------------------------------------------------------------------------------
# 4. A session of the test holds rows of products in check (FOR UPDATE, in an open transaction).
#    The worker does not wait for them: it skips those rows and goes on. SIGTERM then stops it
#    within seconds; what it decided for rows it could not write, and what was in flight, is
#    handed back (nothing stays leased), and no FATAL is raised inside an SQL statement. Once the
#    rows are free, the restarted worker checks every product.
reload('demper.max_inflight' => 64, 'demper.requests_per_second' => 500, 'demper.burst' => 50);
$mock->fault(mode => 'latency', latency_ms => 2000);
my $p4_where = 'product_code::bigint BETWEEN 400000 AND 400099';
insert_products($node, map { { code => 400000 + $_, price => 9000, min => 100 } } 0 .. 99);
my $pid4 = wait_for_worker($node);
ok(poll_until(sub { count_where("$p4_where AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) > now()") >= 20 }, 30), 'products of part 4 are in check');
# Ten of the products in check are held; the other ninety must be written meanwhile.
my $held_ids = $node->safe_psql('postgres', "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM demper.product WHERE $p4_where AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) > now() ORDER BY id LIMIT 10) h");
my $holder = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c',
	"BEGIN; SELECT id FROM demper.product WHERE id IN ($held_ids) FOR UPDATE; SELECT pg_sleep(120);" ],
	'>', '/dev/null', '2>', '/dev/null');
ok(poll_until(sub { $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND state = 'active' AND wait_event = 'PgSleep'") > 0 }, 30),
	'a session holds the rows of ten products in check');
ok(poll_until(sub { count_where("$p4_where AND last_check_time IS NULL AND id NOT IN ($held_ids)") == 0 }, 90),
	'the worker goes on while the rows are held: the other ninety products are written');
is(count_where("id IN ($held_ids) AND last_check_time IS NOT NULL"), 0, 'the held products are not written while held');
my $log_offset = -s $node->logfile;
my $t_term = time;
kill 'TERM', $pid4;
my $exit4 = DemperTest::wait_for_exit($pid4, 30);
ok(defined $exit4, sprintf('SIGTERM: the worker stops although the rows are still held (%.2f s)', $exit4 // -1));
cmp_ok($exit4 // 99, '<', 5, 'SIGTERM: the stop takes less than 5 s');
# The worker comes back after 5 s: these are read before.
# A lease that ran out while its row was held is free already (claimable by anyone): what must not
# stay is a lease that still runs.
is(count_where("$p4_where AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) > now()"), '0',
	'after SIGTERM no product stays leased');
$node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()");
$holder->finish;
my $log4 = slurp_file($node->logfile, $log_offset);
unlike($log4, qr/FATAL:[^\n]*\n(?:[^\n]*\n)?[^\n]*CONTEXT:\s+SQL statement/, 'no FATAL inside an SQL statement');
unlike($log4, qr/could not hand back its products/, 'the products in check were handed back');
$mock->fault(mode => 'none');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM demper.product WHERE $p4_where AND (last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)"),
	'every product of part 4 is checked by the restarted worker');
reliability('SIGTERM while a session holds rows of products in check', 1,
	count_where("$p4_where AND last_check_time IS NULL"), sprintf('stopped in %.2f s', $exit4 // -1));

$node->stop;
$mock->stop;
done_testing();
