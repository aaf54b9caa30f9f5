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

$node->stop;
$mock->stop;
done_testing();
