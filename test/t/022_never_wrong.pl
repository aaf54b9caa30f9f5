# Never wrong with money, one bad store never stops the others (issue 16, items 1, 2, 3, 7 and 8),
# each performed for real against a running worker and the mock marketplace, each with a
# RELIABILITY line:
#   1. approve() of a proposal whose price is below a floor raised since refuses it as stale;
#   2. a push that stays unanswered past its lease, while a newer price of its listing waits:
#      the marketplace ends at the newer price, and no listing ever has two pushes in flight;
#      (2b, found by the soak: a merchant's pushes while offers requests fill the egress;)
#   3. a store's change budget holds with demper.workers = 4;
#   7. a store's absurd change budget is refused, a store whose time zone no longer resolves is
#      skipped alone, and a product whose decision cannot be written fails alone;
#   8. a store deactivated, or closed by its working hours, while its checks are in flight
#      changes no price.
# Each part says what the code before issue 16 (0.7.0 before cf82627) did in the same situation.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time;
my $mock = start_mock(synthetic => 1000000);
$mock->post('/_mock/push_limits', { push_limit_rps => 100000 });
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $key_file = write_key_file("$tmp/demper.key");
my $node = demper_node('money', $mock,
	'demper.requests_per_second' => 2000,
	'demper.burst' => 200,
	'demper.lease_time' => "'10s'",
	'demper.http_timeout' => "'60s'",    # longer than part 2's held push
	'demper.credentials_key_file' => "'$key_file'",
	'demper.push_url' => "'http://127.0.0.1:" . $mock->port . "/pricefeed/upload/merchant/process'");

sub psql { return $node->safe_psql('postgres', $_[0]) }
sub count_where { return psql("SELECT count(*) FROM demper.product WHERE $_[0]") }

# store inserts a store (extra columns as SQL: "approval_mode, true") and returns its id; with
# $publish it gets cabinet credentials (push mode api).
sub store
{
	my ($name, $merchant, $publish, %extra) = @_;
	my $cols = join('', map { ", $_" } sort keys %extra);
	my $vals = join('', map { ", $extra{$_}" } sort keys %extra);
	my $id = psql("INSERT INTO demper.store (name, merchant_id$cols) VALUES ('$name', '$merchant'$vals) RETURNING id");
	store_credentials($node, $mock, $id, $merchant, "S$merchant" . int(rand(1e9)), "I$merchant" . int(rand(1e9)))
	  if $publish;
	return $id;
}

# product inserts one product due now with one competitor (C1 at $competitor) besides the store's
# own offer, and returns its id.
sub product
{
	my ($store, $merchant, $code, $price, $min, $competitor) = @_;
	$mock->set_offers($code, [ [ 'C1', $competitor ], [ $merchant, $price ] ]);
	return psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, availabilities, next_check_at)
	             VALUES ($store, '$code', 'sku-$code', $price, $min, '$DEFAULT_AVAILABILITIES', now()) RETURNING id;
	             SELECT demper.wake_workers()")
	  =~ s/\s+$//r;
}

sub last_push
{
	my ($merchant, $sku) = @_;
	my @p = grep { $_->{sku} eq $sku } mock_pushes($mock, $merchant);
	return @p ? $p[-1]{cityPrices}[0]{value} : undef;
}

# ---------------------------------------------------------------------------------------------
# 1. approve() below the current floor. A proposal 1000 -> 600; the seller raises min_price to
#    800; approve(). Before issue 16: price 600, below the floor, with a history row and a push.
#    Now the proposal is refused as stale, and the next check proposes from the current floor.
my $approval = store('Approval', '30040001', 1, approval_mode => 'true');
my $pa = product($approval, '30040001', 4001, 1000, 500, 601);
my $pb = product($approval, '30040001', 4002, 1000, 500, 701);
ok(poll_until(sub { psql("SELECT count(*) FROM demper.proposal WHERE product_id IN ($pa, $pb) AND status = 'pending'") == 2 }, 60),
	'part 1: both products have a pending proposal');
my ($prop_a, $new_a) = split /\|/, psql("SELECT id, new_price FROM demper.proposal WHERE product_id = $pa AND status = 'pending'");
is($new_a, 600, 'part 1: the proposal lowers the price to 600');
psql("UPDATE demper.product SET min_price = 800 WHERE id = $pa");
is(psql("SELECT status FROM demper.proposal WHERE id = $prop_a"), 'pending', 'part 1: the proposal is still pending after the floor rose');
my ($rc, $out, $err) = $node->psql('postgres', "SELECT demper.approve($prop_a)");
diag("part 1: approve() below the floor returned '$out': $err");
my ($price_a) = psql("SELECT price FROM demper.product WHERE id = $pa");
is($price_a, 1000, 'part 1: approve() sets no price below the current floor');
is(psql("SELECT status FROM demper.proposal WHERE id = $prop_a"), 'stale', 'part 1: the proposal is stale');
is(psql("SELECT count(*) FROM demper.price_history WHERE product_id = $pa") + 0, 0, 'part 1: no history row');
is(psql("SELECT count(*) FROM demper.outbox WHERE product_id = $pa") + 0, 0, 'part 1: no push');
like($err, qr/below the floor/, 'part 1: approve() says why');
my $prop_b = psql("SELECT id FROM demper.proposal WHERE product_id = $pb AND status = 'pending'");
is(psql("SELECT demper.approve($prop_b)"), 700, 'part 1: a proposal above the floor is approved');
ok(poll_until(sub { (last_push('30040001', 'sku-4002') // 0) == 700 }, 60), 'part 1: and pushed');
psql("SELECT demper.check_now($pa)");
ok(poll_until(sub { psql("SELECT count(*) FROM demper.proposal WHERE product_id = $pa AND status = 'pending' AND new_price >= 800") == 1 }, 60),
	'part 1: the next check proposes from the current floor');
reliability('approve() of a proposal below a floor raised since it was made', 1, $price_a < 800 ? 1 : 0,
	"price after approve(): $price_a (floor 800)");

# ---------------------------------------------------------------------------------------------
# 2. An older push overtaking a newer price. The push of 899 is held on its way to the
#    marketplace for 15 s (longer than the 10 s lease); meanwhile the competitor moves and the
#    product is decided at 799. Before issue 16 the outbox row was claimed again when the lease
#    ran out, 799 was pushed and accepted while 899 was still in flight, then 899 arrived and
#    was accepted last: the marketplace ended at 899 while demper believed 799. Now a push
#    still unanswered shortly before its lease ends is cancelled (Publisher::give_up_overdue_
#    pushes), and a listing never has two pushes in flight.
my $pusher = store('Pusher', '30040002', 1);
$mock->post('/_mock/fault', { endpoint => 'push', sku => 'sku-4101', mode => 'latency', latency_ms => 15000, count => 1 });
my $pp = product($pusher, '30040002', 4101, 1000, 100, 900);
my $t_held;
ok(poll_until(sub { $mock->stats->{pushes_held} == 1 }, 60), 'part 2: the push of 899 is held on its way');
$t_held = time;
$mock->set_offers(4101, [ [ 'C1', 800 ], [ '30040002', 899 ] ]);
psql("SELECT demper.check_now($pp)");
ok(poll_until(sub { psql("SELECT price FROM demper.product WHERE id = $pp") == 799 }, 30),
	'part 2: the product is decided at 799 while the push of 899 is in flight');
my $settled = poll_until(sub {
		time > $t_held + 17    # the held push would have been taken by now
		  && psql("SELECT count(*) FROM demper.outbox WHERE product_id = $pp AND status <> 'done'") == 0;
	}, 120);
ok($settled, 'part 2: the outbox row is done');
my @pushes = map { $_->{cityPrices}[0]{value} } grep { $_->{sku} eq 'sku-4101' } mock_pushes($mock, '30040002');
my $stats = $mock->stats;
diag(sprintf('part 2: pushes the marketplace took, in order: %s; overlaps %d, abandoned holds %d',
	join(', ', @pushes), $stats->{push_overlaps}, $stats->{holds_abandoned}));
is($pushes[-1], 799, 'part 2: the marketplace ends at the newest price');
is(psql("SELECT price FROM demper.product WHERE id = $pp"), $pushes[-1], 'part 2: demper and the marketplace agree');
is($stats->{push_overlaps}, 0, 'part 2: the listing never had two pushes in flight');
reliability('a push unanswered past its lease while a newer price of its listing waits', 1,
	($pushes[-1] // 0) == 799 ? 0 : 1,
	sprintf('pushes taken: %s; %d overlaps', join(', ', @pushes), $stats->{push_overlaps}));

# ---------------------------------------------------------------------------------------------
# 2b. A merchant's pushes while offers requests fill the egress (found by the soak, bench/soak.py;
#     not an item of issue 16). The publisher hands a merchant's pushes to the HTTP engine at
#     demper.push_rate (2 a second), but the engine admits every request through the egress's rate
#     limiter, which the offers requests share: pushes wait behind them and leave back to back. The
#     marketplace bans a merchant above 3 pushes a second (DOMAIN.md: 30 minutes; the mock's ban is
#     shortened here), and a push answered 429 also rests the whole egress. Here 16 products of one
#     merchant change price among 400 due products at 20 requests a second.
my $bunched = store('Bunched', '30040003', 1);
my $filler = store('Filler', '30040004', 0);
$mock->post('/_mock/push_limits', { push_limit_rps => 3, push_ban_ms => 60000 });
my $bans_before = $mock->stats->{push_bans};
reload_conf($node, 'demper.requests_per_second' => 20, 'demper.burst' => 2);
ok(poll_until(sub { psql('SHOW demper.requests_per_second') eq '20' }, 30), 'part 2b: 20 requests a second');
psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, availabilities, next_check_at)
      SELECT CASE WHEN g % 25 = 0 THEN $bunched ELSE $filler END, g::text, 'sku-' || g, 600000, 10,
             '$DEFAULT_AVAILABILITIES', now()
        FROM generate_series(4201, 4600) g;
      SELECT demper.wake_workers()");
ok(poll_until(sub { count_where("product_code::bigint BETWEEN 4201 AND 4600 AND last_check_time IS NULL") == 0 }, 180),
	'part 2b: the 400 products are checked');
my $pushed = poll_until(sub {
		psql("SELECT count(*) FROM demper.outbox WHERE store_id = $bunched AND status = 'pending'") == 0
		  || $mock->stats->{push_bans} > $bans_before }, 60);
my @push_times = sort { $a <=> $b } map { $_->{t} } mock_pushes($mock, '30040003');
my $most = max_in_window(1, @push_times);
my $bans = $mock->stats->{push_bans} - $bans_before;
diag(sprintf('part 2b: %d pushes of the merchant taken, at most %d in one second; %d merchant bans; at %s s',
	scalar(@push_times), $most, $bans, join(' ', map { sprintf('%.2f', $_ - $push_times[0]) } @push_times)));
# A merchant's pushes leave one at a time, the next 1 / push_rate after the previous one left the
# engine, and a push's 429 holds back that merchant only (before: they bunched behind the offers
# requests and left back to back, and the marketplace banned the merchant).
is($bans, 0, 'part 2b: the marketplace bans no merchant');
cmp_ok($most, '<=', 2, 'part 2b: at most push_rate pushes of a merchant reach the marketplace in a second');
reliability('a merchant\'s pushes while offers requests fill the egress (20 req/s, 400 checks, 16 pushes)',
	scalar(@push_times), $bans, sprintf('most pushes in a second %d (limit 3); lost counts merchant bans', $most));
reload_conf($node, 'demper.requests_per_second' => 2000, 'demper.burst' => 200);
$mock->post('/_mock/push_limits', { push_limit_rps => 100000 });
ok(poll_until(sub { psql('SHOW demper.requests_per_second') eq '2000' }, 30), 'part 2b: the rate is back');

# ---------------------------------------------------------------------------------------------
# 7. One store's values never stop the others. (a) change_budget = 2147483647 was allowed, and
#    every batch then failed with "integer out of range": no store was repriced. Now it is
#    refused, and budgets are counted in bigint. (b) A store whose time zone no longer resolves
#    (tzdata upgrade; made here with the validation trigger off) broke every claim, once a
#    second. Now that store's products are skipped (bad_time_zone) and the others are repriced.
#    (c) A decision whose row cannot be written (a competitor at 20,000,000,000 tenge: the price
#    would break the table's bounds) failed its whole batch; now the batch is split until that
#    product fails alone, with a warning, and the others are written. (Before, the absurd price
#    was written: there was no bound.)
my $s7 = store('Budget', '30040007', 0);
my ($rc7, $out7, $err7) = $node->psql('postgres', "UPDATE demper.store SET change_budget = 2147483647 WHERE id = $s7");
isnt($rc7, 0, 'part 7: change_budget = 2147483647 is refused');
like($err7, qr/change_budget must be at most/, 'part 7: with a message that says why');
my $s7tz = store('Moved zone', '30040008', 0, timezone => "'Asia/Almaty'", work_start => "'00:00'", work_end => "'23:59'");
my $s7ok = store('Healthy', '30040009', 0);
psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
      SELECT $s7tz, g::text, 'sku-' || g, 600000, 10, now() + interval '1 day' FROM generate_series(4701, 4710) g");
$mock->set_offers($_, [ [ 'C1', 5000 + $_ ], [ '30040008', 600000 ] ]) for 4701 .. 4710;
psql("SET session_replication_role = replica; UPDATE demper.store SET timezone = 'Mars/Olympus_Mons' WHERE id = $s7tz");
psql("UPDATE demper.product SET next_check_at = now() WHERE store_id = $s7tz");
my @budget_products = map { product($s7, '30040007', 4720 + $_, 600000, 10, 5000 + $_) } 1 .. 10;
# (c): 49 ordinary products and one whose competitor asks 20,000,000,000, due together.
my $absurd_code = 4775;
psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
      SELECT $s7ok, g::text, 'sku-' || g, 600000, 10, now() + interval '1 day' FROM generate_series(4751, 4800) g");
$mock->set_offers($_, [ [ 'C1', $_ == $absurd_code ? 20000000000 : 7000 + $_ ], [ '30040009', 600000 ] ]) for 4751 .. 4800;
my $log_offset = -s $node->logfile;
psql("UPDATE demper.product SET next_check_at = now() WHERE product_code::bigint BETWEEN 4751 AND 4800; SELECT demper.wake_workers()");
my $healthy = "store_id = $s7ok AND product_code <> '$absurd_code'";
ok(poll_until(sub { count_where("$healthy AND price = 7000 + product_code::bigint - 1") == 49 }, 60),
	'part 7: the healthy store\'s products are repriced');
ok(poll_until(sub { count_where("store_id = $s7 AND price < 600000") == 10 }, 60), 'part 7: so are those of the store whose budget was refused');
ok(poll_until(sub { count_where("store_id = $s7tz AND last_reason = 'bad_time_zone'") == 10 }, 60),
	'part 7: the store whose time zone no longer resolves is skipped, visibly (bad_time_zone)');
is(count_where("store_id = $s7tz AND price <> 600000"), 0, 'part 7: and changes no price');
my $absurd = psql("SELECT id, price FROM demper.product WHERE product_code = '$absurd_code'");
my ($absurd_id, $absurd_price) = split /\|/, $absurd;
is($absurd_price, 600000, 'part 7: the product whose decision cannot be written keeps its price');
ok(poll_until(sub { server_log_count($node, qr/could not write the check of product $absurd_id\b/, $log_offset) >= 1 }, 30),
	'part 7: and fails alone, with a warning naming it');
is(server_log_count($node, qr/could not write the check of product/, $log_offset), 1, 'part 7: no other product failed');
my $tz_lost = count_where("store_id = $s7tz AND price <> 600000");
my $lost7 = (49 - count_where("$healthy AND price = 7000 + product_code::bigint - 1")) + (10 - count_where("store_id = $s7 AND price < 600000"))
  + $tz_lost + ($absurd_price == 600000 ? 0 : 1) + ($rc7 == 0 ? 1 : 0);
reliability('one bad store or row: a budget of 2147483647, a time zone that no longer resolves, a price beyond the bounds', 3,
	$lost7, sprintf('budget %s; %d of 59 products of the other stores repriced; the broken store\'s %d products skipped '
		  . '(bad_time_zone); the absurd price %s; lost counts healthy products left unrepriced, absurd values accepted '
		  . 'and bad rows written', $rc7 == 0 ? 'ACCEPTED' : 'refused',
		count_where("$healthy AND price = 7000 + product_code::bigint - 1") + count_where("store_id = $s7 AND price < 600000"),
		count_where("store_id = $s7tz AND last_reason = 'bad_time_zone'"), $absurd_price == 600000 ? 'failed alone' : 'WRITTEN'));
# Repaired, so that the parts below do not depend on them (the code before issue 16 stayed stuck).
psql("UPDATE demper.store SET timezone = 'Asia/Almaty', change_budget = NULL WHERE id IN ($s7tz, $s7)");

# ---------------------------------------------------------------------------------------------
# 8. The apply honours the store as it is when it writes. Thirty products of a store are in check
#    (answers take 3 s) when the store is deactivated; thirty of another store are in check when
#    its working hours are changed to exclude now. Before issue 16 their decisions were applied
#    all the same: a deactivated store kept changing prices. Now the apply skips them
#    (store_inactive, outside_hours) and no price changes.
my $s8 = store('Deactivated', '30040010', 1);
my $s8h = store('Closing', '30040011', 1, timezone => "'UTC'");
psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
      SELECT CASE WHEN g <= 4830 THEN $s8 ELSE $s8h END, g::text, 'sku-' || g, 600000, 10, now() + interval '1 day'
        FROM generate_series(4801, 4860) g");
$mock->fault(mode => 'latency', latency_ms => 3000);
my %round = (store_inactive => [ $s8, "UPDATE demper.store SET active = false WHERE id = $s8" ],
	outside_hours => [ $s8h, "UPDATE demper.store SET work_start = ((now() AT TIME ZONE 'UTC') + interval '2 hours')::time,
	                                                  work_end = ((now() AT TIME ZONE 'UTC') + interval '3 hours')::time WHERE id = $s8h" ]);
my $lost8 = 0;
for my $reason (sort keys %round)
{
	my ($sid, $change) = @{ $round{$reason} };
	psql("UPDATE demper.product SET next_check_at = now() WHERE store_id = $sid; SELECT demper.wake_workers()");
	my $in_check;
	ok(poll_until(sub {
			($in_check = psql("SELECT count(*) FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
			                   WHERE p.store_id = $sid AND s.lease_token IS NOT NULL")) >= 20 }, 30),
		"part 8 ($reason): products are in check");
	psql($change);
	ok(poll_until(sub {
			count_where("store_id = $sid AND last_reason IS NOT NULL") == 30
			  && psql("SELECT count(*) FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
			           WHERE p.store_id = $sid AND s.lease_token IS NOT NULL") == 0 }, 60),
		"part 8 ($reason): every product's check has ended");
	my $reasons = psql("SELECT string_agg(last_reason || ' ' || n, ', ') FROM (SELECT last_reason, count(*) AS n
	                    FROM demper.product WHERE store_id = $sid GROUP BY 1 ORDER BY 1) r");
	# A store closed by its hours is 'outside_hours' at apply time as at claim time (the apply named
	# it 'closed' and rescheduled it one interval later instead of at its opening).
	is(count_where("store_id = $sid AND last_reason = '$reason'"), 30, "part 8 ($reason): every product's outcome is $reason")
	  or diag("part 8 ($reason): outcomes $reasons");
	my $changed = count_where("store_id = $sid AND price <> 600000");
	is($changed, 0, "part 8 ($reason): no price changed");
	is(psql("SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE p.store_id = $sid") + 0,
		0, "part 8 ($reason): no history row");
	is(psql("SELECT count(*) FROM demper.outbox WHERE store_id = $sid") + 0, 0, "part 8 ($reason): no push");
	diag("part 8 ($reason): $in_check products were in check when the store changed; $changed prices changed; outcomes $reasons");
	$lost8 += $changed;
}
$mock->fault(mode => 'none');
reliability('a store deactivated, or closed by its hours, while its checks are in flight', 2, $lost8,
	'lost counts prices changed after the store closed');

# ---------------------------------------------------------------------------------------------
# 3. A store's change budget with demper.workers = 4. Before issue 16 the apply counted the
#    store's recent changes in its own snapshot without serialising on the store: workers
#    applying batches of the same store at once each saw the same count and together exceeded
#    the budget. Now the apply locks the rows of the stores with a budget (kBudgetLockSql)
#    before counting. Three stores with a budget of 15 changes per hour, 150 products each, all
#    due at once, batches of 10 so that the four workers apply side by side.
$node->stop;
my $four = demper_node('budget4', $mock,
	'demper.workers' => 4,
	'demper.requests_per_second' => 2000,
	'demper.burst' => 200,
	'demper.max_inflight' => 16,
	'demper.batch_size' => 10);
my $budget = 15;
my @stores = map {
	$four->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id, change_budget, change_budget_window)
	                               VALUES ('Budget $_', '3005000$_', $budget, '1 hour') RETURNING id")
} 1 .. 3;
ok(poll_until(sub {
		$four->safe_psql('postgres', "SELECT pg_stat_clear_snapshot(); SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'demper worker'")
		  =~ /^4$/m }, 60), 'part 3: four workers run');
ok(poll_until(sub { $four->safe_psql('postgres', "SELECT count(*) FROM demper.status WHERE state = 'idle'") == 4 }, 60),
	'part 3: all four are ready');
# Products interleaved by store, so that every batch holds products of every store.
$four->safe_psql('postgres', "INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
                               SELECT (ARRAY[" . join(',', @stores) . "])[1 + g % 3], g::text, 'sku-' || g, 600000, 10, now()
                                 FROM generate_series(5001, 5450) g;
                               SELECT demper.wake_workers()");
ok(poll_until(sub { $four->safe_psql('postgres', "SELECT count(*) FROM demper.product WHERE last_check_time IS NULL") == 0 }, 120),
	'part 3: every product was checked');
my %changes = map { split /\|/ } split /\n/, $four->safe_psql('postgres',
	"SELECT store_id, count(*) FROM demper.price_history WHERE changed_at > now() - interval '1 hour' GROUP BY store_id");
my %deferred = map { split /\|/ } split /\n/, $four->safe_psql('postgres',
	"SELECT store_id, count(*) FROM demper.product WHERE last_reason = 'budget_deferred' GROUP BY store_id");
my $over = 0;
for my $s (@stores)
{
	my $n = $changes{$s} // 0;
	cmp_ok($n, '<=', $budget, "part 3: store $s changed $n prices, within its budget of $budget");
	is($n, $budget, "part 3: store $s used its whole budget") if $n <= $budget;
	$over += $n > $budget ? $n - $budget : 0;
}
my $workers_wrote = $four->safe_psql('postgres', "SELECT count(DISTINCT pid) FROM demper.status WHERE state IN ('checking', 'idle')");
diag(sprintf('part 3: changes per store %s (budget %d); deferred %s; %d workers',
	join(', ', map { $changes{$_} // 0 } @stores), $budget, join(', ', map { $deferred{$_} // 0 } @stores), $workers_wrote));
reliability('change budgets with demper.workers = 4 (3 stores, 150 products each, budget 15)', 3, $over,
	sprintf('changes per store %s; lost counts changes beyond a budget', join(', ', map { $changes{$_} // 0 } @stores)));
$four->stop;
$mock->stop;
diag(sprintf('022_never_wrong took %.0f s', time - $t_start));
done_testing();
