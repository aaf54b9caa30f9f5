# Safety: hosts outside demper.allowed_hosts are never contacted (nor reached by a redirect), nor
# allowed hosts at a loopback address unless demper.allow_private_addresses is on;
# hostile answers never change a price; dry_run changes nothing; a user's change made while a check
# is in flight is not overwritten; an inactive store's products are not fetched; a product deleted
# while in flight does not disturb the others.
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
my $port = $mock->port;

sub rows
{
	my ($node, $sql) = @_;
	return map { [split /\|/, $_, -1] } grep { length } split /\n/, $node->safe_psql('postgres', $sql);
}

# ---------------------------------------------------------------------------------------------
# allowed_hosts: the URL names localhost, only 127.0.0.1 is allowed.
{
	my $node = demper_node('hosts', $mock,
		'demper.offers_url' => "'http://localhost:$port/yml/offer-view/offers/{product_code}'",
		'demper.allowed_hosts' => "'127.0.0.1'");
	$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shop A', '$own')");
	my @p = map { { code => $_, price => 5000, min => 100 } } 610001 .. 610005;
	$mock->set_offers($_->{code}, [['M1', 3000]]) for @p;
	insert_products($node, @p);
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE last_error_class IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL"),
		'allowed_hosts: every product recorded a failed check');
	my @r = rows($node, "SELECT product_code, price, last_error_class, last_reason, last_error FROM demper.product ORDER BY id");
	is(scalar(grep { $_->[2] eq 'refused_host' && $_->[3] eq 'check_failed' } @r), 5,
		"allowed_hosts: every product failed with last_error_class 'refused_host'");
	diag("allowed_hosts: last_error = '$r[0][4]'");
	is(scalar(grep { $_->[1] != 5000 } @r), 0, 'allowed_hosts: no price changed');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM demper.price_history'), '0',
		'allowed_hosts: no history row');
	is($mock->stats->{offer_requests}, 0, 'allowed_hosts: the mock saw zero offer requests');
	cmp_ok(demper_stats($node)->{failed_refused_host}, '>=', 5, 'allowed_hosts: failed_refused_host counts them');
	$node->stop;
}

# ---------------------------------------------------------------------------------------------
# Private addresses: localhost is allowed by name, but it resolves to the loopback interface, so
# with demper.allow_private_addresses off no connection is opened; a reload that turns it on lets
# the same products through.
{
	my $node = demper_node('private', $mock,
		'demper.offers_url' => "'http://localhost:$port/yml/offer-view/offers/{product_code}'",
		'demper.allowed_hosts' => "'localhost'",
		'demper.allow_private_addresses' => 'off');
	$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shop A', '$own')");
	my @p = map { { code => $_, price => 5000, min => 100 } } 615001 .. 615003;
	$mock->set_offers($_->{code}, [['M1', 3000]]) for @p;
	my $requests_before = $mock->stats->{offer_requests};
	insert_products($node, @p);
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE last_error_class IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL"),
		'private addresses: every product recorded a failed check');
	my @r = rows($node, "SELECT price, last_error_class, last_error FROM demper.product ORDER BY id");
	is(scalar(grep { $_->[1] eq 'refused_host' && $_->[2] =~ /localhost resolves to .*loopback/ } @r), 3,
		"private addresses: every product failed as 'refused_host', naming the loopback address");
	diag("private addresses: last_error = '$r[0][2]'");
	is(scalar(grep { $_->[0] != 5000 } @r), 0, 'private addresses: no price changed');
	is($mock->stats->{offer_requests} - $requests_before, 0, 'private addresses: the mock saw zero offer requests');

	my $expected = expected_price(price => 5000, min_price => 100, max_price => undef, step => 1,
		own => $own, offers => [['M1', 3000]]);
	$node->append_conf('postgresql.conf', "demper.allow_private_addresses = on\n");
	$node->reload;
	$node->safe_psql('postgres', "SELECT demper.check_now(id) FROM demper.product");
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM demper.product WHERE price = $expected AND last_error_class IS NULL"),
		'private addresses: after the reload that allows them, every product was repriced');
	$node->stop;
}

# ---------------------------------------------------------------------------------------------
# dry_run: decisions are recorded, nothing changes.
{
	my $node = demper_node('dry', $mock, 'demper.dry_run' => 'on');
	$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shop A', '$own')");
	my $offers = [['M1', 3000], [$own, 2000]];
	$mock->set_offers(620001, $offers);
	my $expected = expected_price(price => 5000, min_price => 100, max_price => undef, step => 1,
		own => $own, offers => $offers);
	insert_products($node, { code => 620001, price => 5000, min => 100 });
	ok($node->poll_query_until('postgres',
		"SELECT last_check_time IS NOT NULL AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL FROM demper.product WHERE product_code = '620001'"),
		'dry_run: the product was checked');
	is($node->safe_psql('postgres',
		"SELECT price, last_reason, last_decided_price FROM demper.product WHERE product_code = '620001'"),
		"5000|dry_run|$expected",
		"dry_run: last_reason 'dry_run', last_decided_price = the rule's price ($expected), price unchanged");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM demper.price_history'), '0',
		'dry_run: no history row');
	is(demper_stats($node)->{price_changes}, 0, 'dry_run: no price change counted');
	$node->stop;
}

# ---------------------------------------------------------------------------------------------
# The main node: hostile answers, a refused redirect, an inactive store, a user's change in
# flight, a deletion in flight.
my $node = demper_node('safety', $mock);
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shop A', '$own')");
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id, active) VALUES ('Closed', '30099999', false)");

my %hostile = (
	630001 => { mode => 'truncated' },
	630002 => { mode => 'garbage' },
	630003 => { mode => 'html' },
	630004 => { mode => 'body', body => '{"offers":[{"merchantId":"M1","price":"100"}]}' },
	630005 => { mode => 'body', body => '{"offers":[{"merchantId":"M1","price":1e308}]}' },
	630006 => { mode => 'body', body => '{"offers":[{"merchantId":"M1","price":-5}]}' },
	630007 => { mode => 'status', status => 500 },
	630008 => { mode => 'status', status => 403 },
	630009 => { mode => 'redirect', location => 'http://169.254.169.254/latest/meta-data/' },
);
my %label = (630001 => 'truncated', 630002 => 'garbage', 630003 => 'html',
	630004 => 'price as string', 630005 => 'price 1e308', 630006 => 'price -5',
	630007 => 'status 500', 630008 => 'status 403', 630009 => 'redirect to 169.254.169.254');
for my $code (sort keys %hostile)
{
	$mock->set_offers($code, [['M1', 3000]]);
	$mock->fault(product => "$code", %{ $hostile{$code} });
}
$mock->set_offers(630100, [['M1', 3000]]);    # healthy
$mock->set_offers($_, [['M1', 3000]]) for 630201, 630202;    # inactive store
my $t0 = time;
insert_products($node,
	(map { { code => $_, price => 5000, min => 100 } } sort keys %hostile),
	{ code => 630100, price => 5000, min => 100 },
	(map { { store => 2, code => $_, price => 5000, min => 100 } } 630201, 630202));

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE store_id = 1 AND (last_check_time IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL)"),
	'hostile: every product of the active store was checked: nothing hangs');
diag(sprintf('hostile answers, redirect and the healthy product all checked in %.2f s', time - $t0));

my %r = map { $_->[0] => $_ } rows($node,
	"SELECT product_code, price, coalesce(last_error_class, ''), coalesce(last_reason, ''), coalesce(last_error, '') FROM demper.product WHERE store_id = 1");
for my $code (sort keys %hostile)
{
	my ($c, $price, $class, $reason, $error) = @{ $r{$code} };
	diag("hostile $label{$code}: last_error_class '$class', last_error '$error', price $price");
	is($price, 5000, "hostile $label{$code}: price unchanged");
	ok($class ne '' && $class ne 'none', "hostile $label{$code}: a failure class is recorded");
	is($reason, 'check_failed', "hostile $label{$code}: last_reason 'check_failed'");
}
like($r{630009}[2], qr/^(refused_host|bad_body)$/, 'redirect to a host not allowed: refused_host (or bad_body)');
is($r{630100}[1], 2999, 'the healthy product of the same run is repriced');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE p.product_code <> '630100'"),
	'0', 'hostile: no history row but the healthy product\'s');

# Inactive store.
ok($node->poll_query_until('postgres',
	"SELECT bool_and(last_reason = 'store_inactive' AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL) FROM demper.product WHERE store_id = 2"),
	"inactive store: its products record last_reason 'store_inactive'");
is($node->safe_psql('postgres', 'SELECT string_agg(price::text, \',\') FROM demper.product WHERE store_id = 2'),
	'5000,5000', 'inactive store: prices unchanged');
is(mock_requests_for($mock, 630201) + mock_requests_for($mock, 630202), 0,
	'inactive store: the mock saw no request for its products');

# A user changes price and floor while the check is in flight; another product is deleted while
# its check is in flight.
my $pid = wait_for_worker($node);
$mock->set_offers(640001, [['M1', 3000]]);
$mock->set_offers(640002, [['M1', 3000]]);
$mock->fault(product => '640001', mode => 'latency', latency_ms => 3000);
$mock->fault(product => '640002', mode => 'latency', latency_ms => 3000);
insert_products($node, { code => 640001, price => 5000, min => 100 }, { code => 640002, price => 5000, min => 100 });
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM demper.product WHERE product_code IN ('640001', '640002') AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) > now()"),
	'in flight: both products are claimed');
ok(poll_until(sub { demper_stats($node)->{in_flight} >= 2 }, 30), 'in flight: both requests are under way');
$node->safe_psql('postgres', "UPDATE demper.product SET price = 4000, min_price = 3500 WHERE product_code = '640001'");
$node->safe_psql('postgres', "DELETE FROM demper.product WHERE product_code = '640002'");
$mock->fault(product => '640001', mode => 'none');
my $new_expected = expected_price(price => 4000, min_price => 3500, max_price => undef, step => 1,
	own => $own, offers => [['M1', 3000]]);
ok( $node->poll_query_until('postgres',
		"SELECT (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL AND last_check_time IS NOT NULL AND last_reason <> 'inputs_changed' FROM demper.product WHERE product_code = '640001'"),
	'user change in flight: the product is checked (and rechecked)');
my ($price, $min, $reason, $decided) = split /\|/, $node->safe_psql('postgres',
	"SELECT price, min_price, last_reason, last_decided_price FROM demper.product WHERE product_code = '640001'");
diag("user change in flight: final price $price, min_price $min, last_reason $reason, last_decided_price $decided");
is($price, $new_expected, "user change in flight: the final price is the rule applied to the user's new values ($new_expected), not 2999");
cmp_ok($price, '>=', 3500, "user change in flight: the price respects the user's new floor");
my @h = rows($node,
	"SELECT h.old_price, h.new_price FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE p.product_code = '640001'");
is(scalar(grep { $_->[0] == 5000 } @h), 0, 'user change in flight: no history row from the stale price 5000');
cmp_ok(demper_stats($node)->{decisions_discarded}, '>=', 1, 'user change in flight: the stale decision was discarded');
cmp_ok(mock_requests_for($mock, 640001), '>=', 2, 'user change in flight: the product was fetched again');

# The deleted product's answer comes back and is applied to nothing; the worker goes on.
ok(poll_until(sub { my $s = demper_stats($node); $s->{in_flight} == 0 && $s->{queued} == 0 }, 30),
	'deleted in flight: its request finished');
$mock->set_offers($_, [['M1', 3000]]) for 640101 .. 640103;
insert_products($node, map { { code => $_, price => 5000, min => 100 } } 640101 .. 640103);
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 3 FROM demper.product WHERE product_code IN ('640101', '640102', '640103') AND price = 2999 AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL"),
	'deleted in flight: products added afterwards are still checked and repriced');
is(wait_for_worker($node), $pid, 'deleted in flight: the worker did not restart');
my $log = slurp_file($node->logfile);
unlike($log, qr/demper worker could not update the catalogue|demper worker stopped/,
	'no catalogue error in the worker during the whole run');

$node->stop;
$mock->stop;
done_testing();
