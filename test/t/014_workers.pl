# Several workers per database (demper.workers = 2) share the due products through SKIP LOCKED:
# every product is fetched exactly once per round, both workers take part, and together they stay
# within the configured request rate.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

my $mock = start_mock(synthetic => 100000);
my $node = demper_node('workers', $mock,
	'demper.workers' => 2,
	'demper.requests_per_second' => 60,
	'demper.burst' => 6,
	'demper.batch_size' => 50);
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shared', 'SH1')");

ok(poll_until(sub {
	$node->safe_psql('postgres',
		"SELECT pg_stat_clear_snapshot(); SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'demper worker'") =~ /^2$/m }, 60),
	'two workers run');

my $start = Time::HiRes::time();
insert_products($node, map { { code => $_, price => 900000, min => 100 } } 1 .. 600);
diag(sprintf('inserted 600 products at %.1f', $start));
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL"),
	'every product was checked');

my %per_product;
$mock->post('/_mock/log/flush', {});
for my $line (split /\n/, slurp_file($mock->{log})) {
	my (undef, undef, $method, $path) = split /\t/, $line;
	next unless defined $path && $path =~ m{/offer-view/offers/(\d+)};
	$per_product{$1}++;
}
my @twice = grep { $per_product{$_} != 1 } keys %per_product;
is(scalar(keys %per_product), 600, 'the mock saw every product');
is(scalar(@twice), 0, 'no product was fetched twice in the round');

my $active = $node->safe_psql('postgres',
	"SELECT count(*) FROM demper.status WHERE state IN ('checking', 'idle')");
is($active, 2, 'both workers report their status');
my @rates = split /\n/, $node->safe_psql('postgres',
	"SELECT effective_rate FROM demper.http_status() WHERE kind = 'egress' ORDER BY name");
diag("egress rates per worker: @rates");
ok(@rates == 2 && !(grep { $_ > 30.0001 } @rates), 'each worker sends at most half of the rate');
my $max_window = max_in_window(1.0, mock_request_times($mock));
diag("max requests in a 1 s window: $max_window");
# The buckets bound admissions to rate + burst (66) per second; arrival at the mock may jitter by
# a request or two.
cmp_ok($max_window, '<=', 68, 'together they stay within rate + burst');

# 2. A rate limit far above what the workers get through: they still share a backlog. A worker
# holds what it is sending plus about a quarter second of its own pace (at least a batch), not
# two seconds of the rate: before, the first worker to wake claimed the whole backlog and the
# other one idled. Each answer takes at least 20 ms and each worker keeps at most 8 requests in
# flight, so a worker gets through at most ~400 products a second and holds at most 8 + 100 (its
# batch: a quarter second of its pace is less); before, it held up to 8 + 100,000 and claimed a
# batch on every turn of its loop.
reload_conf($node,
	'demper.requests_per_second' => 100000,
	'demper.burst' => 100000,
	'demper.batch_size' => 100,
	'demper.max_inflight' => 8,
	'demper.max_inflight_per_host' => 8);
ok(poll_until(sub { $node->safe_psql('postgres', 'SHOW demper.max_inflight') eq '8' }, 30),
	'part 2: the new limits are in force');
$mock->fault(mode => 'latency', latency_ms => 20);
$node->safe_psql('postgres', 'ALTER SYSTEM SET demper.enabled = off; SELECT pg_reload_conf()');
ok(poll_until(sub { $node->safe_psql('postgres', 'SHOW demper.enabled') eq 'off' }, 30), 'part 2: workers paused');
insert_products($node, map { { code => $_, price => 900000, min => 100 } } 10001 .. 13000);
my $part2 = "product_code::bigint BETWEEN 10001 AND 13000";
$node->safe_psql('postgres', "UPDATE demper.product SET next_check_at = now() WHERE $part2");
$node->safe_psql('postgres', 'ALTER SYSTEM SET demper.enabled = on; SELECT pg_reload_conf()');
my ($both_held, $most_held) = (0, 0);
ok(poll_until(sub {
		my @held = split /\n/, $node->safe_psql('postgres',
			'SELECT pg_stat_clear_snapshot(); SELECT current_batch FROM demper.status ORDER BY pid');
		shift @held if @held && $held[0] eq '';
		$both_held = 1 if @held == 2 && $held[0] > 0 && $held[1] > 0;
		$most_held = $_ > $most_held ? $_ : $most_held for @held;
		$node->safe_psql('postgres',
			"SELECT count(*) = 0 FROM demper.product WHERE $part2 AND last_check_time IS NULL") eq 't';
	}, 120), 'part 2: every product of the backlog was checked');
ok($both_held, 'part 2: both workers held products of the backlog at the same time');
diag("part 2: most products one worker held at once: $most_held");
cmp_ok($most_held, '<=', 108, 'part 2: no worker held more than its in-flight limit plus one batch');
$mock->fault(mode => 'none');

$node->stop;
$mock->stop;
done_testing();
