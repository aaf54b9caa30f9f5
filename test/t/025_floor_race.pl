# A floor raised while a check is in flight: the worker decides a product's price outside any
# transaction, after its offers request came back, and writes it with the apply (kApplySql in
# src/pg/catalog_checks.cpp). A user who raises min_price between the claim and the apply must never get a
# price below the new floor: not in the product, not in price_history, not in the outbox nor at the
# marketplace; the product is checked again at once and then decides against the new floor.
#
# Which guard of the apply fires: the decision carries what its check saw (seen_min, seen_version,
# ...), and DEMPER_SAME_INPUTS drops it when min_price differs from seen_min or inputs_version moved
# (every edit of min_price, cost_price or min_margin_percent bumps it: the product_validate_update
# trigger). That CASE branch comes first, so a floor raised mid-check ends 'inputs_changed' and
# due again now. DEMPER_ABOVE_FLOOR ('below_floor_refused') is reached only when the inputs are
# unchanged, that is when the rule itself decided below the floor it saw, which decide_price never
# does (it clamps to the floor after every step): no edit of a user can reach it, and it does not
# know the cost floor. So this test expects 'inputs_changed' everywhere, and a floor rewritten with
# the value the check saw is no change at all (the decision stands).
#
# The mock holds each product's offers request until the test releases it (POST /_mock/hold,
# /_mock/release): the floor is raised while the request is certainly in flight, and the release
# keeps holding the next request of each product, so the outcome of the first check can be read
# before the second check overwrites it. No step waits on a timer; every wait polls for state.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use JSON::PP ();
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time;
my $mock = start_mock();
$mock->post('/_mock/push_limits', { push_limit_rps => 100000 });
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $key_file = write_key_file("$tmp/demper.key");
my $node = demper_node('floor_race', $mock,
	'demper.http_timeout' => "'120s'",    # a held request must outlive a slow test step
	'demper.lease_time' => "'300s'",      # and so must its lease
	'demper.credentials_key_file' => "'$key_file'",
	'demper.push_url' => "'http://127.0.0.1:" . $mock->port . "/pricefeed/upload/merchant/process'");

sub psql { return $node->safe_psql('postgres', $_[0]) }

my $wait_s = 120;    # generous: a busy 2-core machine
my ($merchant, $approver) = ('30025001', '30025002');
my $store = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Floor race', '$merchant') RETURNING id");
store_credentials($node, $mock, $store, $merchant, 'S' . int(rand(1e9)), 'I' . int(rand(1e9)));
my $approval_store = psql("INSERT INTO demper.store (name, merchant_id, approval_mode)
                           VALUES ('Floor race, approval', '$approver', true) RETURNING id");

# Every product is priced 5000 with a floor of 1000, and one competitor at 4001: the check that is
# held decides 4000 (undercut by the step, 1). Each case then changes the floor while that check is
# in flight; `floor` is the floor the product has afterwards (min_price, or the cost floor:
# cost_price * (1 + min_margin_percent / 100)); `final` what the next check must decide from it.
my ($price, $min, $competitor) = (5000, 1000, 4001);
my $decided = $competitor - 1;
my @cases = (
	{ code => 2501, name => 'floor raised above the current price',
	  edit => 'min_price = 6000', floor => 6000 },
	{ code => 2502, name => 'floor raised between the decided and the current price',
	  edit => 'min_price = 4500', floor => 4500 },
	{ code => 2503, name => 'floor raised to exactly the decided price',
	  edit => 'min_price = 4000', floor => 4000 },
	{ code => 2504, name => 'floor raised, then put back to the value the check saw',
	  edit => 'min_price = 6000', then => 'min_price = 1000', floor => 1000 },
	{ code => 2505, name => 'cost floor raised (cost_price and min_margin_percent, other columns)',
	  edit => 'cost_price = 4000, min_margin_percent = 12.5', floor => 4500 },
	{ code => 2506, name => 'floor rewritten with the value the check saw (no change)',
	  edit => "min_price = $min", floor => $min, stands => 1 },
	{ code => 2507, name => 'floor raised between the decided and the current price, store in approval mode',
	  edit => 'min_price = 4500', floor => 4500, approval => 1 },
);
for my $c (@cases)
{
	$c->{final} = $decided > $c->{floor} ? $decided : $c->{floor};
	$c->{sku} = "sku-$c->{code}";
	$c->{merchant} = $c->{approval} ? $approver : $merchant;
	$mock->set_offers($c->{code}, [ [ 'C1', $competitor ], [ $c->{merchant}, $price ] ]);
	$mock->post('/_mock/hold', { product => "$c->{code}" });
}
my @dropped = grep { !$_->{stands} } @cases;
my $codes = join(',', map { "'$_->{code}'" } @cases);

wait_for_worker($node);
my $stats0 = demper_stats($node);
insert_products($node, map { { code => $_->{code}, price => $price, min => $min,
	store => $_->{approval} ? $approval_store : $store } } @cases);
$_->{id} = psql("SELECT id FROM demper.product WHERE product_code = '$_->{code}'") for @cases;

# product_row returns the columns the assertions read, as a hash.
sub product_row
{
	my ($c) = @_;
	my ($p, $reason, $decided_price, $in_check, $checked) = split /\|/, psql(
		"SELECT price, last_reason, last_decided_price, demper.in_check(id), last_check_time IS NOT NULL
		   FROM demper.product WHERE id = $c->{id}");
	return { price => $p, reason => $reason // '', decided => $decided_price, in_check => $in_check,
		checked => $checked };
}

sub count_of { return psql($_[0]) + 0 }

# 1. Every product's check is in flight: its offers request is held at the marketplace, and the
#    product is leased (in_check).
ok(poll_until(sub { $mock->stats->{offers_held} == @cases }, $wait_s),
	'the offers request of every product is held at the marketplace');
ok(poll_until(sub { count_of("SELECT count(*) FROM demper.product WHERE product_code IN ($codes) AND demper.in_check(id)") == @cases }, $wait_s),
	'every product is in check');
diag('requests in flight (demper_stats): ' . demper_stats($node)->{in_flight});

# 2. The user edits the floors while the checks are in flight, then the marketplace answers: each
#    request is taken now, from the book as it is (still 4001), and each product's next request is
#    held in turn.
for my $c (@cases)
{
	psql("UPDATE demper.product SET $c->{edit} WHERE id = $c->{id}");
	psql("UPDATE demper.product SET $c->{then} WHERE id = $c->{id}") if $c->{then};
}
my $released = $mock->post('/_mock/release', { keep_holding => JSON::PP::true })->{released};
is($released, scalar @cases, 'every held request is released');

# 3. The outcome of the check that was in flight, read while the next check is held: a dropped
#    decision writes nothing and the product is checked again at once (its interval is an hour).
my $t_release = time;
my $again = poll_until(sub { $mock->stats->{offers_held} == @dropped }, $wait_s);
ok($again, 'each product whose floor changed is checked again at once: its next offers request is in flight');
my $again_s = time - $t_release;
diag(sprintf('the next checks were in flight %.2f s after the release (demper.check_interval: 1 h)', $again_s)) if $again;
my ($stands) = grep { $_->{stands} } @cases;
ok(poll_until(sub { my $r = product_row($stands); $r->{checked} eq 't' && $r->{in_check} eq 'f' }, $wait_s),
	"$stands->{name}: the check's outcome is written");
for my $c (@cases)
{
	my $r = product_row($c);
	my $name = $c->{name};
	$c->{first} = $r->{reason};
	if ($c->{stands})
	{
		is($r->{price}, $decided, "$name: the decision stands, $decided written");
		is($r->{reason}, 'undercut', "$name: last_reason undercut");
		next;
	}
	is($r->{reason}, 'inputs_changed', "$name: the decision is dropped (last_reason inputs_changed)");
	is($r->{price}, $price, "$name: the price is still $price");
	is($r->{decided}, $decided, "$name: the dropped decision ($decided) is what the check had decided");
	is($r->{in_check}, 't', "$name: the product is in check again");
	is(count_of("SELECT count(*) FROM demper.price_history WHERE product_id = $c->{id}"), 0,
		"$name: no price_history row");
	is(count_of("SELECT count(*) FROM demper.outbox WHERE product_id = $c->{id}"), 0, "$name: nothing in the outbox");
	is(count_of("SELECT count(*) FROM demper.proposal WHERE product_id = $c->{id}"), 0, "$name: no proposal")
	  if $c->{approval};
}
is(demper_stats($node)->{decisions_discarded} - $stats0->{decisions_discarded}, scalar @dropped,
	'demper_stats counts each dropped decision once');

# 4. The next checks are answered (the hold ends): each decides against the floor as it is now.
$mock->post('/_mock/release', {});
ok(poll_until(sub {
		count_of("SELECT count(*) FROM demper.product WHERE product_code IN ($codes)
		           AND last_reason <> 'inputs_changed' AND NOT demper.in_check(id)") == @cases
	}, $wait_s), 'every product has the outcome of its next check');
for my $c (@cases)
{
	my $r = product_row($c);
	my $name = $c->{name};
	cmp_ok($r->{decided}, '>=', $c->{floor}, "$name: the next check decides at or above the floor $c->{floor}");
	is($r->{decided}, $c->{final}, "$name: it decides $c->{final}");
	if ($c->{approval})
	{
		is($r->{price}, $price, "$name: the price waits for approval");
		is($r->{reason}, 'awaiting_approval', "$name: last_reason awaiting_approval");
		is(psql("SELECT string_agg(new_price::text, ',') FROM demper.proposal WHERE product_id = $c->{id} AND status = 'pending'"),
			$c->{final}, "$name: one pending proposal, at $c->{final}");
		is(count_of("SELECT count(*) FROM demper.proposal WHERE product_id = $c->{id} AND new_price < $c->{floor}"), 0,
			"$name: no proposal below the floor, ever");
		my $proposal = psql("SELECT id FROM demper.proposal WHERE product_id = $c->{id} AND status = 'pending'");
		is($proposal ne '' ? psql("SELECT demper.approve($proposal)") : undef, $c->{final}, "$name: the proposal is approved");
	}
	else
	{
		is($r->{price}, $c->{final}, "$name: the price is $c->{final}");
		is($r->{reason}, $c->{final} == $c->{floor} ? 'at_floor' : 'undercut',
			"$name: last_reason " . ($c->{final} == $c->{floor} ? 'at_floor' : 'undercut'));
	}
	is(psql("SELECT string_agg(old_price || '->' || new_price, ',' ORDER BY id) FROM demper.price_history WHERE product_id = $c->{id}"),
		"$price->$c->{final}", "$name: one price_history row, $price->$c->{final}");
	is(count_of("SELECT count(*) FROM demper.outbox WHERE product_id = $c->{id} AND price < $c->{floor}"), 0,
		"$name: no outbox row below the floor");
}
my @initial = map { $_->{id} => $price } @cases;
my @problems = history_problems($node, "product_code IN ($codes)", {@initial});
is(scalar @problems, 0, 'the price histories are consistent') or diag(join("\n", @problems));

# 5. The marketplace gets the new prices, and never one below a floor.
my @pushed = grep { !$_->{approval} } @cases;
sub last_push
{
	my ($c) = @_;
	my @p = grep { $_->{sku} eq $c->{sku} } mock_pushes($mock, $merchant);
	return @p ? $p[-1]{cityPrices}[0]{value} : undef;
}
ok(poll_until(sub { !grep { ($_->{final} // 0) != (last_push($_) // 0) } @pushed }, $wait_s),
	'the marketplace has each new price');
for my $c (@pushed)
{
	my @below = grep { $_->{sku} eq $c->{sku} && $_->{cityPrices}[0]{value} < $c->{floor} } mock_pushes($mock, $merchant);
	is(scalar @below, 0, "$c->{name}: no push below the floor");
}

for my $c (@cases)
{
	my $r = product_row($c);
	my $below = count_of("SELECT count(*) FROM demper.price_history WHERE product_id = $c->{id} AND new_price < $c->{floor}")
	  + count_of("SELECT count(*) FROM demper.outbox WHERE product_id = $c->{id} AND price < $c->{floor}")
	  + ($r->{price} < $c->{floor} ? 1 : 0)
	  + count_of("SELECT count(*) FROM demper.proposal WHERE product_id = $c->{id} AND new_price < $c->{floor}")
	  + scalar(grep { $_->{sku} eq $c->{sku} && $_->{cityPrices}[0]{value} < $c->{floor} } mock_pushes($mock, $c->{merchant}));
	my $next = $c->{stands} ? '' : $again ? sprintf(', checked again %.1f s after the release', $again_s) : ', not checked again at once';
	reliability("$c->{name} while the offers request was in flight", 1, $below,
		sprintf('the check in flight: %s%s; price now %d (floor %d)', $c->{first}, $next, $r->{price}, $c->{floor}));
}

$mock->stop;
$node->stop;
diag(sprintf('025_floor_race: %.1f s', time - $t_start));
done_testing();
