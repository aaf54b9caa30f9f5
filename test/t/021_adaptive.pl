# The adaptive schedule (issue 17) with a real worker against the mock's simulated market
# (test/mock/README.md, "Simulated market"): the seller's listings come from the market's
# catalogue, the store's merchant id is the market's seller, and demper's pushes go to the mock,
# so the market's competitors (quiet, active, repricer bots) see and answer the seller's prices.
#   1. bounds: check_interval_min / _max globally, per store and per product (the more specific
#      wins); every gap between two checks of a product stays within its bounds plus the slack
#      the worker's own settings allow; none goes unchecked beyond its longest interval;
#      adaptivity: products whose market moves are checked more often than quiet ones; the
#      pressure drops below 1 with budget to spare;
#   2. price wars (every product faces a bot): follow keeps undercutting and explain() names the
#      war, store_stats counts it; hold stops the price from falling; keep_margin leaves the bot
#      out and puts the price back above the bot's;
#   3. a tight budget: the pressure rises above 1, and no 1 s window holds more offers requests
#      than demper.requests_per_second admits;
#   4. off means off: no schedule state for new products, a check every demper.check_interval,
#      pressure 1.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use JSON::PP;
use List::Util qw(max min sum);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $t_start = time;
my $json = JSON::PP->new->canonical;
my $seller = '30021001';    # the market's seller: store A's merchant id
my ($session, $sid) = ('sess-adaptive-1', 'sid-adaptive-1');

# The test's settings. Intervals in seconds.
my %global = (min => 2, max => 8);     # demper.check_interval_min / _max
my $default_s = 5;                     # demper.check_interval: "no information yet"
my $rps = 300;                         # demper.requests_per_second in parts 1, 2 and 4
my $tight_rps = 4.75;                  # in part 3 (burst 1 throughout)
my $scale = 20;                        # market seconds per wall-clock second

my $mock = start_mock(synthetic => 5000);
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $key = write_key_file("$tmp/key");
my $base = $mock->{base};
my $node = demper_node('adaptive', $mock,
	'demper.credentials_key_file' => "'$key'",
	'demper.push_url' => "'$base/pricefeed/upload/merchant/process'",
	'demper.push_rate' => 100,
	'demper.push_verify_delay' => "'1h'",       # the market's seller has no cabinet to read back
	'demper.catalogue_sync_interval' => 0,      # nor one to import
	'demper.requests_per_second' => $rps,
	'demper.burst' => 1,
	'demper.check_interval' => "'${default_s}s'",
	'demper.adaptive_intervals' => 'on',
	'demper.check_interval_min' => "'$global{min}s'",
	'demper.check_interval_max' => "'$global{max}s'");
$mock->post('/_mock/push_limits', { push_limit_rps => 100000 });

sub psql { return $node->safe_psql('postgres', $_[0]) }

sub pressure { return demper_stats($node)->{schedule_pressure} }

# offer_requests returns, per product code, the arrival times of its answered offers requests in
# the mock's log from $since on.
sub offer_requests
{
	my ($since) = @_;
	my %times;
	for my $l (mock_log($mock, $since))
	{
		next unless $l->[2] eq 'POST' && $l->[4] eq '200' && $l->[3] =~ m{/offer-view/offers/(\d+)$};
		push @{ $times{$1} }, $l->[0];
	}
	return \%times;
}

sub gaps { my @t = @_; return map { $t[$_] - $t[ $_ - 1 ] } 1 .. $#t }

# start_market (re)starts the mock's market and returns its catalogue.
sub start_market
{
	my (%mix) = @_;
	$mock->post('/_mock/market', { seed => 4, seller => $seller, time_scale => $scale, %mix });
	return $mock->get('/_mock/market/catalogue')->{products};
}

# insert_listings loads catalogue entries into store $store as the seller's listings (start
# price, floor, ceiling, a pickup point so that pushes go out), first checks spread over
# [$delay_s, $delay_s + $spread_s) from now; returns code => product id.
sub insert_listings
{
	my ($store, $delay_s, $spread_s, @listings) = @_;
	my $rows = $json->encode([ map { { code => $_->{code}, price => $_->{start_price}, floor => $_->{floor},
		ceiling => $_->{ceiling} } } @listings ]);
	psql("INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price, max_price, step,
	                                  availabilities, next_check_at)
	      SELECT $store, c->>'code', (c->>'code') || '_1', 'Market product ' || (c->>'code'), 'Test',
	             (c->>'price')::int8, (c->>'floor')::int8, (c->>'ceiling')::int8, 1,
	             '$DEFAULT_AVAILABILITIES', now() + make_interval(secs => $delay_s + $spread_s * random())
	        FROM jsonb_array_elements('$rows'::jsonb) c");
	return { map { split /\|/ } split /\n/,
		psql("SELECT product_code, id FROM demper.product WHERE store_id = $store AND bot_active") };
}

sub deactivate { psql("UPDATE demper.product SET bot_active = false WHERE store_id IN (@{[ join(',', @_) ]})") }

my $store_a = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Market seller', '$seller') RETURNING id");
store_credentials($node, $mock, $store_a, $seller, $session, $sid);
my $store_b = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Quiet books', '30021002') RETURNING id");
my $store_c = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Big catalogue', '30021003') RETURNING id");

# ---------------------------------------------------------------------------------------------
# 1. Bounds at three levels, and adaptivity, on a market with every kind of competitor.
#   global (store B):               [2, 8]
#   store A over global:            [1, 30]
#   product over store (A-prod):    [2, 5]    two quiet, one active, one bot product of store A
#   product max over store (A-max): [1, 3]    one quiet product: only check_interval_max set
#   product over global (B-prod):   [4, 6]
#   product min over global (B-min):[5, 8]    only check_interval_min set
my %store_bounds = (min => 1, max => 30);
psql("UPDATE demper.store SET check_interval_min = '$store_bounds{min} s', check_interval_max = '$store_bounds{max} s'
       WHERE id = $store_a");
my @market = @{ start_market(products => 40, first_code => 50000001, bot_share => 0.25, active_share => 0.25,
	active_gap_min_s => 200, active_gap_max_s => 600) };
my @of_kind = map { my $k = $_; [ grep { $_->{kind} eq $k } @market ] } qw(quiet active bot);
my ($quiet, $active, $bot) = @of_kind;
my %a_prod = map { $_->{code} => 1 } ($quiet->[0], $quiet->[1], $active->[0], $bot->[0]);
my $a_max = $quiet->[2]{code};
insert_listings($store_a, 3, 2, @market);
my @b_codes = (101 .. 112);
psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, step, next_check_at) VALUES "
	  . join(',', map { "($store_b, '$_', 'b-$_', 600000, 10, 1, now() + interval '3 s' + random() * interval '2 s')" } @b_codes));
my %b_prod = map { $_ => 1 } @b_codes[ 6 .. 10 ];
my $b_min = $b_codes[11];
psql("UPDATE demper.product SET check_interval_min = '2 s', check_interval_max = '5 s'
       WHERE store_id = $store_a AND product_code IN (" . join(',', map { "'$_'" } keys %a_prod) . ");
      UPDATE demper.product SET check_interval_max = '3 s' WHERE store_id = $store_a AND product_code = '$a_max';
      UPDATE demper.product SET check_interval_min = '4 s', check_interval_max = '6 s'
       WHERE store_id = $store_b AND product_code IN (" . join(',', map { "'$_'" } keys %b_prod) . ");
      UPDATE demper.product SET check_interval_min = '5 s' WHERE store_id = $store_b AND product_code = '$b_min';");
my %bounds;    # code => [shortest, longest, level]
for my $m (@market)
{
	my $c = $m->{code};
	$bounds{$c} = $a_prod{$c} ? [ 2, 5, 'product' ] : $c eq $a_max ? [ 1, 3, 'product max, store min' ]
	  : [ $store_bounds{min}, $store_bounds{max}, 'store' ];
}
for my $c (@b_codes)
{
	$bounds{$c} = $b_prod{$c} ? [ 4, 6, 'product' ] : $c eq $b_min ? [ 5, $global{max}, 'product min, global max' ]
	  : [ $global{min}, $global{max}, 'global' ];
}
my $n1 = scalar(keys %bounds);
# Slack of a gap between two offers requests of a product, from this part's settings. A check's
# interval runs from its claim; its request leaves up to n1 / rps later when every product is due
# at once (the rate limit's queue, burst 1), and up to 0.5 s later still on a busy 2-core machine
# (the worker or the mock waiting for a core): a gap can be that much shorter than the interval.
# It can be longer by as much, plus up to a second before an idle worker looks for due products
# again, plus the 0.25 s a decision waits for its batch before the next due time is written.
my $busy = 0.5;
my $slack_low = $n1 / $rps + $busy;
my $slack_up = 1.0 + 0.25 + $n1 / $rps + $busy;
my $t1 = time;
psql('SELECT pg_reload_conf()');    # the pressure is measured again within a second of a reload
ok(poll_until(sub { pressure() < 1 }, 30),
	'part 1: with budget to spare (' . $rps . ' requests/s for ' . $n1 . ' products) the pressure falls below 1')
  or diag('pressure: ' . pressure());

# Run until every quiet product of store A's own bounds has been checked 4 times: its first two
# checks have no information (the default interval at the lowest pressure: the shortest), then it
# waits about 25 s (its base interval of ~26 min at that pressure).
my @store_quiet = grep { $bounds{ $_->{code} }[2] eq 'store' } @$quiet;
my $requests;
poll_until(sub {
	$requests = offer_requests($t1);
	return !grep { @{ $requests->{ $_->{code} } // [] } < 4 } @store_quiet;
}, 90);
my $t1_end = time;
$requests = offer_requests($t1);
my $summary = $mock->get('/_mock/market/summary');
diag(sprintf('part 1: %.0f s, %d offers requests for %d products; the market: %d checks, %d moves of the seller\'s price '
	  . '(its pushes), longest unchecked %.0f market s', $t1_end - $t1, sum(map { scalar @$_ } values %$requests), $n1,
	$summary->{checks}, $summary->{seller_changes}, $summary->{max_unchecked_s}));

# The bounds each product's checks were scheduled with, as the apply wrote them to the due queue.
my %written = map { my ($c, $lo, $hi) = split /\|/; $c => [ $lo, $hi ] } split /\n/, psql(
	"SELECT p.product_code, s.shortest_s, s.longest_s FROM demper.product p JOIN demper.schedule s ON s.product_id = p.id
	  WHERE p.store_id IN ($store_a, $store_b)");
my @wrong = grep { !$written{$_} || $written{$_}[0] != $bounds{$_}[0] || $written{$_}[1] != $bounds{$_}[1] } sort keys %bounds;
is(scalar(@wrong), 0, 'part 1: every product was scheduled with its own bounds, else its store\'s, else the settings\'')
  or diag(join('; ', map { "$_ ($bounds{$_}[2]): want [@{$bounds{$_}}[0,1]], wrote [@{ $written{$_} // [] }]" } @wrong));
my @explained = map { [ split /\|/ ] } split /\n/, psql(
	"SELECT product_code, last_explain->'schedule'->>'interval_s' FROM demper.product WHERE store_id IN ($store_a, $store_b)");
my @outside = grep { !defined $_->[1] || $_->[1] eq '' || $_->[1] < $bounds{ $_->[0] }[0] - 1e-6
	  || $_->[1] > 0.95 * $bounds{ $_->[0] }[1] + 1e-6 } @explained;
is(scalar(@outside), 0, 'part 1: explain()\'s schedule member gives every product an interval within [shortest, 95 % of longest]')
  or diag(join('; ', map { "$_->[0]: " . ($_->[1] // 'none') } @outside));

# Gaps between consecutive checks, per product and per level.
my (%by_level, @violations);
for my $c (sort keys %bounds)
{
	my ($lo, $hi, $level) = @{ $bounds{$c} };
	my @t = @{ $requests->{$c} // [] };
	push @violations, "$c ($level): " . scalar(@t) . ' checks' if @t < 3;
	my @g = (gaps(@t), $t1_end - ($t[-1] // $t1));    # the last gap runs to the end of the part
	for my $g (@g)
	{
		push @violations, sprintf('%s (%s, [%g, %g]): gap %.2f s', $c, $level, $lo, $hi, $g)
		  if $g > $hi + $slack_up;
	}
	for my $g (gaps(@t))
	{
		push @violations, sprintf('%s (%s, [%g, %g]): gap %.2f s', $c, $level, $lo, $hi, $g)
		  if $g < $lo - $slack_low;
	}
	my $l = $by_level{$level} //= { min => 1e9, max => 0, n => 0 };
	$l->{min} = min($l->{min}, gaps(@t));
	$l->{max} = max($l->{max}, gaps(@t));
	$l->{n} += scalar(gaps(@t));
}
diag(sprintf('part 1: gaps by level (slack %.2f s below, %.2f s above): %s', $slack_low, $slack_up,
	join('; ', map { sprintf('%s %d gaps %.2f..%.2f s', $_, $by_level{$_}{n}, $by_level{$_}{min}, $by_level{$_}{max}) }
		sort keys %by_level)));
is(scalar(@violations), 0, 'part 1: every gap between two checks of a product is within its bounds (plus the slack)')
  or diag(join('; ', @violations[ 0 .. min($#violations, 9) ]));
# That the more specific level won shows where it reaches beyond the one under it.
cmp_ok($by_level{store}{max}, '>', $global{max} + $slack_up,
	'part 1: store A\'s longest interval (30 s) beats the global one (8 s): some gap is beyond 8 s plus the slack');
cmp_ok($by_level{store}{min}, '<', $global{min} - $slack_low,
	'part 1: store A\'s shortest interval (1 s) beats the global one (2 s): some gap is under 2 s minus the slack');
cmp_ok($summary->{max_unchecked_s} / $scale, '<=', $store_bounds{max} + $slack_up,
	"part 1: the market saw no product of store A unchecked longer than its longest bound ($store_bounds{max} s) plus the slack");
cmp_ok(max_in_window(1, sort { $a <=> $b } map { @$_ } values %$requests), '<=', $rps,
	"part 1: no 1 s window holds more than $rps offers requests");

# Adaptivity: checks per product of each kind, among store A's products under the store's bounds,
# counted from the moment all of them have had their two checks without information (at the
# shortest interval, whatever the kind).
my @store_a = grep { $bounds{ $_->{code} }[2] eq 'store' } @market;
my $informed = max(map { $requests->{ $_->{code} }[1] // $t1_end } @store_a);
my %interval = map { split /\|/ } split /\n/, psql(
	"SELECT product_code, last_explain->'schedule'->>'interval_s' FROM demper.product WHERE store_id = $store_a");
my (%checks_by_kind, %intervals_by_kind);
for my $m (@store_a)
{
	push @{ $checks_by_kind{ $m->{kind} } }, scalar grep { $_ > $informed } @{ $requests->{ $m->{code} } // [] };
	push @{ $intervals_by_kind{ $m->{kind} } }, $interval{ $m->{code} };
}
my %mean = map { $_ => sum(@{ $checks_by_kind{$_} }) / @{ $checks_by_kind{$_} } } keys %checks_by_kind;
diag(sprintf('part 1: over the last %.0f s, checks per product: quiet %.1f (%d products), active %.1f (%d), bot %.1f (%d); '
	  . 'their last intervals (explain) average quiet %.1f s, active %.1f s, bot %.1f s', $t1_end - $informed,
	(map { ($mean{$_}, scalar @{ $checks_by_kind{$_} }) } qw(quiet active bot)),
	map { sum(@{ $intervals_by_kind{$_} }) / @{ $intervals_by_kind{$_} } } qw(quiet active bot)));
cmp_ok($mean{bot}, '>=', 1.5 * $mean{quiet},
	'part 1: products facing a repricer bot are checked at least 1.5 times as often as quiet ones');
my @moving = (@{ $checks_by_kind{bot} }, @{ $checks_by_kind{active} });
cmp_ok(sum(@moving) / @moving, '>=', 1.3 * $mean{quiet},
	'part 1: products whose market moves (active and bot) are checked at least 1.3 times as often as quiet ones');
deactivate($store_a, $store_b);

# ---------------------------------------------------------------------------------------------
# 2. Price wars: every product faces a bot that answers within 0.1-0.3 s (2-6 market s); checks
# every 2-3 s, so that each check sees the bot's answer to the seller's last push.
my @war = @{ start_market(products => 16, first_code => 60000001, bot_share => 1, active_share => 0,
	other_active_share => 0, bot_reaction_min_s => 2, bot_reaction_max_s => 6) };
my $war_ids = insert_listings($store_a, 0, 0, @war);
my @war_ids = map { $war_ids->{ $_->{code} } } @war;
my $war_in = 'id IN (' . join(',', @war_ids) . ')';
psql("UPDATE demper.product SET check_interval_min = '2 s', check_interval_max = '3 s' WHERE $war_in");
my $t2 = time;

# follow: the war is declared, named by explain(), counted by store_stats, and the seller goes
# on undercutting the bot after it.
my $follow = '';
ok(poll_until(sub {
	$follow = psql("SELECT p.id FROM demper.product p
	                 WHERE p.$war_in AND p.war_rival IS NOT NULL
	                   AND demper.explain(p.id)->'schedule'->'war'->>'rival' = p.war_rival
	                   AND demper.explain(p.id)->'schedule'->'war'->>'policy' = 'follow'
	                   AND EXISTS (SELECT 1 FROM demper.price_history h WHERE h.product_id = p.id AND h.new_price < h.old_price
	                                  AND h.changed_at > to_timestamp((demper.explain(p.id)->'schedule'->'war'->>'since')::float8))
	                 LIMIT 1");
	return $follow ne '';
}, 60), 'part 2: follow: a war is declared, explain() names its rival, and the seller undercuts the bot again after it');
my $at_war = psql("SELECT products_at_war FROM demper.store_stats WHERE store_id = $store_a");
cmp_ok($at_war, '>', 0, "part 2: store_stats counts the products at war ($at_war)");
diag(sprintf('part 2: the first war was seen %.1f s after the first check; %s', time - $t2,
	psql("SELECT format('product %s, rival %s, rounds %s', id, war_rival, last_explain->'schedule'->>'rounds')
	        FROM demper.product WHERE id = $follow")));

# hold: once the stores' checks run under it, no product at war lowers its price.
psql("UPDATE demper.store SET war_policy = 'hold' WHERE id = $store_a");
my $t_hold = time;
ok(poll_until(sub { time > $t_hold + 3 && psql("SELECT count(*) FROM demper.product WHERE $war_in AND last_reason = 'price_war_hold'") > 0 }, 30),
	'part 2: hold: some products at war hold their price (last_reason price_war_hold)');
my $held_since = psql('SELECT now()');
my %held = map { my ($id, $price) = split /\|/; $id => $price } split /\n/,
  psql("SELECT id, price FROM demper.product WHERE $war_in AND war_rival IS NOT NULL");
my $t_held = time;
poll_until(sub {
	my $r = offer_requests($t_held);
	return !grep { @{ $r->{ $_->{code} } // [] } < 2 } grep { $held{ $war_ids->{ $_->{code} } } } @war;
}, 20);
my @lowered = split /\n/, psql("SELECT format('%s: %s -> %s at %s', h.product_id, h.old_price, h.new_price, h.changed_at)
	  FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id
	 WHERE h.product_id IN (" . join(',', keys %held) . ") AND p.war_rival IS NOT NULL
	   AND h.changed_at > '$held_since' AND h.new_price < h.old_price");
is(scalar(@lowered), 0, sprintf('part 2: hold: none of the %d products at war lowered its price in two more checks each', scalar keys %held))
  or diag(join('; ', @lowered));
my %now_price = map { split /\|/ } split /\n/, psql("SELECT id, price FROM demper.product WHERE $war_in");
is(scalar(grep { $now_price{$_} < $held{$_} } keys %held), 0, 'part 2: hold: every held price stayed where it was or rose');
is(psql("SELECT count(*) FROM demper.product WHERE $war_in AND price < min_price"), 0, 'part 2: no price went below its floor');

# keep_margin: the bot is left out of the competitors; the price goes back up above the bot's.
psql("UPDATE demper.store SET war_policy = 'keep_margin' WHERE id = $store_a");
my $above = '';
ok(poll_until(sub {
	for my $line (split /\n/, psql("SELECT id, product_code, price, war_rival FROM demper.product
	                                 WHERE $war_in AND last_reason = 'price_war_keep_margin' AND war_rival IS NOT NULL"))
	{
		my ($id, $code, $price, $rival) = split /\|/, $line;
		my ($bot_offer) = grep { $_->{merchantId} eq $rival } @{ $mock->get("/_mock/offers/$code")->{offers} };
		next unless $bot_offer && $price > $bot_offer->{price};
		$above = "product $id at $price, the bot $rival at $bot_offer->{price}" . (defined $held{$id} ? ", held at $held{$id}" : '');
		return 1;
	}
	return 0;
}, 30), 'part 2: keep_margin: a product at war is priced back above the bot (last_reason price_war_keep_margin)');
diag("part 2: keep_margin: $above");
is(psql("SELECT count(*) FROM demper.product WHERE $war_in AND price < min_price"), 0, 'part 2: still no price below its floor');
deactivate($store_a);

# ---------------------------------------------------------------------------------------------
# 3. A tight budget: 300 products at 4.75 requests/s with burst 1 (the settings' longest interval
# of 8 s would need 38/s): the pressure rises above 1, and the rate limit holds every second.
reload_conf($node, 'demper.requests_per_second' => $tight_rps);
my $t3 = time;
psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, step, next_check_at)
      SELECT $store_c, g::text, 'c-' || g, 600000, 10, 1, now() FROM generate_series(1001, 1300) g");
psql('SELECT pg_reload_conf()');
ok(poll_until(sub { pressure() > 1 }, 30), 'part 3: with 300 products at 4.75 requests/s the pressure rises above 1')
  or diag('pressure: ' . pressure());
my @tight;
poll_until(sub { @tight = sort { $a <=> $b } map { @$_ } values %{ offer_requests($t3) }; @tight >= 50 }, 60);
my $most = max_in_window(1, @tight);
# Pushes (the last price changes of part 2) go through the same egress and its bucket.
my @all = map { $_->[0] } grep { $_->[2] ne 'BAN' } mock_log($mock, $t3);
my $most_all = max_in_window(1, @all);
diag(sprintf('part 3: pressure %.2f; %d offers requests in %.1f s, at most %d in any 1 s window (%d of all %d requests)',
	pressure(), scalar @tight, $tight[-1] - $tight[0], $most, $most_all, scalar @all));
cmp_ok($most, '<=', int($tight_rps) + 1,
	"part 3: no 1 s window holds more offers requests than requests_per_second $tight_rps with burst 1 admits (5)");
cmp_ok($most_all, '<=', int($tight_rps) + 1, 'part 3: nor more requests of any kind (pushes share the egress\'s budget)');
deactivate($store_c);

# ---------------------------------------------------------------------------------------------
# 4. Off: new products get no schedule state and a check every demper.check_interval; the
# pressure is 1.
my $fixed_s = 2;
reload_conf($node, 'demper.adaptive_intervals' => 'off', 'demper.requests_per_second' => $rps,
	'demper.check_interval' => "'${fixed_s}s'");
ok(poll_until(sub { pressure() == 1 }, 30), 'part 4: with adaptive_intervals off the pressure is 1');
my $t4 = time;
my @d_codes = (2001 .. 2008);
psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, step, next_check_at) VALUES "
	  . join(',', map { "($store_c, '$_', 'd-$_', 600000, 10, 1, now())" } @d_codes));
my $off;
poll_until(sub { $off = offer_requests($t4); !grep { @{ $off->{$_} // [] } < 7 } @d_codes }, 60);
my @off_gaps = map { gaps(@{ $off->{$_} // [] }) } @d_codes;
diag(sprintf('part 4: %d gaps, %.2f..%.2f s (interval %d s)', scalar @off_gaps, min(@off_gaps), max(@off_gaps), $fixed_s));
cmp_ok(scalar @off_gaps, '>=', 6 * @d_codes, 'part 4: every product was checked 7 times');
is(scalar(grep { $_ < $fixed_s - $slack_low || $_ > $fixed_s + $slack_up } @off_gaps), 0,
	"part 4: every gap is demper.check_interval ($fixed_s s) within the slack");
is(psql("SELECT count(*) FROM demper.product p JOIN demper.schedule s ON s.product_id = p.id
          WHERE p.store_id = $store_c AND p.bot_active
            AND (p.schedule_state IS NOT NULL OR s.base_interval_s IS NOT NULL OR p.last_explain::jsonb ? 'schedule')"), 0,
	'part 4: no schedule state, base interval or explain() schedule member for the new products');

$node->stop;
$mock->stop;
diag(sprintf('021_adaptive took %.0f s', time - $t_start));
done_testing();
