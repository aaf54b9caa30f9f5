# Signal latency with 1,000 requests in flight: against a mock that answers only after 30 s, the
# worker holds 1,000 requests inside curl; a reload (SIGHUP) takes effect within 2 s and SIGTERM ends
# the worker within 2 s, changing no price and handing every lease back (due at once); the worker
# then restarts and checks everything.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# 1,000 sockets in the worker (and 1,000 connections in the mock) need more than the usual soft
# limit of 1,024 descriptors. Both processes start from this one (the server through pg_ctl), so
# raising our own soft limit (up to the hard limit) is enough.
my ($soft_before, $hard) = fd_limit();
my $soft = raise_fd_limit(8192);
diag("open-file limit of the test process: soft $soft_before -> $soft, hard $hard");
cmp_ok($soft, '>=', 2400, 'the open-file soft limit allows 1,000 requests in flight (>= 2,400 descriptors)');

my $own = '30012345';
my $n_products = 1200;
my $mock = start_mock(synthetic => 1000000);
my $node = demper_node('inflight', $mock,
	'demper.max_inflight' => 1000,
	'demper.max_inflight_per_host' => 1000,
	'demper.requests_per_second' => 1000,
	'demper.burst' => 1000,
	'demper.batch_size' => 1000,
	'demper.http_timeout' => "'60s'",
	'demper.lease_time' => "'5min'");
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shop', '$own')");
my $pid = wait_for_worker($node);
my ($wsoft) = fd_limit($pid);
diag("open-file soft limit of the worker: " . ($wsoft // 'unknown'));

$mock->fault(mode => 'latency', latency_ms => 30000);
my $t_insert = time;
insert_products($node, map { { code => $_, price => 600000, min => 10 } } 1 .. $n_products);

my $max_seen = 0;
my $reached = poll_until(
	sub {
		my $s = demper_stats($node);
		$max_seen = $s->{in_flight} if $s->{in_flight} > $max_seen;
		$s->{in_flight} >= 1000;
	},
	60);
diag(sprintf('in flight: %d reached %.2f s after the insert', $max_seen,
	time - $t_insert));
ok($reached, '1,000 requests are in flight');

# ---------------------------------------------------------------------------------------------
# SIGHUP: the new rate is applied (the egress's rate in http_status(), published every 0.25 s).
my ($eg) = grep { $_->{kind} eq 'egress' } http_status($node);
diag(sprintf('egress %s rate %.2f before the reload', $eg->{name} // '?', $eg->{effective_rate} // -1));
$node->safe_psql('postgres', 'ALTER SYSTEM SET demper.requests_per_second = 7');
my $t_hup = time;
my $db_hup = $node->safe_psql('postgres', 'SELECT extract(epoch FROM clock_timestamp())::float8, pg_reload_conf()');
$db_hup =~ s/\|.*//s;
my ($hup_s, $published_s);
ok( poll_until(
		sub {
			my ($e) = grep { $_->{kind} eq 'egress' } http_status($node);
			return 0 unless $e && abs($e->{effective_rate} - 7) < 1e-6;
			$hup_s = time - $t_hup;
			$published_s = $node->safe_psql('postgres',
				"SELECT extract(epoch FROM max(published_at))::float8 - $db_hup FROM demper.http_status()");
			1;
		},
		30),
	'after pg_reload_conf() http_status() shows the egress at the new rate (7)');
my $in_flight_hup = demper_stats($node)->{in_flight};
diag(sprintf('SIGHUP applied %.3f s after pg_reload_conf() as seen by polling http_status(); the worker published it at most '
	  . '%.3f s after pg_reload_conf() (publishing every 0.25 s); %d requests in flight',
	$hup_s // -1, $published_s // -1, $in_flight_hup));
cmp_ok($hup_s // 999, '<', 2, 'SIGHUP is applied within 2 s with 1,000 requests in flight');
is(wait_for_worker($node), $pid, 'the reload did not restart the worker');

# ---------------------------------------------------------------------------------------------
# SIGTERM: the worker exits within 2 s, changes no price and hands its leases back.
my $in_flight_term = demper_stats($node)->{in_flight};
my $t_term = time;
kill 'TERM', $pid;
my $exit_s = wait_for_exit($pid, 60);
diag(sprintf('SIGTERM: worker gone %.3f s after the signal with %d requests in flight', $exit_s // -1, $in_flight_term));
cmp_ok($in_flight_term, '>=', 900, 'requests were still in flight when SIGTERM was sent (>= 900)');
ok(defined $exit_s, 'the worker exited after SIGTERM');
cmp_ok($exit_s // 999, '<', 2, 'the worker exits within 2 s of SIGTERM with 1,000 requests in flight');

# The postmaster restarts the worker after 5 s: keep the new one from claiming until the leases
# have been looked at.
reload_conf($node, 'demper.enabled' => 'off');
my $row = $node->safe_psql('postgres',
	"SELECT count(*) FILTER (WHERE price <> 600000), "
	  . "count(*) FILTER (WHERE last_check_time IS NULL), "
	  . "count(*) FILTER (WHERE last_check_time IS NULL AND ((SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL OR next_check_at > now())), "
	  . "count(*) FILTER (WHERE (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL), "
	  . "(SELECT count(*) FROM demper.price_history), "
	  . "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'demper worker') "
	  . "FROM demper.product");
my ($changed, $unchecked, $not_due, $leased, $history, $workers) = split /\|/, $row;
diag(sprintf('after SIGTERM (%.2f s): %d unchecked, %d unchecked but leased or not due, %d leased, %d prices changed, '
	  . '%d history rows, %d worker(s) running',
	time - $t_term, $unchecked, $not_due, $leased, $changed, $history, $workers));
is($changed, '0', 'SIGTERM changed no price');
is($history, '0', 'SIGTERM wrote no price history');
cmp_ok($unchecked, '>=', 1000, 'the products in flight are still unchecked');
is($not_due, '0', 'every unchecked product is due now with no lease (the worker handed its leases back)');

# ---------------------------------------------------------------------------------------------
# The worker comes back and, with a healthy marketplace, checks everything.
$mock->fault(mode => 'none');
reload_conf($node, 'demper.enabled' => 'on', 'demper.requests_per_second' => 1000);
my $pid2;
ok(poll_until(sub { $pid2 = worker_pid($node); $pid2 =~ s/\D//g; $pid2 ne '' && $pid2 ne $pid }, 60),
	'the worker restarts with a new pid');
diag(sprintf('worker restarted %.2f s after SIGTERM', time - $t_term));
ok( $node->poll_query_until('postgres',
		'SELECT count(*) = 0 FROM demper.product WHERE last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL'),
	'every product is checked after the restart: nothing lost');
diag(sprintf('all %d products checked %.2f s after SIGTERM', $n_products, time - $t_term));

$node->stop;
$mock->stop;
done_testing();
