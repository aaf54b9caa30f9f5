# Faults (issue 7): kill -9 of the worker at random points of many batches (claim, requests in
# flight, apply, pushes), postmaster crashes (immediate shutdown) in the middle of a run, fast and
# smart shutdown with 1,000 requests in flight, and a SIGHUP storm while running. After each:
# every product is checked again and ends at the rule's price, no decision is half written
# (price history is an unbroken chain from the initial price to the current one, one row per real
# change), and no push is lost (the mock's last accepted push of each changed listing carries its
# current price; duplicates only as at-least-once allows). Each fault prints a RELIABILITY line.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time sleep);

my $t_start = time;
my $soft = raise_fd_limit(4096);
cmp_ok($soft, '>=', 2400, "the open-file soft limit allows 1,000 requests in flight ($soft)");

my $mock = start_mock();
$mock->post('/_mock/push_limits', { push_limit_rps => 100000 });
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $key_file = write_key_file("$tmp/demper.key");
my $node = demper_node('faults', $mock,
	'demper.requests_per_second' => 400,
	'demper.burst' => 40,
	'demper.max_inflight' => 64,
	'demper.batch_size' => 50,
	'demper.lease_time' => "'10s'",
	'demper.http_timeout' => "'10s'",
	'demper.push_rate' => 100,
	'demper.credentials_key_file' => "'$key_file'",
	'demper.push_url' => "'http://127.0.0.1:" . $mock->port . "/pricefeed/upload/merchant/process'",
	restart_after_crash => 'on');    # the test framework turns it off

sub psql { return $node->safe_psql('postgres', $_[0]) }

# Four stores publishing through the API (one merchant each), 100 products each; store 5 does
# not publish (the shutdown parts).
my @merchants = map { 30020000 + $_ } 1 .. 4;
my %store_of;
for my $m (@merchants)
{
	my $id = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Fault $m', '$m') RETURNING id");
	store_credentials($node, $mock, $id, $m, "S$m" . int(rand(1e9)), "I$m" . int(rand(1e9)));
	$store_of{$m} = $id;
}
my $quiet_store = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Quiet', '30029999') RETURNING id");

my %book;    # product code => [[merchant, price], ...]
my @products;    # {code, store, merchant, price, min}
for my $i (0 .. 399)
{
	my $m = $merchants[ $i % 4 ];
	push @products, { code => 710000 + $i, store => $store_of{$m}, merchant => $m, price => 60000 + $i,
		min => ($i % 5 == 0 ? 25000 : 100) };
}

sub set_book
{
	my ($p, $competitor) = @_;
	$book{ $p->{code} } = [ [ 'C1', $competitor ], [ 'C2', $competitor + 700 ], [ $p->{merchant}, 1000 ] ];
	$mock->set_offers($p->{code}, $book{ $p->{code} });
}
set_book($_, 40000 + ($_->{code} % 977) * 10) for @products;
insert_products($node, map { { store => $_->{store}, code => $_->{code}, price => $_->{price}, min => $_->{min} } } @products);
my $where = "p.product_code::bigint BETWEEN 710000 AND 710399";
my %id_of = map { split /\|/ } split /\n/, psql("SELECT product_code, id FROM demper.product p WHERE $where");
# The prices inserted, not read back: insert_products wakes the worker, which may already have
# changed some by the time a query could read them.
my %initial = map { $id_of{ $_->{code} } => $_->{price} } @products;
is(scalar(grep { defined $id_of{ $_->{code} } } @products), scalar(@products), 'every product inserted has an id');

# move_some moves the competitors of about a third of the products and makes every product due.
sub move_some
{
	my ($round) = @_;
	for my $p (@products)
	{
		next unless ($p->{code} + $round) % 3 == 0;
		set_book($p, 20000 + (($p->{code} * 37 + $round * 1013) % 30000));
	}
	psql("UPDATE demper.product p SET next_check_at = now() WHERE $where AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL; SELECT demper.wake_workers()");
}

# converge waits until every product of $where was checked after $since with no lease left and
# no push open, then returns the losses: products unchecked or at a wrong price, history
# problems, lost pushes; it also returns duplicate pushes.
sub converge_and_verify
{
	my ($label, $since) = @_;
	psql("UPDATE demper.product p SET next_check_at = now() WHERE $where AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL AND last_check_time < to_timestamp($since); SELECT demper.wake_workers()");
	my $ok = $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product p WHERE $where AND (last_check_time IS NULL OR last_check_time < to_timestamp($since) OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)");
	my $unchecked = psql("SELECT count(*) FROM demper.product p WHERE $where AND (last_check_time IS NULL OR last_check_time < to_timestamp($since) OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)");
	ok($ok, "$label: every product is checked again after the last fault ($unchecked not)");
	diag(sprintf('%s: all 400 products checked %.1f s after the last fault', $label, time - $since));
	ok(poll_until(sub { psql("SELECT count(*) FROM demper.outbox o JOIN demper.product p ON p.id = o.product_id WHERE $where AND o.status = 'pending'") == 0 }, 60),
		"$label: no push is left pending");

	my %price = map { split /\|/ } split /\n/, psql("SELECT product_code, price FROM demper.product p WHERE $where");
	my @wrong = grep {
		$price{ $_->{code} } != expected_price(price => 0, min_price => $_->{min}, max_price => undef, step => 1,
			own => $_->{merchant}, offers => $book{ $_->{code} })
	} @products;
	is(scalar(@wrong), 0, "$label: every price equals the rule's result for the latest offers")
	  or diag('wrong: ' . join(', ', map { "$_->{code}=$price{$_->{code}}" } @wrong[0 .. ($#wrong < 4 ? $#wrong : 4)]));
	my @hist = history_problems($node, $where, \%initial);
	is(scalar(@hist), 0, "$label: the price history is an unbroken chain of real changes (no half-written decision)")
	  or diag(join("\n", @hist[0 .. ($#hist < 4 ? $#hist : 4)]));
	my ($lost, $dups, @pp) = push_problems($node, $mock, $where);
	is($lost, 0, "$label: no push lost (each changed listing's last accepted push is its current price)")
	  or diag(join("\n", @pp[0 .. ($#pp < 4 ? $#pp : 4)]));
	my $rows = psql("SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE $where");
	my $pushes = scalar(grep { $_->{sku} =~ /^sku-7100|^sku-7101|^sku-7102|^sku-7103/ } mock_pushes($mock));
	diag("$label: $rows history rows, $pushes pushes accepted, $dups duplicate pushes (at-least-once), "
		  . scalar(@wrong) . ' wrong prices, ' . scalar(@hist) . " history problems, $lost lost pushes");
	return ($unchecked + scalar(@wrong) + scalar(@hist) + $lost, $dups);
}

# ---------------------------------------------------------------------------------------------
# 1. kill -9 of the worker at many points of many batches: at random moments, and inside each of
#    its transactions (claim, apply, push claim, push record). To be inside one for sure, a
#    session of the test holds a lock that transaction needs (a SHARE lock on the table for the
#    claims, row locks on the leased rows for the applies); the worker is killed once
#    pg_stat_activity shows it waiting for that lock in that transaction.
$mock->fault(mode => 'latency', latency_ms => 150);
my %stages;
my $t_last_kill;
my %blocker = (
	'claim' => [ 'claiming due products', 'LOCK TABLE demper.product IN SHARE MODE' ],
	'apply' => [ 'applying decisions', 'SELECT id FROM demper.product WHERE (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) > now() FOR UPDATE' ],
	'push claim' => [ 'claiming pushes', 'LOCK TABLE demper.outbox IN SHARE MODE' ]);
# (A push's own transaction, recording its answer, lasts a few milliseconds after an answer the
# mock gives at once: the random kills below are what reach it.)
my @plan = ((map { ("inside $_") x 2 } sort keys %blocker), ('random moment') x 10);
my $round = 0;
for my $what (@plan)
{
	$round++;
	my $pid = wait_for_worker($node);
	move_some($round);
	my $label = $what;
	my $holder;
	if ($what =~ /^inside (.*)/)
	{
		my $stage = $1;
		my ($activity, $lock) = @{ $blocker{$stage} };
		# The apply lock needs leased rows whose answers are still to come: slow answers (2 s).
		if ($lock =~ /FOR UPDATE/)
		{
			$mock->fault(mode => 'latency', latency_ms => 2000);
			poll_until(sub { demper_stats($node)->{in_flight} > 0 }, 10);
		}
		$holder = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c',
			"BEGIN; $lock; SELECT pg_sleep(60);" ], '>', '/dev/null', '2>', '/dev/null');
		my $seen = poll_until(sub {
			psql("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND state = 'active' AND wait_event_type = 'Lock' AND query LIKE '%demper:%'") > 0
		}, 8);
		my $now = psql("SELECT query FROM pg_stat_activity WHERE pid = $pid");
		my ($in) = $now =~ /demper: (.*)/;
		$label = $seen ? "inside $stage (waiting for a lock in: " . ($in // '?') . ')' : "$what (not reached in 8 s: random moment)";
		$mock->fault(mode => 'latency', latency_ms => 150);
	}
	else
	{
		sleep(0.05 + rand(1.6));
		my $in_flight = demper_stats($node)->{in_flight};
		$label .= $in_flight > 0 ? ', requests in flight' : ', between batches';
	}
	$t_last_kill = time;
	kill 'KILL', $pid;
	$stages{$label}++;
	diag(sprintf('round %d: kill -9 of worker %d at %.2f s (%s)', $round, $pid, $t_last_kill - $t_start, $label));
	ok(defined DemperTest::wait_for_exit($pid, 30), "round $round: the worker died");
	ok(wait_for_connections($node, 120), "round $round: the node accepts connections after crash recovery");
	if ($holder)
	{
		$holder->kill_kill;    # its backend was ended by the crash restart already
		$holder = undef;
	}
}
$mock->fault(mode => 'none');
my ($lost, $dups) = converge_and_verify('kill -9', $t_last_kill);
reliability("kill -9 of the worker ($_)", $stages{$_}, $lost, 'lost counts the whole run of kills') for sort keys %stages;
reliability('kill -9 of the worker (all points)', scalar(@plan), $lost, "$dups duplicate pushes (at-least-once)");

# ---------------------------------------------------------------------------------------------
# 2. Postmaster crash: immediate shutdown in the middle of a run, then start.
$mock->fault(mode => 'latency', latency_ms => 150);
my $t_crash;
for my $round (1 .. 2)
{
	wait_for_worker($node);
	move_some(100 + $round);
	sleep(0.3 + rand(1.0));
	my $in_flight = demper_stats($node)->{in_flight};
	$t_crash = time;
	$node->stop('immediate');
	$node->start;
	diag(sprintf('postmaster crash %d: immediate shutdown with %d requests in flight, up again in %.2f s',
		$round, $in_flight, time - $t_crash));
}
$mock->fault(mode => 'none');
($lost, $dups) = converge_and_verify('immediate shutdown', $t_crash);
reliability('postmaster crash (immediate shutdown) mid-run', 2, $lost, "$dups duplicate pushes (at-least-once)");

# ---------------------------------------------------------------------------------------------
# 3. Fast and smart shutdown with 1,000 requests in flight (answers take 30 s).
reload_conf($node, 'demper.max_inflight' => 1000, 'demper.max_inflight_per_host' => 1000, 'demper.requests_per_second' => 5000, 'demper.burst' => 1000,
	'demper.batch_size' => 500, 'demper.http_timeout' => "'60s'");
my @quiet = map { { store => $quiet_store, code => 720000 + $_, price => 90000, min => 100 } } 0 .. 999;
my $qwhere = "product_code::bigint BETWEEN 720000 AND 720999";
my $quiet_inserted = 0;
for my $mode ('fast', 'smart')
{
	$mock->fault(mode => 'latency', latency_ms => 30000);
	if (!$quiet_inserted++)
	{
		insert_products($node, @quiet);
	}
	else
	{
		psql("UPDATE demper.product SET next_check_at = now() WHERE $qwhere; SELECT demper.wake_workers()");
	}
	my $before = psql("SELECT string_agg(price::text, ',' ORDER BY id) FROM demper.product WHERE $qwhere");
	my $hist_before = psql("SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE p.$qwhere");
	my $in_flight = 0;
	ok(poll_until(sub { $in_flight = demper_stats($node)->{in_flight}; $in_flight >= 950 }, 60),
		"$mode shutdown: about 1,000 requests are in flight ($in_flight)");
	# The worker must not claim before the leases are looked at after the restart.
	psql('ALTER SYSTEM SET demper.enabled = off');
	my $t0 = time;
	my $stopped = $node->stop($mode, fail_ok => 1);
	my $stop_s = time - $t0;
	ok($stopped, "$mode shutdown: pg_ctl stop -m $mode succeeded");
	cmp_ok($stop_s, '<', 15, sprintf('%s shutdown: the server stopped within 15 s (%.2f s) with %d requests in flight', $mode, $stop_s, $in_flight));
	$node->start;
	my ($changed, $leased, $not_due) = split /\|/, psql(
		"SELECT count(*) FILTER (WHERE price <> 90000 AND last_check_time > to_timestamp($t0 - 1)),
		        count(*) FILTER (WHERE (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL),
		        count(*) FILTER (WHERE next_check_at > now() AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL)
		   FROM demper.product WHERE $qwhere");
	my $hist_after = psql("SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE p.$qwhere");
	is($hist_after, $hist_before, "$mode shutdown: no history row written by the stopped checks");
	is($leased, 0, "$mode shutdown: every lease was handed back (stop_cleanly)");
	is($not_due, 0, "$mode shutdown: no product is pushed into the future unchecked");
	$mock->fault(mode => 'none');
	my $t_on = time;
	reload_conf($node, 'demper.enabled' => 'on');
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE $qwhere AND (last_check_time IS NULL OR last_check_time < to_timestamp($t_on) OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)"),
		"$mode shutdown: all 1,000 products are checked after the restart");
	# The mock has no book for these codes: no competitor and no ceiling, so the price holds.
	my $wrong = psql("SELECT count(*) FROM demper.product WHERE $qwhere AND price <> 90000");
	is($wrong, 0, "$mode shutdown: no price changed (no competitor, no ceiling: the price holds)");
	diag(sprintf('%s shutdown: stopped in %.2f s with %d in flight; %d leases left, %d products not due; all checked %.1f s after enabled = on',
		$mode, $stop_s, $in_flight, $leased, $not_due, time - $t_on));
	my $unchecked = psql("SELECT count(*) FROM demper.product WHERE $qwhere AND (last_check_time IS NULL OR last_check_time < to_timestamp($t_on))");
	reliability("$mode shutdown with 1,000 requests in flight", 1, $unchecked + $leased + $not_due + ($hist_after - $hist_before),
		sprintf('stopped in %.2f s', $stop_s));
}

# ---------------------------------------------------------------------------------------------
# 4. SIGHUP storm while running: 400 products re-priced during 500 SIGHUPs and 10 reloads.
reload_conf($node, 'demper.max_inflight' => 64, 'demper.max_inflight_per_host' => 64, 'demper.requests_per_second' => 300, 'demper.burst' => 40,
	'demper.batch_size' => 50, 'demper.http_timeout' => "'10s'");
my $pid = wait_for_worker($node);
my $log_offset = -s $node->logfile;
$mock->fault(mode => 'latency', latency_ms => 100);
my $t_storm = time;
move_some(200);
my $hups = 0;
for my $i (1 .. 500)
{
	$hups += kill 'HUP', $pid;
	if ($i % 50 == 0)
	{
		psql('ALTER SYSTEM SET demper.requests_per_second = ' . ($i % 100 == 0 ? 300 : 200) . '; SELECT pg_reload_conf()');
	}
	sleep(0.004);
}
diag(sprintf('SIGHUP storm: %d SIGHUPs and 10 reloads in %.2f s', $hups, time - $t_storm));
is(wait_for_worker($node), $pid, 'SIGHUP storm: the worker survived (same pid)');
$mock->fault(mode => 'none');
($lost, $dups) = converge_and_verify('SIGHUP storm', $t_storm);
my $bad_log = server_log_count($node, qr/(ERROR|FATAL|PANIC|WARNING):.*demper|demper.*(ERROR|FATAL|PANIC)/, $log_offset);
is($bad_log, 0, 'SIGHUP storm: no demper error or warning in the server log');
is(wait_for_worker($node), $pid, 'SIGHUP storm: still the same worker after the checks');
reliability('SIGHUP storm while running', $hups, $lost + $bad_log, '500 SIGHUPs to the worker + 10 pg_reload_conf() in ~3 s');

diag(sprintf('011_faults took %.1f s', time - $t_start));
$node->stop;
$mock->stop;
done_testing();
