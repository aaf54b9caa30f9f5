# Observability: demper_stats() agrees with what the mock marketplace saw (request counts and
# error classes), latency percentiles are sane against the mock's injected latency, the status and
# per-store views and the Prometheus metrics tell the same story, failures are summarised in the
# log (one line per host per interval), and the worker prunes only old history.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $mock = start_mock();
my $node = demper_node('observe', $mock,
	'demper.log_summary_interval' => "'2s'",
	'demper.requests_per_second' => 200,
	'demper.max_attempts' => 1);
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Watched', 'W1')");

# 60 healthy products, 10 answered with an HTML page, 5 with 404 (final, never retried).
my @healthy = (8000001 .. 8000060);
my @html = (8000101 .. 8000110);
my @missing = (8000201 .. 8000205);
$mock->set_offers($_, [['M1', 1000]]) for (@healthy, @html, @missing);
$mock->fault(product => "$_", mode => 'html') for @html;
$mock->fault(product => "$_", mode => 'status', status => 404) for @missing;
$mock->fault(mode => 'latency', latency_ms => 200);
$node->safe_psql('postgres', 'SELECT demper.demper_stats_reset()');

insert_products($node, map { { code => $_, price => 5000, min => 100 } } (@healthy, @html, @missing));
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE last_check_time IS NULL"),
	'every product was checked once');

# Stop claiming, let everything in flight finish, then compare with the mock's own counts.
$node->safe_psql('postgres', "ALTER SYSTEM SET demper.enabled = off; SELECT pg_reload_conf()");
ok( $node->poll_query_until('postgres',
		"SELECT in_flight = 0 AND queued = 0 FROM demper.demper_stats()"),
	'nothing in flight once disabled');
my $st = demper_stats($node);
my $ms = $mock->stats;
diag("demper http_requests $st->{http_requests}, mock offer_requests $ms->{offer_requests}");
is($st->{http_requests}, $ms->{offer_requests}, 'HTTP requests counted equal the requests the mock received');
is($st->{failed_http_4xx}, $ms->{by_status}{404} // 0, '404 answers counted as http_4xx, one for one');
cmp_ok($st->{failed_bad_body}, '>=', scalar(@html), 'HTML answers counted as bad_body');
is($st->{checks_ok} + $st->{checks_failed}, $st->{http_requests},
	'every request ended as one check outcome (no retries, one page each)');

# Latency: the mock waits 200 ms before every answer.
diag("check latency p50 $st->{check_latency_p50_ms} ms, p95 $st->{check_latency_p95_ms} ms, p99 $st->{check_latency_p99_ms} ms");
cmp_ok($st->{check_latency_p50_ms}, '>=', 100, 'p50 is not below the injected latency bucket');
cmp_ok($st->{check_latency_p50_ms}, '<=', 1000, 'p50 is near the injected 200 ms');
cmp_ok($st->{check_latency_p99_ms}, '>=', $st->{check_latency_p50_ms}, 'p99 is at least p50');
cmp_ok($st->{check_latency_p99_ms}, '<=', 5000, 'p99 is sane');

# Status and per-store views.
my $status = $node->safe_psql('postgres',
	"SELECT pg_stat_clear_snapshot(); SELECT state, database, pid = (SELECT pid FROM pg_stat_activity WHERE backend_type = 'demper worker') FROM demper.status");
like($status, qr/^disabled\|postgres\|t$/m, 'status shows the worker, its database and that it is disabled');
my ($ok, $failed) = split /\|/, $node->safe_psql('postgres',
	"SELECT checks_ok, checks_failed FROM demper.store_stats WHERE merchant_id = 'W1'");
is($ok, $st->{checks_ok}, 'store_stats counts the store\'s successful checks');
is($failed, $st->{checks_failed}, 'store_stats counts the store\'s failed checks');

# Metrics repeat the same numbers in the Prometheus format.
my $metrics = $node->safe_psql('postgres', 'SELECT demper.metrics()');
like($metrics, qr/^demper_checks_ok_total $st->{checks_ok}$/m, 'metrics: checks_ok_total');
like($metrics, qr/^demper_checks_failed_by_class_total\{class="http_4xx"\} $st->{failed_http_4xx}$/m,
	'metrics: failures by class');
like($metrics, qr/^demper_check_latency_seconds_count \d+$/m, 'metrics: latency histogram');

# The log summarises failures per host and interval instead of one line per product.
my $summary = qr/demper: (\d+) requests failed in the last 2 s against 127\.0\.0\.1:\d+ \(([^)]*)\)/;
ok(poll_until(sub { slurp_file($node->logfile) =~ $summary }, 60), 'failures are summarised in the log');
my @worker_lines = grep { /demper worker|demper: / } split /\n/, slurp_file($node->logfile);
my $lines = grep { $_ =~ $summary } @worker_lines;
diag("failure summary lines: $lines");
cmp_ok($lines, '<', scalar(@html) + scalar(@missing), 'fewer summary lines than failing products');
ok(!(grep { /8000101|8000201/ } @worker_lines), 'no worker log line names a failing product');

# Retention: the worker prunes history older than demper.history_retention, and only that.
$node->safe_psql('postgres', q{
	INSERT INTO demper.price_history (product_id, store_id, changed_at, old_price, new_price, reason)
	SELECT p.id, p.store_id, now() - interval '3 hours', 5000, 4999, 'undercut'
	  FROM demper.product p WHERE p.product_code IN ('8000001', '8000002', '8000003');
	INSERT INTO demper.price_history (product_id, store_id, changed_at, old_price, new_price, reason)
	SELECT p.id, p.store_id, now() - interval '10 minutes', 5000, 4999, 'undercut'
	  FROM demper.product p WHERE p.product_code IN ('8000004', '8000005');
});
my $recent_before = $node->safe_psql('postgres',
	"SELECT count(*) FROM demper.price_history WHERE changed_at > now() - interval '1 hour'");
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET demper.history_retention = '1h';
	ALTER SYSTEM SET demper.prune_interval = '1s';
	SELECT pg_reload_conf();
});
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.price_history WHERE changed_at < now() - interval '1 hour'"),
	'the worker pruned history older than the retention');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM demper.price_history WHERE changed_at > now() - interval '1 hour'"),
	$recent_before, 'recent history was kept');

$node->stop;
$mock->stop;
done_testing();
