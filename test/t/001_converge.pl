# Prices converge to the default rule's result, computed again here independently; the floor
# holds; a failing product changes nothing while the others proceed; history and stats agree.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $own = '30012345';
my $mock = start_mock();

# Hand-made cases first, then random ones from a fixed seed.
my @cases = (
	{ sku => 'own-cheapest', price => 950,  min => 500, max => undef, step => 1,  offers => [[$own, 900], ['M1', 1000]] },
	{ sku => 'none-to-max',  price => 1000, min => 500, max => 2000,  step => 1,  offers => [[$own, 1000]] },
	{ sku => 'none-hold',    price => 1000, min => 500, max => undef, step => 1,  offers => [] },
	{ sku => 'floor',        price => 800,  min => 500, max => undef, step => 1,  offers => [['M1', 400], ['M2', 450]] },
	{ sku => 'ceiling',      price => 1000, min => 500, max => 3000,  step => 1,  offers => [['M1', 5000]] },
	{ sku => 'raise-back',   price => 1000, min => 500, max => undef, step => 1,  offers => [['M1', 1500], ['M2', 1600]] },
	{ sku => 'tie',          price => 1200, min => 500, max => undef, step => 1,  offers => [['M1', 1000], ['M2', 1000]] },
	{ sku => 'step-10',      price => 1200, min => 500, max => undef, step => 10, offers => [['M1', 1000]] },
	{ sku => 'unchanged',    price => 999,  min => 500, max => undef, step => 1,  offers => [['M1', 1000]] },
	{ sku => 'min-10',       price => 50,   min => 10,  max => undef, step => 5,  offers => [['M1', 12]] },
);
srand(20261122);
for my $i (1 .. 40)
{
	my $min = 100 + int(rand(5000));
	my $max = rand() < 0.5 ? undef : $min + int(rand(5000));
	my @offers = map { ['M' . int(rand(6)), 50 + int(rand(12000))] } 1 .. int(rand(6));
	push @offers, [$own, 50 + int(rand(12000))] if rand() < 0.5;
	my $price = $min + int(rand(3000));
	$price = $max if defined $max && $price > $max;
	push @cases, { sku => "random-$i", price => $price, min => $min, max => $max,
		step => 1 + int(rand(20)), offers => \@offers };
}
my $code = 7000000;
for my $c (@cases)
{
	$c->{code} = $code++;
	$c->{expected} = expected_price(price => $c->{price}, min_price => $c->{min},
		max_price => $c->{max}, step => $c->{step}, own => $own, offers => $c->{offers});
	$mock->set_offers($c->{code}, $c->{offers});
}
# One product whose every answer is an HTML anti-bot page.
my $failing = { sku => 'failing', code => $code++, price => 5000, min => 100, max => undef, step => 1 };
$mock->set_offers($failing->{code}, [['M1', 1000]]);
$mock->fault(product => "$failing->{code}", mode => 'html');

my $node = demper_node('converge', $mock);
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shop A', '$own')");
my @values = map {
	sprintf("(1, '%s', '%s', %d, %d, %s, %d, now())", $_->{code}, $_->{sku}, $_->{price}, $_->{min},
		defined $_->{max} ? $_->{max} : 'NULL', $_->{step})
} (@cases, $failing);
$node->safe_psql('postgres',
	"INSERT INTO demper.product (store_id, product_code, sku, price, min_price, max_price, step, next_check_at) VALUES "
	  . join(',', @values));
$node->safe_psql('postgres', 'SELECT demper.wake_workers()');

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE last_check_time IS NULL"),
	'every product was checked');
ok( $node->poll_query_until('postgres',
		"SELECT check_failures >= 1 FROM demper.product WHERE sku = 'failing'"),
	'the failing product recorded its failure');

my %got = map { split /\|/ } split /\n/,
  $node->safe_psql('postgres', "SELECT sku, price FROM demper.product");
my @wrong = grep { $got{ $_->{sku} } != $_->{expected} } @cases;
is(scalar(@wrong), 0, 'every price equals the independently computed rule')
  or diag(join("\n", map { "$_->{sku}: got $got{$_->{sku}}, expected $_->{expected}" } @wrong));

my $floor_ok = $node->safe_psql('postgres',
	"SELECT bool_and(price >= greatest(min_price, 10)) FROM demper.product");
is($floor_ok, 't', 'no price is below its floor');
is($got{floor}, 500, 'undercutting that would cross the floor stops at the floor');
is($got{'raise-back'}, 1499, 'the price rises back when competitors raise theirs');
is($got{ceiling}, 3000, 'raising stops at the ceiling');

# The failing product: price untouched, error recorded, no history.
my $f = $node->safe_psql('postgres',
	"SELECT price, last_error_class, last_reason FROM demper.product WHERE sku = 'failing'");
is($f, '5000|bad_body|check_failed', 'an HTML answer is a failed check and changes nothing');

# History: exactly one row per changed product, from its old price to its new one.
my $changed = grep { $_->{expected} != $_->{price} } @cases;
my %initial = map { $_->{sku} => $_->{price} } @cases;
my $history = $node->safe_psql('postgres',
	"SELECT p.sku, h.old_price, h.new_price FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id ORDER BY p.sku");
my @rows = map { [split /\|/] } grep { length } split /\n/, $history;
is(scalar(@rows), $changed, 'one history row per price change');
my @bad_rows = grep { $_->[1] != $initial{ $_->[0] } || $_->[2] != $got{ $_->[0] } } @rows;
is(scalar(@bad_rows), 0, 'every history row goes from the old price to the current one');

# Stats agree with what happened.
my $stats = $node->safe_psql('postgres',
	"SELECT checks_ok, checks_failed, price_changes, floor_hits, failed_bad_body FROM demper.demper_stats()");
my ($checks_ok, $checks_failed, $price_changes, $floor_hits, $bad_body) = split /\|/, $stats;
cmp_ok($checks_ok, '>=', scalar(@cases), 'checks_ok counts every successful check');
cmp_ok($checks_failed, '>=', 1, 'checks_failed counts the failing product');
is($price_changes, $changed, 'price_changes equals the history rows');
cmp_ok($floor_hits, '>=', 1, 'floor hits are counted');
cmp_ok($bad_body, '>=', 1, 'the failure is counted by its class');

# A product whose competitor moves is repriced again by check_now.
$mock->set_offers($cases[5]{code}, [['M1', 1300]]);
$node->safe_psql('postgres', "SELECT demper.check_now(id) FROM demper.product WHERE sku = 'raise-back'");
ok($node->poll_query_until('postgres', "SELECT price = 1299 FROM demper.product WHERE sku = 'raise-back'"),
	'check_now reprices a product at once after its competitor moved');

$node->stop;
$mock->stop;
done_testing();
