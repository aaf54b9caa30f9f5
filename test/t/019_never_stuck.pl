# Never stuck (issue 16, items 4, 5, 6, 9 and 10), each performed for real against a running
# worker and the mock marketplace, each with a RELIABILITY line:
#   4. a session idle in transaction and a prepared transaction hold product rows: the other
#      products are repriced meanwhile, pg_terminate_backend(worker) and pg_ctl stop -m fast each
#      take less than 5 s;
#   5. pg_cancel_backend(worker), at random moments and inside a lock wait, cancels what it hits
#      and nothing more: the same worker goes on;
#   6. kill -9 of the worker with products leased for 600 s: the restarted worker reclaims the
#      dead worker's leases, and the products are checked within 60 s of the restart;
#   9. one transaction calling check_now() for 20,000 products wakes the workers once, at commit;
#  10. demper.workers above what max_worker_processes admits: the workers that run share the rate
#      by their number, not by the number configured.
# Each part says what the code before issue 16 (0.7.0 before cf82627) did in the same situation.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $t_start = time;
my $mock = start_mock(synthetic => 1000000);
my $node = demper_node('stuck', $mock,
	'demper.requests_per_second' => 2000,
	'demper.burst' => 200,
	'demper.max_inflight' => 64,
	'demper.lease_time' => "'20s'",
	max_prepared_transactions => 5,
	restart_after_crash => 'on');    # the test framework turns it off
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Stuck', '30030001')");
my $budget_store = $node->safe_psql('postgres',
	"INSERT INTO demper.store (name, merchant_id, change_budget) VALUES ('Budget', '30030002', 100000) RETURNING id");

sub psql { return $node->safe_psql('postgres', $_[0]) }

# add_products inserts products with codes $first..$last of $store, priced above every synthetic
# offer (so every check changes the price), not due for a day.
sub add_products
{
	my ($first, $last, $store) = @_;
	psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
	      SELECT " . ($store // 1) . ", g::text, 'sku-' || g, 600000, 10, now() + interval '1 day'
	        FROM generate_series($first, $last) g");
	return "product_code::bigint BETWEEN $first AND $last";
}

# make_due makes the products of $where due now through the due queue, without touching their
# product rows (some are locked by the test), and wakes the worker.
sub make_due
{
	my ($where) = @_;
	psql("UPDATE demper.schedule SET next_check_at = now() WHERE product_id IN (SELECT id FROM demper.product WHERE $where);
	      SELECT demper.wake_workers()");
}

sub count_where { return psql("SELECT count(*) FROM demper.product WHERE $_[0]") }

sub leased
{
	return psql("SELECT count(*) FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
	             WHERE s.lease_token IS NOT NULL AND p.$_[0]");
}

# cpu_ms is the CPU time (user + system) process $pid has used, in milliseconds.
sub cpu_ms
{
	my ($pid) = @_;
	my $stat = slurp_file("/proc/$pid/stat");
	$stat =~ s/^.*\)\s+//s;    # after the command name, which may hold spaces
	my @f = split /\s+/, $stat;
	return ($f[11] + $f[12]) * 1000 / 100;    # utime, stime in clock ticks (USER_HZ = 100)
}

# ---------------------------------------------------------------------------------------------
# 4. Locks. A session idle in transaction holds one product row (FOR UPDATE) and a prepared
#    transaction holds another; both products are due with 98 others. Before issue 16, the
#    worker's apply waited for the row lock forever, in "applying decisions": no product of any
#    store was repriced, pg_terminate_backend(worker) did nothing and pg_ctl stop -m fast failed.
#    Now the apply skips rows others hold (written later), every lock wait ends after
#    demper.lock_timeout, and a stop request is honoured between transactions.
my $wave1 = add_products(1001, 1100);
my $wave2 = add_products(1101, 1120);
my $wave3 = add_products(1121, 1140);
my $x = psql("SELECT id FROM demper.product WHERE product_code = '1001'");
my $y = psql("SELECT id FROM demper.product WHERE product_code = '1002'");
my $pid = wait_for_worker($node);

my $idle = $node->background_psql('postgres');
$idle->query_safe("BEGIN; SELECT id FROM demper.product WHERE id = $x FOR UPDATE;");
psql("BEGIN; SELECT id FROM demper.product WHERE id = $y FOR UPDATE; PREPARE TRANSACTION 'demper_019_hold';");
is(psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"), '1',
	'part 4: a session is idle in transaction holding a product row');
is(psql("SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'demper_019_hold'"), '1',
	'part 4: a prepared transaction holds another');

my $t_due = time;
make_due($wave1);
my $others = "$wave1 AND id NOT IN ($x, $y)";
ok(poll_until(sub { count_where("$others AND price < 600000") == 98 }, 60),
	'part 4: the 98 other products are repriced while the two rows are held');
my $others_s = time - $t_due;
diag(sprintf('part 4: 98 products repriced %.2f s after they came due, two rows held', $others_s));
is(count_where("id IN ($x, $y) AND last_check_time IS NOT NULL"), '0', 'part 4: the held products are not written');
my $unwritten = 98 - count_where("$others AND price < 600000");
reliability('a session idle in transaction and a prepared transaction hold product rows', 1, $unwritten,
	sprintf('the other 98 products repriced in %.1f s', $others_s));

# pg_terminate_backend while the rows are held (and the held products' outcomes wait).
my $t_term = time;
psql("SELECT pg_terminate_backend($pid)");
my $term_s = defined(DemperTest::wait_for_exit($pid, 30)) ? time - $t_term : undef;
ok(defined $term_s, 'part 4: pg_terminate_backend(worker) ends the worker');
diag(sprintf('part 4: pg_terminate_backend(worker) with two rows held: the worker exited in %.3f s', $term_s // -1));
cmp_ok($term_s // 99, '<', 5, 'part 4: pg_terminate_backend(worker) takes less than 5 s');
reliability('pg_terminate_backend(worker) while product rows are held', 1, defined $term_s && $term_s < 5 ? 0 : 1,
	sprintf('the worker exited in %.2f s', $term_s // -1));
my $pid2;
ok(poll_until(sub { $pid2 = worker_pid($node); $pid2 =~ s/\D//g; $pid2 ne '' && $pid2 ne $pid }, 60),
	'part 4: the launcher starts the worker again');
make_due($wave2);
ok(poll_until(sub { count_where("$wave2 AND price < 600000") == 20 }, 60),
	'part 4: the restarted worker reprices new products while the rows are still held');

# pg_ctl stop -m fast with the rows still held; the prepared transaction outlives the restart.
my $t_stop = time;
my $stopped = do { local $ENV{PGCTLTIMEOUT} = 30; $node->stop('fast', fail_ok => 1) };
my $stop_s = time - $t_stop;
ok($stopped, 'part 4: pg_ctl stop -m fast succeeds while the rows are held');
diag(sprintf('part 4: pg_ctl stop -m fast with a session idle in transaction and a prepared transaction: %.3f s', $stop_s));
cmp_ok($stop_s, '<', 5, 'part 4: pg_ctl stop -m fast takes less than 5 s');
reliability('pg_ctl stop -m fast while a session and a prepared transaction hold product rows', 1,
	$stopped && $stop_s < 5 ? 0 : 1, sprintf('stopped in %.2f s', $stop_s));
$node->stop('immediate', fail_ok => 1) unless $stopped;
eval { $idle->quit };    # its server is gone
my $t_start_node = time;
$node->start;
wait_for_worker($node);
my $worker_after_s = time - $t_start_node;
my $launcher_fatals = server_log_count($node, qr/FATAL:\s+cannot read pg_class without having selected a database/);
diag(sprintf('part 4: the worker ran %.1f s after pg_ctl start; launcher FATALs in the log so far: %d', $worker_after_s,
	$launcher_fatals));
# The launcher finds demper.database with a heap scan of pg_database: through its index it died at
# every server start (a process bound to no database cannot build that index's relcache entry
# until a backend has rewritten the shared relcache init file, which every start removes), and the
# workers started only after its 5 s restart.
is($launcher_fatals, 0, 'part 4: the launcher raises no FATAL at server start');
cmp_ok($worker_after_s, '<', 4, 'part 4: the worker runs within seconds of the server start');
is(psql("SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'demper_019_hold'"), '1',
	'part 4: the prepared transaction still holds its row after the restart');
make_due("($wave3) OR id = $x");
ok(poll_until(sub { count_where("(($wave3) OR id = $x) AND price < 600000") == 21 }, 60),
	'part 4: after the restart new products and the row the ended session held are repriced');
is(count_where("id = $y AND last_check_time IS NOT NULL"), '0', 'part 4: the prepared transaction\'s row is still not written');
psql("ROLLBACK PREPARED 'demper_019_hold'");
make_due("id = $y");
ok(poll_until(sub { count_where("id = $y AND price < 600000") == 1 }, 60),
	'part 4: once the prepared transaction is rolled back its product is repriced');
ok(poll_until(sub { leased("product_code::bigint BETWEEN 1001 AND 1140") == 0 }, 30), 'part 4: no lease is left');

# ---------------------------------------------------------------------------------------------
# 5. pg_cancel_backend(worker). Before issue 16 a cancel killed the worker (FATAL, a new worker
#    after 5 s, its claimed products leased until their lease ran out). Now it cancels the
#    statement it hits, if any, and the worker goes on. (a) Fifteen cancels at random moments
#    while 200 products are checked (answers take 300 ms); (b) one inside a lock wait: a session
#    holds the row of a store with a change budget, which the apply locks before counting the
#    store's changes (demper.lock_timeout raised to 60 s so the wait lasts).
$pid = wait_for_worker($node);
my $log_offset = -s $node->logfile;
my $cancel_set = add_products(2001, 2200);
$mock->fault(mode => 'latency', latency_ms => 300);
make_due($cancel_set);
ok(poll_until(sub { leased($cancel_set) > 0 }, 30), 'part 5: products are in check');
my $cancels = 0;
for (1 .. 15)
{
	psql("SELECT pg_cancel_backend($pid)");
	$cancels++;
	usleep(100_000 + int(rand(300_000)));
}
$mock->fault(mode => 'none');
ok(poll_until(sub { count_where("$cancel_set AND price < 600000") == 200 && leased($cancel_set) == 0 }, 90),
	'part 5: every product of the set is checked and written despite the cancels');
is(worker_pid($node) =~ s/\D//gr, $pid, 'part 5: the same worker runs after 15 cancels');

my $budget_set = add_products(2301, 2310, $budget_store);
$node->psql('postgres', "ALTER SYSTEM SET demper.lock_timeout = '60s'; SELECT pg_reload_conf()");
ok(poll_until(sub { server_log_count($node, qr/parameter "demper\.lock_timeout" changed to "60s"/, $log_offset) > 0 }, 30),
	'part 5: demper.lock_timeout is 60 s');
my $holder = $node->background_psql('postgres');
$holder->query_safe("BEGIN; SELECT id FROM demper.store WHERE id = $budget_store FOR UPDATE;");
make_due($budget_set);
ok(poll_until(sub {
		psql("SELECT pg_stat_clear_snapshot(); SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND wait_event_type = 'Lock'") == 1
	}, 30),
	'part 5: the worker waits for the lock of the store row');
psql("SELECT pg_cancel_backend($pid)");
$cancels++;
ok(poll_until(sub { server_log_count($node, qr/postponed writing a batch of checks: .*canceling statement due to user request/, $log_offset) > 0 }, 30),
	'part 5: the cancel ends the statement that waited (the batch is written later)');
$holder->query_safe('COMMIT');
$holder->quit;
ok(poll_until(sub { count_where("$budget_set AND price < 600000") == 10 }, 60),
	'part 5: once the store row is free the batch is written');
$node->psql('postgres', "ALTER SYSTEM RESET demper.lock_timeout; SELECT pg_reload_conf()");
my $after = worker_pid($node) =~ s/\D//gr;
is($after, $pid, 'part 5: the same worker runs after the cancel inside the lock wait');
my $fatals = server_log_count($node, qr/FATAL:.*(?:demper|canceling statement)/, $log_offset);
is($fatals, 0, 'part 5: no FATAL');
my $went_on = server_log_count($node, qr/demper worker (?:was asked to cancel; it goes on|will try again shortly|postponed writing)/, $log_offset);
diag("part 5: $cancels cancels; $went_on log lines of the worker going on");
my $written5 = count_where("($cancel_set OR $budget_set) AND price < 600000");
reliability('pg_cancel_backend(worker) at random moments and inside a lock wait', $cancels,
	($after eq $pid ? 0 : 1) + (210 - $written5),
	sprintf('%s worker throughout; %d of 210 products written; lost counts worker restarts and products left unwritten',
		$after eq $pid ? 'the same' : 'NOT the same', $written5));

# ---------------------------------------------------------------------------------------------
# 6. kill -9 of the worker with products leased for 600 s (answers take 30 s, so they are in
#    check when it dies). Before issue 16 they stayed leased for the whole lease after the crash
#    restart (in one run with five kills, 27 of 56 products went unchecked for over 200 s). Now a
#    lease names its worker (shared-memory generation, slot, start) and the worker that starts
#    after the crash restart hands back the leases of workers that no longer exist.
psql("ALTER SYSTEM SET demper.lease_time = '600s'; ALTER SYSTEM SET demper.http_timeout = '60s'; SELECT pg_reload_conf()");
ok(poll_until(sub { psql('SHOW demper.lease_time') eq '10min' }, 30), 'part 6: demper.lease_time is 600 s');
my $crash_set = add_products(3001, 3060);
$mock->fault(mode => 'latency', latency_ms => 30000);
make_due($crash_set);
my $leased_at_kill;
ok(poll_until(sub { ($leased_at_kill = leased($crash_set)) >= 40 }, 60), 'part 6: products are leased (in check)');
my $lease_left = psql("SELECT round(extract(epoch FROM min(lease_until) - now())) FROM demper.schedule WHERE lease_token IS NOT NULL");
diag("part 6: $leased_at_kill products leased, their leases end in $lease_left s or later");
$pid = wait_for_worker($node);
$log_offset = -s $node->logfile;
# The answers already under way keep their 30 s; those the restarted worker asks for come at once.
$mock->fault(mode => 'none');
kill 'KILL', $pid;
ok(wait_for_connections($node), 'part 6: the node accepts connections again after the crash restart');
my $t_up = time;
my $all_checked = poll_until(sub { count_where("$crash_set AND price < 600000") == 60 && leased($crash_set) == 0 }, 60);
my $recheck_s = time - $t_up;
ok($all_checked, 'part 6: every product leased by the dead worker is checked within 60 s of the restart');
diag(sprintf('part 6: all 60 products checked %.1f s after the crash restart (lease_time 600 s)', $recheck_s));
ok(server_log_count($node, qr/reclaimed the leases of workers that are gone: \d+ products/, $log_offset) > 0,
	'part 6: the worker says it reclaimed the leases');
reliability('kill -9 of the worker with products leased for 600 s', 1, 60 - count_where("$crash_set AND price < 600000"),
	sprintf('%d products leased at the kill, all checked %.1f s after the restart', $leased_at_kill, $recheck_s));
psql("ALTER SYSTEM RESET demper.lease_time; ALTER SYSTEM RESET demper.http_timeout; SELECT pg_reload_conf()");

# ---------------------------------------------------------------------------------------------
# 9. Wake at commit. One transaction calls check_now() for 20,000 products. Before issue 16 every
#    call set the workers' latches at once: 20,000 wake-ups while the rows were still locked and
#    their new due times invisible (measured: 2.1 s of the worker's CPU before the commit). Now
#    the transaction wakes them once, when it commits (demper_stats().wake_requests counts it).
my $wake_set = add_products(100001, 120000);
$pid = wait_for_worker($node);
my $wakes_before = demper_stats($node)->{wake_requests};
my $cpu_before = cpu_ms($pid);
my $caller = $node->background_psql('postgres');
my $t_calls = time;
$caller->query_safe("BEGIN; DO \$\$ BEGIN PERFORM demper.check_now(id) FROM demper.product WHERE $wake_set; END \$\$;");
my $calls_s = time - $t_calls;
my $wakes_uncommitted = demper_stats($node)->{wake_requests} - $wakes_before;
my $cpu_uncommitted = cpu_ms($pid) - $cpu_before;
diag(sprintf('part 9: 20,000 check_now() calls took %.2f s; meanwhile %d wakes, %.0f ms of the worker\'s CPU',
	$calls_s, $wakes_uncommitted, $cpu_uncommitted));
is($wakes_uncommitted, 0, 'part 9: no wake before the commit');
my $started_before = demper_stats($node)->{checks_started};
my $t_commit = time;
$caller->query_safe('COMMIT');
$caller->quit;
ok(poll_until(sub { demper_stats($node)->{wake_requests} - $wakes_before >= 1 }, 10), 'part 9: the commit wakes the workers');
ok(poll_until(sub { demper_stats($node)->{checks_started} > $started_before }, 10),
	'part 9: the worker starts checking the products');
diag(sprintf('part 9: first checks started within %.2f s of the commit', time - $t_commit));
ok(poll_until(sub { count_where("$wake_set AND last_check_time IS NULL") == 0 }, 180), 'part 9: all 20,000 products are checked');
my $wakes = demper_stats($node)->{wake_requests} - $wakes_before;
is($wakes, 1, 'part 9: one transaction, one wake');
reliability('one transaction calling check_now() for 20,000 products', 20000, $wakes_uncommitted + abs($wakes - 1),
	sprintf('%d wakes before the commit, %d after; worker CPU while uncommitted %.0f ms', $wakes_uncommitted, $wakes,
		$cpu_uncommitted));
$node->stop;

# ---------------------------------------------------------------------------------------------
# 10. demper.workers above what max_worker_processes admits. Before issue 16 each worker was
#     registered at server start and took 1/demper.workers of the rate however many started:
#     with 6 configured and 2 started, the marketplace saw a third of the rate. Now the launcher
#     starts them, says once how many run, and they share the rate by that number.
my $rps = 60;
my $few = demper_node('few_slots', $mock,
	max_worker_processes => 4,
	max_parallel_workers_per_gather => 0,
	'demper.workers' => 6,
	'demper.requests_per_second' => $rps);
my ($running, $stable_since, $last) = (0, time, -1);
ok(poll_until(sub {
		$running = $few->safe_psql('postgres',
			"SELECT pg_stat_clear_snapshot(); SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'demper worker'") =~ s/\D//gr;
		($stable_since, $last) = (time, $running) if $running != $last;
		return $running > 0 && time - $stable_since >= 3;
	}, 60), 'part 10: the number of running workers settles');
diag("part 10: $running of 6 demper workers run (max_worker_processes = 4)");
cmp_ok($running, '<', 6, 'part 10: fewer workers run than configured');
ok(poll_until(sub { server_log_count($few, qr/$running of the 6 demper workers run: no free background worker slot/) == 1 }, 30),
	'part 10: the launcher says once how many run');
my @egress;
ok(poll_until(sub {
		@egress = grep { $_->{kind} eq 'egress' } http_status($few);
		return @egress == $running;
	}, 30), 'part 10: each running worker shows its egress');
my @wrong = grep { abs($_->{effective_rate} - $rps / $running) > 1e-6 } @egress;
diag(sprintf('part 10: egress rates %s (configured %d req/s)', join(', ', map { $_->{effective_rate} } @egress), $rps));
is(scalar(@wrong), 0, "part 10: each of the $running workers sends $rps / $running req/s (not $rps / 6)");
reliability('demper.workers = 6 with room for fewer (max_worker_processes = 4)', 1, scalar(@wrong),
	sprintf('%d workers run, each at %.1f req/s of %d', $running, $egress[0]{effective_rate} // -1, $rps));
$few->stop;
$mock->stop;
diag(sprintf('019_never_stuck took %.0f s', time - $t_start));
done_testing();
