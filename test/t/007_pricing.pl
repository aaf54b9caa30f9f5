# The pricing engine (issue 4) end to end: strategies, steps, cost floors, floor and no-competitor
# actions, max change, sellers with several stores, listings per city, the ignore list and the
# delivery and outlier filters, offer paging and its bound, explain(), dry run, the change budget,
# approval mode, working hours, per-product and priority intervals, and the floor property over
# 200 random rules. Every expected price is computed again here by model_decide(), written from
# the semantics documented in src/core/price_rule.hpp (not from the C++ code).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use List::Util qw(max min sum);
use Time::HiRes qw(time);

my $t_start = time;
my $json = JSON::PP->new->canonical;

# ---------------------------------------------------------------------------------------------
# The rule, independently (price_rule.hpp's header comment).

my %RANK = (EXPRESS => 0, TODAY => 1, TOMORROW => 2, TILL_2_DAYS => 3, TILL_3_DAYS => 4,
	TILL_5_DAYS => 5, TILL_7_DAYS => 6);
my %WHY_ORDER = (excluded_merchant => 0, slow_delivery => 1, outlier => 2);

sub delivery_rank { my ($d) = @_; return defined $d && exists $RANK{$d} ? $RANK{$d} : 7 }

# Percentages are rounded to 1e-6 % (micro-percent; 100 % = 1e8).
sub micro_percent { my ($p) = @_; return int($p * 1_000_000 + ($p < 0 ? -0.5 : 0.5)) }

sub ceil_div
{
	use integer;
	my ($x, $y) = @_;
	my $q = $x / $y;
	$q++ if $x % $y != 0 && $x > 0;
	return $q;
}

sub floor_div { use integer; my ($x, $y) = @_; return $x / $y }

sub cost_floor
{
	my ($r) = @_;
	return undef unless defined $r->{cost};
	my $m = defined $r->{margin} ? micro_percent($r->{margin}) : 0;
	return ceil_div($r->{cost} * (100_000_000 + $m), 100_000_000);
}

sub offer_cmp
{
	return $a->{price} <=> $b->{price} || $a->{m} cmp $b->{m} || $a->{name} cmp $b->{name}
	  || $a->{d} cmp $b->{d};
}

sub same_offer
{
	my ($x, $y) = @_;
	return $x->{price} == $y->{price} && $x->{m} eq $y->{m} && $x->{name} eq $y->{name}
	  && $x->{d} eq $y->{d};
}

# model_decide(current price, rule, store filters, offers) returns {price, reason, target,
# competitor_price, competitor_merchant, clamps => [[bound, before, after]...], floor, ceiling,
# floor_hit, step, competitors => [offers], excluded => [[merchant, price, why]...]}.
# rule: strategy step step_percent position min max cost margin floor_action nc mcp
# filters: excluded => [merchant ids], max_rank, outlier_share
sub model_decide
{
	my ($cur, $r, $f, $offers) = @_;
	my $cf = cost_floor($r);
	my $configured = defined $cf && $cf > $r->{min} ? $cf : $r->{min};
	my $floor = $configured > 10 ? $configured : 10;
	my $fkind = $configured >= 10 ? 'floor' : 'marketplace_min';
	my ($ceiling, $fac) = (undef, 0);
	if (defined $r->{max})
	{
		$fac = $r->{max} < $floor ? 1 : 0;
		$ceiling = $fac ? $floor : $r->{max};
	}
	my %banned = map { $_ => 1 } @{ $f->{excluded} // [] };
	my (@excluded, @kept);
	for my $o (@$offers)
	{
		if ($banned{ $o->{m} }) { push @excluded, [ $o->{m}, $o->{price}, 'excluded_merchant' ] }
		elsif (defined $f->{max_rank} && delivery_rank($o->{d}) > $f->{max_rank})
		{
			push @excluded, [ $o->{m}, $o->{price}, 'slow_delivery' ];
		}
		else { push @kept, $o }
	}
	my @before = sort offer_cmp @kept;
	my $nout = 0;
	if (defined $f->{outlier_share} && $f->{outlier_share} > 0 && @before)
	{
		my $share = $f->{outlier_share} > 1 ? 1 : $f->{outlier_share};
		my $n = @before < 5 ? scalar(@before) : 5;
		my $median = $n % 2
		  ? $before[ ($n - 1) / 2 ]{price}
		  : ($before[ $n / 2 - 1 ]{price} + $before[ $n / 2 ]{price}) / 2;
		my $threshold = $share * $median;
		$nout++ while $nout < @before && $before[$nout]{price} < $threshold;
	}
	push @excluded, [ $before[$_]{m}, $before[$_]{price}, 'outlier' ] for 0 .. $nout - 1;
	@excluded = sort { $a->[1] <=> $b->[1] || $a->[0] cmp $b->[0] || $WHY_ORDER{ $a->[2] } <=> $WHY_ORDER{ $b->[2] } } @excluded;
	my @comps = @before[ $nout .. $#before ];

	my $ref_index = sub {
		my ($list) = @_;
		return 0 unless $r->{strategy} eq 'position';
		my $n = $r->{position} < 1 ? 1 : $r->{position};
		return $n <= @$list ? $n - 1 : $#$list;
	};
	my %d = (floor => $floor, ceiling => $ceiling, step => 0, clamps => [], competitors => \@comps,
		excluded => \@excluded, floor_above_ceiling => $fac);
	my $value = $cur;
	my ($held, $ocr) = (0, 0);
	if (!@comps)
	{
		if ($r->{nc} eq 'to_max' && defined $r->{max})
		{
			$d{target} = $r->{max};
			$value = $r->{max};
		}
	}
	else
	{
		my $ref = $comps[ $ref_index->(\@comps) ];
		$d{competitor_price} = $ref->{price};
		$d{competitor_merchant} = $ref->{m};
		if ($nout > 0)
		{
			my $old = $before[ $ref_index->(\@before) ];
			$ocr = same_offer($old, $ref) ? 0 : 1;
		}
		my $pos = $r->{position} < 1 ? 1 : $r->{position};
		my $fewer = $r->{strategy} eq 'position' && $pos > @comps;
		my $target;
		if ($fewer && defined $r->{max}) { $target = $r->{max} }
		elsif ($r->{strategy} eq 'match') { $target = $ref->{price} }
		else
		{
			my $step;
			if (defined $r->{step_percent} && $r->{step_percent} > 0)
			{
				$step = ceil_div($ref->{price} * micro_percent($r->{step_percent}), 100_000_000);
				$step = 1 if $step < 1;
			}
			else { $step = $r->{step} < 1 ? 1 : $r->{step} }
			$d{step} = $step;
			$target = $r->{strategy} eq 'follow_second' ? $ref->{price} + $step : $ref->{price} - $step;
		}
		$d{target} = $target;
		if ($target < $floor && $r->{floor_action} eq 'hold') { $held = 1; $value = $cur }
		else { $value = $target }
	}
	my $clamp_floor = sub {
		if ($value < $floor) { push @{ $d{clamps} }, [ $fkind, $value, $floor ]; $value = $floor }
	};
	my $clamp_ceiling = sub {
		if (defined $ceiling && $value > $ceiling)
		{
			push @{ $d{clamps} }, [ $fac ? $fkind : 'ceiling', $value, $ceiling ];
			$value = $ceiling;
		}
	};
	$clamp_floor->();
	$clamp_ceiling->();
	if (defined $r->{mcp})
	{
		my $micro = micro_percent($r->{mcp});
		$micro = 0 if $micro < 0;
		my $cap = floor_div(abs($cur) * $micro, 100_000_000);
		$cap = 1 if $micro > 0 && $cap < 1;
		my ($lo, $hi) = ($cur - $cap, $cur + $cap);
		if ($value > $hi || $value < $lo)
		{
			my $capped = $value > $hi ? $hi : $lo;
			push @{ $d{clamps} }, [ 'max_change', $value, $capped ];
			$value = $capped;
			$clamp_floor->();
			$clamp_ceiling->();
		}
	}
	$d{price} = $value;
	$d{floor_hit} = ($held || grep { $_->[0] eq 'floor' || $_->[0] eq 'marketplace_min' } @{ $d{clamps} }) ? 1 : 0;
	my $reason;
	if (@{ $d{clamps} })
	{
		my $b = $d{clamps}[-1][0];
		$reason = $b eq 'ceiling' ? 'ceiling' : $b eq 'max_change' ? 'max_change_capped' : 'at_floor';
	}
	elsif (!@comps) { $reason = $r->{nc} eq 'to_max' ? 'no_competitors_to_max' : 'no_competitors_hold' }
	elsif ($held) { $reason = 'floor_hold' }
	elsif ($value == $floor && defined $d{target} && $d{target} == $floor) { $reason = 'at_floor' }
	elsif ($ocr) { $reason = 'outlier_ignored' }
	elsif ($value > $cur) { $reason = 'raised_to_competitor' }
	elsif ($value == $cur) { $reason = 'unchanged' }
	else { $reason = $r->{strategy} }
	$d{reason} = $reason;
	return \%d;
}

# ---------------------------------------------------------------------------------------------
# Helpers of this test.

# put_book replaces a product's offer book; offers are [merchant, price, delivery].
sub put_book
{
	my ($mock, $code, $offers) = @_;
	my @list = map {
		{ merchantId => $_->[0], merchantName => "Shop $_->[0]", price => $_->[1],
		  deliveryDuration => $_->[2] // 'TOMORROW' }
	} @$offers;
	$mock->request('PUT', "/_mock/offers/$code", { offers => \@list });
	return;
}

# as_offers turns book rows into the model's offers.
sub as_offers
{
	my ($rows) = @_;
	return [ map { { m => $_->[0], name => "Shop $_->[0]", price => $_->[1], d => $_->[2] // 'TOMORROW' } } @$rows ];
}

sub sql_val { my ($v) = @_; return defined $v ? (($v =~ /^-?[0-9.]+$/) ? $v : "'$v'") : 'NULL' }

# insert_listings inserts listings (hashes: store, code, sku, city, price, rule fields, interval,
# priority, due => SQL expression of next_check_at) and wakes the worker.
sub insert_listings
{
	my ($node, @l) = @_;
	my @rows = map {
		my $r = $_;
		sprintf("(%d, '%s', '%s', %s, %d, %d, %s, %d, '%s', %s, %d, %s, %s, '%s', '%s', %s, %s, %s, %s)",
			$r->{store_id}, $r->{code}, $r->{sku}, defined $r->{city} ? "'$r->{city}'" : 'NULL', $r->{price}, $r->{min},
			sql_val($r->{max}), $r->{step} // 1, $r->{strategy} // 'undercut',
			sql_val($r->{step_percent}), $r->{position} // 1, sql_val($r->{cost}), sql_val($r->{margin}),
			$r->{floor_action} // 'go_to_floor', $r->{nc} // 'to_max', sql_val($r->{mcp}),
			defined $r->{interval} ? "'$r->{interval}'::interval" : 'NULL',
			$r->{priority} ? 'true' : 'false', $r->{due} // 'now()')
	} @l;
	while (my @chunk = splice(@rows, 0, 200))
	{
		$node->safe_psql('postgres',
			'INSERT INTO demper.product (store_id, product_code, sku, city_id, price, min_price, max_price, step, '
			  . 'strategy, step_percent, position, cost_price, min_margin_percent, floor_action, '
			  . 'no_competitor_action, max_change_percent, check_interval, priority, next_check_at) VALUES '
			  . join(",\n", @chunk));
	}
	$node->safe_psql('postgres', 'SELECT demper.wake_workers()');
	return;
}

# products returns every product as a hash (columns and derived epochs), keyed by "sku|city".
sub products
{
	my ($node, $where) = @_;
	$where //= 'true';
	my $out = $node->safe_psql('postgres',
		"SELECT coalesce(json_agg(x), '[]') FROM (SELECT p.id, p.sku, coalesce(p.city_id, '') AS city, p.store_id, "
		  . "p.product_code, p.price, p.min_price, p.max_price, p.last_reason, p.last_competitor_price, "
		  . "p.last_decided_price, p.last_explain, (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = p.id) AS lease_until, "
		  . "extract(epoch FROM p.last_check_time)::float8 AS checked, p.last_check_time::text AS checked_text, "
		  . "extract(epoch FROM p.next_check_at)::float8 AS next_at, "
		  . "extract(epoch FROM p.next_check_at - p.last_check_time)::float8 AS gap "
		  . "FROM demper.product p WHERE $where) x");
	return { map { ("$_->{sku}|$_->{city}" => $_) } @{ $json->decode($out) } };
}

sub q1 { my ($node, $sql) = @_; return $node->safe_psql('postgres', $sql) }

sub fmt_clamps { my ($c) = @_; return join(',', map { "$_->[0]:$_->[1]>$_->[2]" } @$c) }

# ---------------------------------------------------------------------------------------------
# Stores.

my $mock = start_mock();
my $node = demper_node('pricing', $mock,
	'demper.priority_interval' => "'40s'",
	'demper.max_offer_pages' => 3,
	'demper.http_timeout' => "'10s'");
wait_for_worker($node);

q1($node, <<'SQL');
INSERT INTO demper.store (name, merchant_id, seller_id) VALUES
  ('Shop A', 'OWNA', 'seller-1'), ('Shop B', 'OWNB', 'seller-1'), ('Rival', 'RIVAL', 'seller-2');
INSERT INTO demper.store (name, merchant_id, seller_id, ignored_merchants, max_delivery_duration, outlier_share)
  VALUES ('Filters', 'OWNF', 'seller-3', '{IGN1}', 'TOMORROW', 0.5);
INSERT INTO demper.store (name, merchant_id, seller_id, ignored_merchants) VALUES
  ('Paging', 'OWNP', 'seller-4', '{IGNP}'), ('Paging 2', 'OWNP2', 'seller-4', '{}');
INSERT INTO demper.store (name, merchant_id, seller_id, change_budget, change_budget_window)
  VALUES ('Budget', 'OWNBUD', 'seller-6', 5, '30 minutes');
INSERT INTO demper.store (name, merchant_id, seller_id, approval_mode) VALUES ('Approval', 'OWNAPP', 'seller-7', true);
INSERT INTO demper.store (name, merchant_id, seller_id, timezone, work_start, work_end)
  SELECT 'Closed', 'OWNCL', 'seller-8', 'Asia/Almaty',
         ((now() AT TIME ZONE 'Asia/Almaty')::time + interval '2 hours')::time(0),
         ((now() AT TIME ZONE 'Asia/Almaty')::time + interval '4 hours')::time(0);
INSERT INTO demper.store (name, merchant_id, seller_id, timezone, work_start, work_end)
  SELECT 'Open', 'OWNOP', 'seller-9', 'Asia/Almaty',
         ((now() AT TIME ZONE 'Asia/Almaty')::time - interval '1 hour')::time(0),
         ((now() AT TIME ZONE 'Asia/Almaty')::time + interval '1 hour')::time(0);
INSERT INTO demper.store (name, merchant_id, seller_id) VALUES
  ('Intervals', 'OWNINT', 'seller-10'), ('Property 1', 'OWNQ1', 'seller-11'),
  ('Race', 'OWNRC', 'seller-14'), ('Dry', 'OWNDRY', 'seller-13');
INSERT INTO demper.store (name, merchant_id, seller_id, ignored_merchants, max_delivery_duration, outlier_share)
  VALUES ('Property 2', 'OWNQ2', 'seller-12', '{M3}', 'TILL_2_DAYS', 0.5);
SQL
my $closed_opens_at = time + 2 * 3600;    # the closed store's next opening, from the window above
my %store_id = map { split /\|/ } split /\n/, q1($node, 'SELECT merchant_id, id FROM demper.store');
diag('closed store hours: ' . q1($node, "SELECT work_start || '-' || work_end FROM demper.store WHERE merchant_id = 'OWNCL'")
	  . ', open store hours: ' . q1($node, "SELECT work_start || '-' || work_end FROM demper.store WHERE merchant_id = 'OWNOP'")
	  . ', Almaty now: ' . q1($node, "SELECT (now() AT TIME ZONE 'Asia/Almaty')::time(0)"));

# Store filters as the rule sees them (the seller's merchant ids and the ignore list).
my %filters = (
	OWNA => { excluded => [qw(OWNA OWNB)] },
	OWNB => { excluded => [qw(OWNA OWNB)] },
	OWNF => { excluded => [qw(OWNF IGN1)], max_rank => 2, outlier_share => 0.5 },
	OWNP => { excluded => [qw(OWNP OWNP2 IGNP)] },
	OWNQ2 => { excluded => [qw(OWNQ2 M3)], max_rank => 3, outlier_share => 0.5 },
);
$filters{$_} //= { excluded => [$_] } for keys %store_id;

my $next_code = 7700000;
my @all;     # every listing of phase 1
my %by_key;  # "sku|city" => listing

# listing fills in the defaults, puts the book (when given) and computes the expected decision.
sub listing
{
	my (%l) = @_;
	$l{store} //= 'OWNA';
	$l{store_id} = $store_id{ $l{store} };
	$l{code} //= $next_code++;
	$l{sku} //= "sku-$l{code}";
	$l{city} //= undef;
	$l{step} //= 1;
	$l{strategy} //= 'undercut';
	$l{position} //= 1;
	$l{floor_action} //= 'go_to_floor';
	$l{nc} //= 'to_max';
	put_book($mock, $l{code}, $l{book}) if $l{book} && !$l{shared_book};
	$l{model} = model_decide($l{price}, \%l, $filters{ $l{store} }, as_offers($l{book} // []));
	my $key = "$l{sku}|" . ($l{city} // '');
	my $ref = \%l;
	$by_key{$key} = $ref;
	push @all, $ref;
	return $ref;
}

# ---------------------------------------------------------------------------------------------
# 1. Strategies, floors, actions, caps, two stores of one seller, listings per city.

my @hand = (
	[ 'h-floor-hold', 'floor_hold', 1000, { min => 900, floor_action => 'hold',
		book => [ [ 'OWNA', 1000 ], [ 'OWNB', 850 ], [ 'M1', 880 ], [ 'M2', 1200 ] ] } ],
	[ 'h-go-floor', 'at_floor', 900, { min => 900, book => [ [ 'OWNA', 1000 ], [ 'M1', 880 ] ] } ],
	[ 'h-ceiling', 'ceiling', 1500, { min => 500, max => 1500, book => [ [ 'M1', 3000 ], [ 'OWNB', 1200 ] ] } ],
	[ 'h-none-max', 'no_competitors_to_max', 2000, { min => 500, max => 2000, book => [ [ 'OWNA', 990 ], [ 'OWNB', 980 ] ] } ],
	[ 'h-none-hold', 'no_competitors_hold', 1000, { min => 500, max => 2000, nc => 'hold',
		book => [ [ 'OWNA', 990 ], [ 'OWNB', 980 ] ] } ],
	[ 'h-capped', 'max_change_capped', 900, { min => 100, mcp => 10, book => [ [ 'M1', 500 ] ] } ],
	[ 'h-raised', 'raised_to_competitor', 1499, { min => 500,
		book => [ [ 'M1', 1500 ], [ 'OWNA', 1000 ], [ 'OWNB', 700 ] ] } ],
	[ 'h-cost-floor', 'at_floor', 1150, { price => 2000, min => 500, cost => 1000, margin => 15, book => [ [ 'M1', 1100 ] ] } ],
	[ 'h-match', 'match', 1200, { price => 1250, strategy => 'match', min => 500,
		book => [ [ 'M1', 1200 ], [ 'M2', 1300 ], [ 'OWNB', 1100 ] ] } ],
	[ 'h-follow', 'follow_second', 1205, { price => 1300, strategy => 'follow_second', step => 5, min => 500,
		book => [ [ 'M1', 1200 ], [ 'M2', 1250 ] ] } ],
	[ 'h-position', 'position', 1198, { price => 1500, strategy => 'position', position => 3, step => 2, min => 500,
		book => [ [ 'M1', 1000 ], [ 'M2', 1100 ], [ 'OWNB', 1050 ], [ 'M3', 1200 ], [ 'M4', 1300 ] ] } ],
	[ 'h-step-pct', 'undercut', 989, { price => 1200, step_percent => 1.1, min => 500, book => [ [ 'M1', 1000 ] ] } ],
	[ 'h-rival', 'raised_to_competitor', 999, { price => 950, min => 500,
		book => [ [ 'OWNA', 900 ], [ 'OWNB', 800 ], [ 'RIVAL', 1000 ], [ 'M1', 1100 ] ] } ],
	[ 'h-position-few', 'raised_to_competitor', 3000, { price => 1500, strategy => 'position', position => 5,
		min => 500, max => 3000, book => [ [ 'M1', 1000 ], [ 'M2', 1100 ] ] } ],
	[ 'h-cost-over-max', 'at_floor', 2000, { price => 1800, min => 500, max => 1500, cost => 2000,
		book => [ [ 'M1', 1000 ] ] } ],
	[ 'h-b-sibling', 'undercut', 799, { store => 'OWNB', min => 500,
		book => [ [ 'OWNA', 600 ], [ 'OWNB', 650 ], [ 'M1', 800 ] ] } ],
	[ 'h-margin-hold', 'floor_hold', 1500, { price => 1500, min => 100, cost => 1000, margin => 33.3,
		floor_action => 'hold', book => [ [ 'M1', 1300 ] ] } ],
	[ 'h-hold-below-floor', 'at_floor', 1200, { min => 1200, floor_action => 'hold', book => [ [ 'M1', 1100 ] ] } ],
	[ 'h-unchanged', 'unchanged', 999, { price => 999, min => 500, book => [ [ 'M1', 1000 ] ] } ],
);
my %hand_expect;
for my $h (@hand)
{
	my ($sku, $reason, $price, $spec) = @$h;
	listing(sku => $sku, price => 1000, %$spec);
	$hand_expect{$sku} = [ $price, $reason ];
}

# Listings per city: the same sku and card in three cities, each with its own price and bounds.
my $city_code1 = $next_code++;
my $city_book1 = [ [ 'M1', 1000 ], [ 'OWNA', 950 ], [ 'OWNB', 940 ] ];
put_book($mock, $city_code1, $city_book1);
listing(sku => 'city-1', code => $city_code1, shared_book => 1, book => $city_book1, price => 1200, min => 500);
listing(sku => 'city-1', code => $city_code1, shared_book => 1, book => $city_book1, city => '710000000', price => 1200, min => 1050);
listing(sku => 'city-1', code => $city_code1, shared_book => 1, book => $city_book1, city => '511010000', price => 800, min => 500, max => 900);
my $city_code2 = $next_code++;
my $city_book2 = [ [ 'M1', 5000 ], [ 'M2', 5100 ] ];
put_book($mock, $city_code2, $city_book2);
listing(sku => 'city-2', code => $city_code2, shared_book => 1, book => $city_book2, strategy => 'match', price => 4000, min => 100);
listing(sku => 'city-2', code => $city_code2, shared_book => 1, book => $city_book2, city => '710000000', price => 4000, min => 100, mcp => 10);
my %city_expect = ('city-1|' => [ 999, 'undercut' ], 'city-1|710000000' => [ 1050, 'at_floor' ],
	'city-1|511010000' => [ 900, 'ceiling' ], 'city-2|' => [ 5000, 'raised_to_competitor' ],
	'city-2|710000000' => [ 4400, 'max_change_capped' ]);

# Random listings: one card per pair, listed by both stores of the seller (and a third city
# listing for a few), books holding both stores' offers (often the cheapest) and another seller's.
srand(20261123);
my @deliveries = sort keys %RANK;
sub pick { return $_[ int(rand(scalar @_)) ] }
sub random_rule
{
	my %r;
	$r{strategy} = pick(qw(undercut undercut match position follow_second));
	$r{step_percent} = pick(0.5, 1, 1.1, 2.5, 5) if rand() < 0.3;
	$r{step} = 1 + int(rand(50));
	$r{position} = 1 + int(rand(4));
	$r{min} = 100 + int(rand(8000));
	$r{max} = $r{min} + int(rand(10000)) if rand() < 0.5;
	if (rand() < 0.3)
	{
		$r{cost} = 50 + int(rand(8000));
		$r{margin} = pick(undef, 0, 15, 33.3, 12.5);
	}
	$r{floor_action} = rand() < 0.3 ? 'hold' : 'go_to_floor';
	$r{nc} = rand() < 0.3 ? 'hold' : 'to_max';
	$r{mcp} = pick(5, 7.5, 10, 25, 50) if rand() < 0.3;
	$r{price} = 100 + int(rand(15000));
	return %r;
}
my $random_main = 0;
for my $i (1 .. 20)
{
	my $code = $next_code++;
	my @book;
	push @book, [ 'OWNA', 300 + int(rand(12000)), pick(@deliveries) ] if rand() < 0.8;
	push @book, [ 'OWNB', 300 + int(rand(12000)), pick(@deliveries) ] if rand() < 0.8;
	push @book, [ 'RIVAL', 500 + int(rand(15000)), pick(@deliveries) ] if rand() < 0.3;
	push @book, [ 'M' . (1 + int(rand(9))), 500 + int(rand(15000)), pick(@deliveries) ] for 1 .. int(rand(6));
	put_book($mock, $code, \@book);
	listing(sku => "rnd-$i-A", code => $code, shared_book => 1, book => \@book, store => 'OWNA', random_rule());
	listing(sku => "rnd-$i-B", code => $code, shared_book => 1, book => \@book, store => 'OWNB', random_rule());
	listing(sku => "rnd-$i-A", code => $code, shared_book => 1, book => \@book, store => 'OWNA', city => '710000000',
		random_rule())
	  if $i <= 5;
	$random_main += $i <= 5 ? 3 : 2;
}
my @main = @all;    # the scenario of part 1

# ---------------------------------------------------------------------------------------------
# 2. Ignore list, delivery filter, outliers (store Filters: ignore IGN1, TOMORROW at the latest,
# outlier share 0.5).

listing(sku => 'f-ignore', store => 'OWNF', price => 1200, min => 500,
	book => [ [ 'IGN1', 700, 'TODAY' ], [ 'M1', 1000, 'TOMORROW' ], [ 'OWNF', 650, 'TODAY' ] ]);
listing(sku => 'f-slow', store => 'OWNF', price => 1200, min => 500,
	book => [ [ 'M1', 700, 'TILL_5_DAYS' ], [ 'M2', 1000, 'TODAY' ] ]);
listing(sku => 'f-outlier', store => 'OWNF', price => 1200, min => 50,
	book => [ [ 'M1', 100, 'TODAY' ], [ 'M2', 1000 ], [ 'M3', 1010 ], [ 'M4', 1020 ], [ 'M5', 1030 ] ]);
listing(sku => 'f-no-outlier', store => 'OWNF', price => 1200, min => 50,
	book => [ [ 'M1', 900, 'TODAY' ], [ 'M2', 1000 ], [ 'M3', 1010 ], [ 'M4', 1020 ], [ 'M5', 1030 ] ]);
# 4. The product explain() is asserted on: every filter and a chain of three clamps.
my $explained = listing(sku => 'f-explain', store => 'OWNF', price => 2000, min => 950, max => 1500, mcp => 20,
	book => [ [ 'IGN1', 500, 'TODAY' ], [ 'M1', 300, 'TILL_5_DAYS' ], [ 'M2', 900, 'TODAY' ], [ 'M3', 1000, 'TOMORROW' ],
		[ 'M4', 1100, 'EXPRESS' ], [ 'M5', 1150, 'TODAY' ], [ 'M6', 40, 'TODAY' ], [ 'OWNF', 800, 'TODAY' ] ]);

# ---------------------------------------------------------------------------------------------
# 3. Paging (store Paging: seller-4 has OWNP and OWNP2, ignore list IGNP).

my @excl_ids = qw(OWNP OWNP2 IGNP);
my @page1_book = ((map { [ $excl_ids[ $_ % 3 ], 100 + $_ ] } 0 .. 63), (map { [ sprintf('C%03d', $_), 2000 + $_ ] } 0 .. 85));
my $p_page1 = listing(sku => 'p-page1', store => 'OWNP', price => 5000, min => 500, book => \@page1_book);
my @pos_book = ((map { [ $excl_ids[$_], 100 + $_ ] } 0 .. 2), (map { [ sprintf('Q%03d', $_), 1000 + $_ ] } 0 .. 146));
my $p_pos = listing(sku => 'p-pos64', store => 'OWNP', price => 5000, min => 500, strategy => 'position', position => 64,
	book => \@pos_book);
my @cap_book = map { [ $excl_ids[ $_ % 3 ], 100 + $_ ] } 0 .. 999;
my $p_cap = listing(sku => 'p-cap', store => 'OWNP', price => 5000, min => 500, max => 7000, book => \@cap_book);
my @one_book = ([ 'OWNP', 100 ], [ 'M0', 900 ], map { [ sprintf('C%03d', $_), 2000 + $_ ] } 0 .. 147);
my $p_one = listing(sku => 'p-one', store => 'OWNP', price => 5000, min => 500, book => \@one_book);
# The model of a capped read: only the first 3 pages of 64 offers are seen.
$p_cap->{model} = model_decide(5000, $p_cap, $filters{OWNP}, as_offers([ @cap_book[ 0 .. 191 ] ]));

# ---------------------------------------------------------------------------------------------
# 6-9. Budget, approval, working hours, intervals.

my @budget = map { listing(sku => sprintf('b-%02d', $_), store => 'OWNBUD', price => 2000, min => 100,
		book => [ [ 'M1', 1000 ] ]) } 1 .. 12;
my @approval = map { listing(sku => "a-$_", store => 'OWNAPP', price => 2000, min => 100, book => [ [ 'M1', 1000 ] ]) } 1 .. 3;
push @approval, listing(sku => 'a-4', store => 'OWNAPP', price => 999, min => 100, book => [ [ 'M1', 1000 ] ]);
my @closed = map { listing(sku => "h-closed-$_", store => 'OWNCL', price => 2000, min => 100, book => [ [ 'M1', 1000 ] ]) } 1 .. 2;
my $open = listing(sku => 'h-open', store => 'OWNOP', price => 2000, min => 100, book => [ [ 'M1', 1000 ] ]);
my %intervals = ('i-own' => 25, 'i-prio' => 40, 'i-default' => 3600, 'i-both' => 15);
listing(sku => 'i-own', store => 'OWNINT', price => 2000, min => 100, interval => '25 seconds', book => [ [ 'M1', 1000 ] ]);
listing(sku => 'i-prio', store => 'OWNINT', price => 2000, min => 100, priority => 1, book => [ [ 'M1', 1000 ] ]);
listing(sku => 'i-default', store => 'OWNINT', price => 2000, min => 100, book => [ [ 'M1', 1000 ] ]);
listing(sku => 'i-both', store => 'OWNINT', price => 2000, min => 100, priority => 1, interval => '15 seconds',
	book => [ [ 'M1', 1000 ] ]);

# ---------------------------------------------------------------------------------------------
# 10. Floor property: 200 random rules and books (two stores, the second with every filter).

my @prop;
for my $i (1 .. 200)
{
	my $store = $i % 2 ? 'OWNQ1' : 'OWNQ2';
	my $own = $store;
	my @book;
	push @book, [ $own, 10 + int(rand(12000)), pick(@deliveries) ] if rand() < 0.5;
	push @book, [ 'M' . (1 + int(rand(9))), 10 + int(rand(12000)), pick(@deliveries) ] for 1 .. int(rand(8));
	push @book, [ 'BAIT', 10 + int(rand(300)), pick(@deliveries) ] if rand() < 0.2;
	my %r = random_rule();
	$r{price} = 10 + int(rand(15000)) if rand() < 0.3;
	$r{min} = 10 + int(rand(200)) if rand() < 0.2;
	$r{max} = $r{min} + int(rand(100)) if defined $r{max} && ($r{max} < $r{min} || rand() < 0.3);
	push @prop, listing(sku => "prop-$i", store => $store, book => \@book, %r);
}

# ---------------------------------------------------------------------------------------------
# Go: every listing of phase 1 is due now.

my $t_insert = time;
insert_listings($node, @all);
my $n_all = scalar(@all);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product p JOIN demper.store s ON s.id = p.store_id "
		  . "WHERE (p.last_check_time IS NULL AND s.merchant_id <> 'OWNCL') "
		  . "   OR (s.merchant_id = 'OWNCL' AND p.last_reason IS DISTINCT FROM 'outside_hours')"),
	"all $n_all listings were checked (closed store: skipped)");
diag(sprintf('phase 1: %d listings checked in %.1f s', $n_all, time - $t_insert));

my $got = products($node);

# --- 1. the scenario -------------------------------------------------------------------------
{
	my @wrong = grep { $got->{"$_->{sku}|" . ($_->{city} // '')}{price} != $_->{model}{price} } @main;
	is(scalar(@wrong), 0, scalar(@main) . ' listings of two stores of one seller: every price equals the model')
	  or diag(join("\n", map {
			my $g = $got->{"$_->{sku}|" . ($_->{city} // '')};
			"$_->{sku} $_->{store} " . ($_->{city} // '-') . ": got $g->{price} ($g->{last_reason}), model $_->{model}{price} ($_->{model}{reason})"
		} @wrong));
	my @wrong_reason = grep { ($got->{"$_->{sku}|" . ($_->{city} // '')}{last_reason} // '') ne $_->{model}{reason} } @main;
	is(scalar(@wrong_reason), 0, 'every last_reason equals the model\'s reason')
	  or diag(join("\n", map { "$_->{sku}: got " . ($got->{"$_->{sku}|" . ($_->{city} // '')}{last_reason} // 'NULL') . ", model $_->{model}{reason}" } @wrong_reason));
	my @wrong_cp = grep {
		my $g = $got->{"$_->{sku}|" . ($_->{city} // '')}{last_competitor_price};
		my $m = $_->{model}{competitor_price};
		(defined $g ? $g : 'NULL') ne (defined $m ? $m : 'NULL')
	} @main;
	is(scalar(@wrong_cp), 0, 'every last_competitor_price is the model\'s reference offer (own stores excluded)')
	  or diag(join("\n", map { "$_->{sku}: got " . ($got->{"$_->{sku}|" . ($_->{city} // '')}{last_competitor_price} // 'NULL') . ", model " . ($_->{model}{competitor_price} // 'NULL') } @wrong_cp));
	my %reasons;
	$reasons{ $_->{model}{reason} }++ for @main;
	diag('part 1 reasons: ' . join(', ', map { "$_=$reasons{$_}" } sort keys %reasons));

	# The hand-made cases: expected by hand, and the model agrees with the hand.
	my @hand_wrong;
	for my $sku (sort keys %hand_expect)
	{
		my ($price, $reason) = @{ $hand_expect{$sku} };
		my $g = $got->{"$sku|"};
		my $m = $by_key{"$sku|"}{model};
		push @hand_wrong, "$sku: got $g->{price}/" . ($g->{last_reason} // 'NULL') . ", by hand $price/$reason, model $m->{price}/$m->{reason}"
		  if $g->{price} != $price || ($g->{last_reason} // '') ne $reason
		  || $m->{price} != $price || $m->{reason} ne $reason;
	}
	is(scalar(@hand_wrong), 0, scalar(keys %hand_expect) . ' hand-made cases: price and reason as computed by hand')
	  or diag(join("\n", @hand_wrong));
	for my $case ([ 'h-floor-hold', 'floor_hold' ], [ 'h-go-floor', 'at_floor' ], [ 'h-ceiling', 'ceiling' ],
		[ 'h-none-max', 'no_competitors_to_max' ], [ 'h-capped', 'max_change_capped' ],
		[ 'h-raised', 'raised_to_competitor' ], [ 'h-cost-floor', 'at_floor' ])
	{
		my ($sku, $reason) = @$case;
		is($got->{"$sku|"}{price} . '/' . ($got->{"$sku|"}{last_reason} // 'NULL'),
			"$hand_expect{$sku}[0]/$reason", "$sku: price $hand_expect{$sku}[0], reason $reason");
	}
	is($got->{'h-rival|'}{price}, 999,
		'own offers of both stores are excluded, another seller\'s store in the same database is a competitor');
	is($got->{'h-b-sibling|'}{price}, 799, 'store B excludes store A\'s offer (same seller) and its own');

	my @city_wrong = grep { $got->{$_}{price} != $city_expect{$_}[0] || ($got->{$_}{last_reason} // '') ne $city_expect{$_}[1] }
	  sort keys %city_expect;
	is(scalar(@city_wrong), 0, 'listings of one sku in three cities converge independently (999 / 1050 / 900; 5000 / 4400)')
	  or diag(join("\n", map { "$_: got $got->{$_}{price}/" . ($got->{$_}{last_reason} // 'NULL') . ", expected @{$city_expect{$_}}" } @city_wrong));
	my $astana = $json->decode(q1($node, "SELECT demper.explain(id) FROM demper.product WHERE sku = 'city-1' AND city_id = '710000000'"));
	is("$astana->{city_id} $astana->{floor} $astana->{new_price}", '710000000 1050 1050',
		'explain of the Astana listing: its own city, floor and price');

	# explain agrees with the model for every listing: target, floor, ceiling, clamps.
	my @explain_wrong;
	for my $l (@main)
	{
		my $e = $got->{"$l->{sku}|" . ($l->{city} // '')}{last_explain} // {};
		my $m = $l->{model};
		my $ec = fmt_clamps([ map { [ $_->{bound}, $_->{before}, $_->{after} ] } @{ $e->{clamps} // [] } ]);
		my $mc = fmt_clamps($m->{clamps});
		my $got_s = join(' ', $e->{target} // 'null', $e->{floor} // 'null', $e->{ceiling} // 'null', $ec);
		my $exp_s = join(' ', $m->{target} // 'null', $m->{floor}, $m->{ceiling} // 'null', $mc);
		push @explain_wrong, "$l->{sku}: explain [$got_s], model [$exp_s]" if $got_s ne $exp_s;
	}
	is(scalar(@explain_wrong), 0, 'explain: target, floor, ceiling and clamps equal the model for every listing')
	  or diag(join("\n", @explain_wrong));

	# History: one row per changed listing, with its store and the decision's reason.
	my %hist = map { my @f = split /\|/; ("$f[0]|$f[1]" => [ @f[ 2 .. 6 ] ]) } split /\n/, q1($node,
		"SELECT p.sku, coalesce(p.city_id, ''), count(*), min(h.old_price), max(h.new_price), min(h.reason), bool_and(h.store_id = p.store_id) "
		  . "FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id GROUP BY 1, 2");
	my @hist_wrong;
	for my $l (@main)
	{
		my $key = "$l->{sku}|" . ($l->{city} // '');
		my $h = $hist{$key};
		if ($l->{model}{price} == $l->{price}) { push @hist_wrong, "$key: unchanged but has history" if $h }
		elsif (!$h || $h->[0] != 1 || $h->[1] != $l->{price} || $h->[2] != $l->{model}{price} || $h->[3] ne $l->{model}{reason} || $h->[4] ne 't')
		{
			push @hist_wrong, "$key: history " . ($h ? "@$h" : 'none') . ", expected 1 $l->{price} $l->{model}{price} $l->{model}{reason} t";
		}
	}
	is(scalar(@hist_wrong), 0, 'one history row per changed listing: old and new price, reason, store_id')
	  or diag(join("\n", @hist_wrong));
}

# --- 2. filters --------------------------------------------------------------------------------
{
	is($got->{'f-ignore|'}{price}, 999, 'ignored_merchants: the ignored merchant\'s 700 is not undercut (999)');
	is($got->{'f-slow|'}{price}, 999, 'max_delivery_duration TOMORROW: the TILL_5_DAYS offer at 700 is ignored (999)');
	is("$got->{'f-outlier|'}{price}/$got->{'f-outlier|'}{last_reason}", '999/outlier_ignored',
		'outlier_share 0.5: the bait at 100 is ignored, reason outlier_ignored');
	is("$got->{'f-no-outlier|'}{price}/$got->{'f-no-outlier|'}{last_reason}", '899/undercut',
		'outlier filter: an offer above half the median is a real competitor (899, undercut)');
}

# --- 4. explain ----------------------------------------------------------------------------------
{
	my $e = $json->decode(q1($node, "SELECT demper.explain(id) FROM demper.product WHERE sku = 'f-explain'"));
	diag('explain(f-explain): ' . $json->encode($e));
	is(join(' ', map { $e->{$_} // 'null' } qw(price current_price new_price reason last_reason target competitor_price competitor_merchant floor ceiling step competitor_count offers_seen)),
		'1500 2000 1500 ceiling ceiling 899 900 M2 950 1500 1 4 8',
		'explain: prices, reason, target 899 (M2 900 - 1), floor 950, ceiling 1500, 4 competitors of 8 offers');
	ok($e->{changed} && $e->{floor_hit}, 'explain: changed and floor_hit (the floor clamped the target)');
	is_deeply([ map { [ $_->{bound}, $_->{before}, $_->{after} ] } @{ $e->{clamps} } ],
		[ [ 'floor', 899, 950 ], [ 'max_change', 950, 1600 ], [ 'ceiling', 1600, 1500 ] ],
		'explain: clamps floor 899>950, max_change 950>1600 (20 % of 2000), ceiling 1600>1500');
	is_deeply([ map { [ $_->{merchant_id}, $_->{price}, $_->{delivery} ] } @{ $e->{competitors} } ],
		[ [ 'M2', 900, 'TODAY' ], [ 'M3', 1000, 'TOMORROW' ], [ 'M4', 1100, 'EXPRESS' ], [ 'M5', 1150, 'TODAY' ] ],
		'explain: the competitors as seen, cheapest first, with delivery');
	is_deeply([ map { [ $_->{merchant_id}, $_->{price}, $_->{why} ] } @{ $e->{excluded} } ],
		[ [ 'M6', 40, 'outlier' ], [ 'M1', 300, 'slow_delivery' ], [ 'IGN1', 500, 'excluded_merchant' ],
			[ 'OWNF', 800, 'excluded_merchant' ] ],
		'explain: excluded offers and why (outlier, slow_delivery, excluded_merchant)');
	my $rule = $e->{rule} // {};
	is(join(' ', map { $rule->{$_} // 'null' } qw(strategy min_price max_price max_change_percent outlier_share max_delivery_rank floor_action no_competitor_action)),
		'undercut 950 1500 20 0.5 2 go_to_floor to_max', 'explain: the rule with the store\'s filters');
	is(join(',', sort @{ $rule->{excluded_merchants} // [] }), 'IGN1,OWNF', 'explain: excluded merchants = own id + ignore list');
	my $m = $explained->{model};
	is("$m->{price} $m->{reason} " . fmt_clamps($m->{clamps}), '1500 ceiling floor:899>950,max_change:950>1600,ceiling:1600>1500',
		'the model agrees with the explained decision');
}

# --- 3. paging -----------------------------------------------------------------------------------
{
	my %req = map { ($_->{sku} => mock_requests_for($mock, $_->{code})) } ($p_page1, $p_pos, $p_cap, $p_one);
	diag('offer requests per check: ' . join(', ', map { "$_=$req{$_}" } sort keys %req));
	is("$req{'p-page1'} $got->{'p-page1|'}{price}", '2 1999',
		'page 0 holds only own/ignored offers: page 1 is read (2 requests), price 1999 from it');
	is("$req{'p-pos64'} $got->{'p-pos64|'}{price} $got->{'p-pos64|'}{last_reason}", '2 1062 position',
		'position 64 with 61 competitors on page 0: 2 requests, undercut the 64th (1063) = 1062');
	is("$req{'p-cap'} $got->{'p-cap|'}{price} $got->{'p-cap|'}{last_reason}", '3 7000 no_competitors_to_max',
		'1,000 excluded offers: demper.max_offer_pages = 3 caps the check at 3 requests, then no competitors (to max)');
	is($got->{'p-cap|'}{last_explain}{offers_seen}, 192, 'the capped check saw 3 pages of 64 offers');
	is("$req{'p-one'} $got->{'p-one|'}{price}", '1 899', 'a competitor on page 0: one request only (no needless paging)');
}

# --- 6. change budget ----------------------------------------------------------------------------
{
	my $in_window = q1($node, "SELECT count(*) FROM demper.price_history WHERE store_id = $store_id{OWNBUD} "
		  . "AND changed_at > now() - interval '30 minutes'");
	my $bp = products($node, "store_id = $store_id{OWNBUD}");
	my @changed = grep { $_->{price} == 999 } values %$bp;
	my @deferred = grep { ($_->{last_reason} // '') eq 'budget_deferred' } values %$bp;
	my @late = grep { !defined $_->{gap} || $_->{gap} > 61 || $_->{gap} < 0 } grep { !defined $_->{lease_until} } @deferred;
	diag(sprintf('budget: %d history rows in the window, %d changed, %d deferred, gaps %s', $in_window,
		scalar(@changed), scalar(@deferred), join(',', map { defined $_->{gap} ? sprintf('%.0f', $_->{gap}) : 'null' } @deferred)));
	is($in_window, 5, 'change_budget 5 per 30 min: exactly 5 history rows for the store in the window');
	is(scalar(@changed), 5, 'exactly 5 of the 12 prices changed');
	is(scalar(@deferred), 7, 'the other 7 have last_reason budget_deferred, price unchanged');
	is(scalar(@late), 0, 'deferred changes are not lost: next check within a minute of the last one');
	cmp_ok(demper_stats($node)->{budget_deferred}, '>=', 7, 'demper_stats().budget_deferred >= 7');
	# Raise the budget: the deferred changes are made at their next check (asserted at the end).
	q1($node, "UPDATE demper.store SET change_budget = 100 WHERE id = $store_id{OWNBUD}");
}

# --- 8. working hours ------------------------------------------------------------------------------
{
	my @closed_wrong;
	for my $l (@closed)
	{
		my $g = $got->{"$l->{sku}|"};
		my $req = mock_requests_for($mock, $l->{code});
		my $delta = $g->{next_at} - $closed_opens_at;
		diag(sprintf('%s: %d requests, reason %s, next check - next opening = %.0f s', $l->{sku}, $req, $g->{last_reason} // 'NULL', $delta));
		push @closed_wrong, "$l->{sku}: requests $req, price $g->{price}, reason " . ($g->{last_reason} // 'NULL') . ", next_at - opening $delta"
		  if $req != 0 || $g->{price} != 2000 || ($g->{last_reason} // '') ne 'outside_hours' || $delta < -60 || $delta > 360;
	}
	is(scalar(@closed_wrong), 0,
		'hours exclude now: not fetched (0 requests), price unchanged, outside_hours, next check at the next opening (+0..5 min)')
	  or diag(join("\n", @closed_wrong));
	my $vs_fn = q1($node, "SELECT bool_and(p.next_check_at BETWEEN demper.next_opening(s) - interval '1 minute' "
		  . "AND demper.next_opening(s) + interval '6 minutes') FROM demper.product p JOIN demper.store s ON s.id = p.store_id "
		  . "WHERE s.merchant_id = 'OWNCL'");
	is($vs_fn, 't', 'closed store: next_check_at agrees with demper.next_opening()');
	is("$got->{'h-open|'}{price} $got->{'h-open|'}{last_reason} " . mock_requests_for($mock, $open->{code}), '999 undercut 1',
		'hours contain now: the store is checked and repriced');
}

# --- 9. intervals ------------------------------------------------------------------------------------
{
	my %gap;
	ok( poll_until(
			sub {
				my $ip = products($node, "store_id = $store_id{OWNINT} AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL AND last_check_time IS NOT NULL");
				%gap = map { ($_->{sku} => $_->{gap}) } values %$ip;
				return keys(%gap) == keys(%intervals);
			},
			60),
		'interval listings checked and not leased');
	diag('next_check_at - last_check_time: ' . join(', ', map { sprintf('%s=%.1f', $_, $gap{$_} // -1) } sort keys %gap));
	my @off = grep { !defined $gap{$_} || abs($gap{$_} - $intervals{$_}) > 3 } sort keys %intervals;
	is(scalar(@off), 0, 'next check: product check_interval 25 s; priority 40 s (demper.priority_interval); default 1 h; own interval beats priority (15 s)')
	  or diag(join("\n", map { "$_: gap " . ($gap{$_} // 'null') . ", expected $intervals{$_}" } @off));
}

# --- 10. floor property ----------------------------------------------------------------------------
{
	my (@below, @above, @model_wrong);
	my ($held, $fac) = (0, 0);
	for my $l (@prop)
	{
		my $g = $got->{"$l->{sku}|"};
		my $cf = cost_floor($l) // 0;
		my $floor = max($l->{min}, 10, $cf);
		push @below, "$l->{sku}: price $g->{price} < floor $floor" if $g->{price} < $floor;
		push @above, "$l->{sku}: price $g->{price} > max $l->{max}" if defined $l->{max} && $floor <= $l->{max} && $g->{price} > $l->{max};
		push @model_wrong, "$l->{sku}: got $g->{price}/" . ($g->{last_reason} // 'NULL') . ", model $l->{model}{price}/$l->{model}{reason}"
		  if $g->{price} != $l->{model}{price} || ($g->{last_reason} // '') ne $l->{model}{reason};
		$held++ if $l->{model}{floor_hit};
		$fac++ if $l->{model}{floor_above_ceiling};
	}
	diag("property: 200 listings, $held at the floor (clamp or hold), $fac with the floor above max_price");
	is(scalar(@below), 0, '200 random rules: every price >= max(min_price, 10, cost floor)') or diag(join("\n", @below));
	is(scalar(@above), 0, '200 random rules: every price <= max_price when the floor is not above it') or diag(join("\n", @above));
	is(scalar(@model_wrong), 0, '200 random rules: every price and reason equals the model') or diag(join("\n", @model_wrong));
}

# --- 7. approval mode --------------------------------------------------------------------------------
my %proposal_of;
{
	my $ap = products($node, "store_id = $store_id{OWNAPP}");
	my %pend = map { my ($sku, $id, $n, $old, $new) = split /\|/; ($sku => [ $id, $n, $old, $new ]) } split /\n/, q1($node,
		"SELECT p.sku, min(r.id), count(*), min(r.old_price), min(r.new_price) FROM demper.proposal r JOIN demper.product p ON p.id = r.product_id "
		  . "WHERE r.status = 'pending' GROUP BY p.sku");
	%proposal_of = map { ($_ => $pend{$_}[0]) } keys %pend;
	is(join(' ', map { my $x = $pend{"a-$_"}; $x ? "$x->[1]:$x->[2]>$x->[3]" : '-' } 1 .. 4),
		'1:2000>999 1:2000>999 1:2000>999 -', 'approval mode: one pending proposal per product that would change (2000 > 999), none for the unchanged one');
	is(join(' ', map { $ap->{"a-$_|"}{price} . '/' . ($ap->{"a-$_|"}{last_reason} // 'NULL') } 1 .. 4),
		'2000/awaiting_approval 2000/awaiting_approval 2000/awaiting_approval 999/unchanged',
		'approval mode: prices unchanged, last_reason awaiting_approval');
	is(q1($node, "SELECT count(*) FROM demper.price_history WHERE store_id = $store_id{OWNAPP}"), 0, 'approval mode: no history before approval');
	cmp_ok(demper_stats($node)->{proposals}, '>=', 3, 'demper_stats().proposals counts the proposals');

	# A re-check updates the pending proposal in place.
	put_book($mock, $approval[0]{code}, [ [ 'M1', 900 ] ]);
	my $before = $ap->{'a-1|'}{checked};
	q1($node, "SELECT demper.check_now($ap->{'a-1|'}{id})");
	ok( poll_until(sub { q1($node, "SELECT new_price FROM demper.proposal WHERE product_id = $ap->{'a-1|'}{id} AND status = 'pending'") eq '899' }, 30),
		're-check: the pending proposal now proposes 899');
	is(q1($node, "SELECT count(*) || ' ' || min(id) FROM demper.proposal WHERE product_id = $ap->{'a-1|'}{id}"),
		"1 $proposal_of{'a-1'}", 're-check: the proposal is updated in place (one row, same id), not duplicated');

	# approve() applies one, reject() turns another down.
	is(q1($node, "SELECT demper.approve($proposal_of{'a-1'})"), 899, 'approve() returns the new price');
	is(q1($node, "SELECT price FROM demper.product WHERE id = $ap->{'a-1|'}{id}") . ' '
		  . q1($node, "SELECT status FROM demper.proposal WHERE id = $proposal_of{'a-1'}") . ' '
		  . q1($node, "SELECT count(*) || ':' || min(old_price) || '>' || min(new_price) || ':' || min(reason) FROM demper.price_history WHERE product_id = $ap->{'a-1|'}{id}"),
		'899 approved 1:2000>899:undercut (approved)', 'approve(): price applied, proposal approved, one history row');
	q1($node, "SELECT demper.reject($proposal_of{'a-2'})");
	is(q1($node, "SELECT price FROM demper.product WHERE id = $ap->{'a-2|'}{id}") . ' '
		  . q1($node, "SELECT status FROM demper.proposal WHERE id = $proposal_of{'a-2'}") . ' '
		  . q1($node, "SELECT count(*) FROM demper.price_history WHERE product_id = $ap->{'a-2|'}{id}"),
		'2000 rejected 0', 'reject(): price unchanged, proposal rejected, no history');

	# A re-check that no longer wants any change must not leave the old proposal pending:
	# approving it later would apply a price that no current decision supports. (Fails with
	# 0.2.0: the apply statement in src/pg/catalog.cpp writes proposals only for outcome
	# 'awaiting_approval' and never marks a pending one 'superseded'.)
	put_book($mock, $approval[2]{code}, [ [ 'M1', 2001 ] ]);
	my $checked3 = $ap->{'a-3|'}{checked_text};
	q1($node, "SELECT demper.check_now($ap->{'a-3|'}{id})");
	ok( poll_until(sub {
				q1($node, "SELECT last_check_time > '$checked3'::timestamptz AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL FROM demper.product WHERE id = $ap->{'a-3|'}{id}") eq 't'
			}, 30),
		'a-3 re-checked after its competitor went to 2001');
	my $a3 = q1($node, "SELECT last_reason || ' ' || last_decided_price FROM demper.product WHERE id = $ap->{'a-3|'}{id}");
	my $a3_pending = q1($node, "SELECT coalesce(string_agg(old_price || '>' || new_price, ','), 'none') FROM demper.proposal WHERE product_id = $ap->{'a-3|'}{id} AND status = 'pending'");
	diag("a-3 after the re-check: $a3, pending proposals: $a3_pending");
	is($a3_pending, 'none',
		'approval: a re-check deciding "unchanged" (2000) leaves no pending proposal of the outdated 2000>999');
}

# --- 6 (end). deferred changes are made once the budget allows ------------------------------------
ok( $node->poll_query_until('postgres', "SELECT count(*) = 12 FROM demper.product WHERE store_id = $store_id{OWNBUD} AND price = 999"),
	'budget raised: the 7 deferred changes are made at their next check (within about a minute)');
is(q1($node, "SELECT count(*) FROM demper.price_history WHERE store_id = $store_id{OWNBUD}"), 12, 'budget: 12 history rows in all, none lost or doubled');

# --- 10b. the floor also holds when cost_price is raised while a check is in flight ----------------
# (Fails with 0.2.0: DEMPER_SAME_INPUTS in src/pg/catalog.cpp compares only price, min_price,
# max_price, step and bot_active, so a decision made from the old cost floor is applied.)
{
	my $race = listing(sku => 'r-cost', store => 'OWNRC', price => 2000, min => 100, book => [ [ 'M1', 1000 ] ]);
	$mock->fault(product => "$race->{code}", mode => 'latency', latency_ms => 5000, count => 1);
	insert_listings($node, $race);
	ok( poll_until(sub { q1($node, "SELECT (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL FROM demper.product WHERE sku = 'r-cost'") eq 't' }, 30),
		'r-cost: its check is in flight (answer delayed 5 s)');
	q1($node, "UPDATE demper.product SET cost_price = 1500 WHERE sku = 'r-cost'");
	ok( poll_until(sub {
				q1($node, "SELECT last_check_time IS NOT NULL AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL AND last_reason IS DISTINCT FROM 'inputs_changed' "
					  . "FROM demper.product WHERE sku = 'r-cost'") eq 't'
			}, 60),
		'r-cost: a decision was applied after the change');
	my $r = q1($node, "SELECT price || ' ' || last_reason FROM demper.product WHERE sku = 'r-cost'");
	my $below = q1($node, "SELECT coalesce(string_agg(old_price || '>' || new_price || ' ' || reason, ', '), 'none') "
		  . "FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE p.sku = 'r-cost' AND h.new_price < 1500");
	diag("r-cost after cost_price 1500 mid-check: $r; history below 1500: $below");
	is($below, 'none',
		'a decision made before cost_price rose to 1500 is not applied: no price ever set below the new cost floor');
	like($r, qr/^1500 /, 'r-cost ends at its new cost floor 1500');
}

# --- 5. dry run ----------------------------------------------------------------------------------------
{
	reload_conf($node, 'demper.dry_run' => 'on');
	my @dry = map { listing(sku => "d-$_", store => 'OWNDRY', price => 2000, min => 100, book => [ [ 'M1', 1000 + $_ ] ],
			due => "now() + interval '3 seconds'") } 1 .. 3;
	insert_listings($node, @dry);
	ok( $node->poll_query_until('postgres',
			"SELECT count(*) = 3 FROM demper.product WHERE store_id = $store_id{OWNDRY} AND last_reason IS NOT NULL"),
		'dry run: the products were checked');
	my $dp = products($node, "store_id = $store_id{OWNDRY}");
	is(join(' ', map { my $g = $dp->{"d-$_|"}; "$g->{price}/" . ($g->{last_reason} // 'NULL') . "/" . ($g->{last_decided_price} // 'NULL') } 1 .. 3),
		'2000/dry_run/1000 2000/dry_run/1001 2000/dry_run/1002',
		'dry run: last_reason dry_run, last_decided_price recorded, price unchanged');
	is(q1($node, "SELECT count(*) FROM demper.price_history WHERE store_id = $store_id{OWNDRY}"), 0, 'dry run: no history');
	is(join(' ', map { $dp->{"d-$_|"}{last_explain}{new_price} // 'null' } 1 .. 3), '1000 1001 1002', 'dry run: the decision is explained');
	reload_conf($node, 'demper.dry_run' => 'off');
	my $id1 = $dp->{'d-1|'}{id};
	ok( poll_until(sub {
				my ($p, $reason) = split /\|/, q1($node, "SELECT price, last_reason FROM demper.product WHERE id = $id1");
				q1($node, "SELECT demper.check_now($id1)") if $reason eq 'dry_run';
				return $p == 1000;
			}, 60),
		'dry run off: the same decision is applied at the next check');
}

my $stats = demper_stats($node);
diag(sprintf('stats: checks_started %d, checks_ok %d, price_changes %d, floor_hits %d, budget_deferred %d, proposals %d, http_requests %d; runtime %.0f s',
	@$stats{qw(checks_started checks_ok price_changes floor_hits budget_deferred proposals http_requests)}, time - $t_start));

$node->stop;
$mock->stop;
done_testing();
