# The HTTP engine against a marketplace that bans like Kaspi (403 for 10 s for an egress that sends
# more than 15 requests in any 1 s window): a safe rate never bans and holds its rate; a rate that
# is too fast is banned, backs off (AIMD, egress rest) and settles below the threshold; three
# egresses triple the throughput, each within its own budget; Retry-After is honoured; the circuit
# breaker opens and recovers; a stalled answer times out on time; an oversized answer is cut off.
#
# Parts 1 and 2 run side by side on two nodes and two mocks (they only measure rates, ~50 s of
# traffic each); parts 3 to 7 follow on the first node. Node B (part 2) keeps running until the end,
# so its log also shows whether AIMD's slow recovery leads to a later ban.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use JSON::PP;

my $own = '30012345';
my %ban = (enabled => JSON::PP::true, threshold => 15, window_ms => 1000, ban_ms => 10000, status => 403);

my $mock_a = start_mock(egresses => 3, synthetic => 1000000);
my $mock_b = start_mock(egresses => 1, synthetic => 1000000);
$mock_a->post('/_mock/ban', \%ban);
$mock_b->post('/_mock/ban', \%ban);
my ($p0, $p1, $p2) = @{ $mock_a->{ports} };

# Node A: the safe rate of part 1 (10 req/s, bucket of 2). Node B: 30 req/s, the default bucket
# of 4, twice the ban threshold. B's lease is long: after a ban its queue drains slowly.
my $node_a = demper_node('engine_a', $mock_a,
	'demper.requests_per_second' => 10,
	'demper.burst' => 2,
	'demper.lease_time' => "'60s'");
my $node_b = demper_node('engine_b', $mock_b,
	'demper.requests_per_second' => 30,
	'demper.burst' => 4,
	'demper.lease_time' => "'5min'");
for my $node ($node_a, $node_b)
{
	$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Shop', '$own')");
}
wait_for_worker($node_a);
wait_for_worker($node_b);

sub offer_times
{
	my ($mock, $since, $until) = @_;
	return grep { !defined $until || $_ < $until } mock_request_times($mock, $since);
}

sub ban_lines
{
	my ($mock, $since) = @_;
	return grep { $_->[2] eq 'BAN' } mock_log($mock, $since);
}

sub host_row
{
	my ($node) = @_;
	my ($h) = grep { $_->{kind} eq 'host' } http_status($node);
	return $h;
}

sub product_row
{
	my ($node, $code) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT row_to_json(p) FROM (SELECT price, last_check_time, extract(epoch FROM last_check_time)::float8 AS checked_epoch, "
		  . "last_error_class, last_error, last_reason, (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) AS lease_until, check_failures FROM demper.product WHERE product_code = '$code') p");
	return $out eq '' ? undef : JSON::PP->new->decode($out);
}

# ---------------------------------------------------------------------------------------------
# 1 + 2. 2,000 products due now on each node; both runs start together.
my $t0 = time;
insert_products($node_a, map { { code => $_, price => 600000, min => 10 } } 1 .. 2000);
insert_products($node_b, map { { code => $_, price => 600000, min => 10 } } 1 .. 2000);

my (@a_first, @b_first);
ok( poll_until(
		sub {
			@a_first = offer_times($mock_a, $t0) unless @a_first;
			@b_first = offer_times($mock_b, $t0) unless @b_first;
			@a_first && @b_first;
		},
		60),
	'parts 1 and 2: both nodes send requests');
my $start_a = $a_first[0] // time;
my $start_b = $b_first[0] // time;
my ($run_a, $run_b) = (40, 52);
ok( poll_until(
		sub {
			my @a = offer_times($mock_a, $start_a);
			my @b = offer_times($mock_b, $start_b);
			@a && @b && $a[-1] >= $start_a + $run_a && $b[-1] >= $start_b + $run_b;
		},
		$run_b + 90),
	"part 1 ran $run_a s and part 2 $run_b s of traffic");

# ---- part 1: the safe rate
{
	my @t = offer_times($mock_a, $start_a, $start_a + $run_a);
	my $n = scalar @t;
	my $span = $n > 1 ? $t[-1] - $t[0] : 0;
	my $mean = $span > 0 ? ($n - 1) / $span : 0;
	my $max = max_in_window(1, @t);
	my @bans = grep { $_->[0] < $start_a + $run_a } ban_lines($mock_a, $start_a);
	my @forbidden = grep { $_->[2] ne 'BAN' && $_->[0] < $start_a + $run_a && $_->[4] eq '403' }
	  mock_log($mock_a, $start_a);
	my $stats = $mock_a->stats;
	diag(sprintf('part 1 (rate 10, burst 2): %d requests in %.2f s, mean %.2f req/s, max %d in any 1 s window '
		  . '(mock max_rps_window %s), %d bans, %d answers 403',
		$n, $span, $mean, $max, $stats->{max_rps_window}{$p0} // 'n/a', $stats->{bans}, scalar @forbidden));
	is($stats->{bans}, 0, 'part 1: the mock banned nobody (stats bans = 0)');
	is(scalar @bans, 0, 'part 1: no BAN line in the request log');
	is(scalar @forbidden, 0, 'part 1: no request was answered 403');
	cmp_ok($max, '<=', 12, 'part 1: no 1 s window holds more than rate + burst (12) requests');
	cmp_ok($n, '>=', 300, 'part 1: at least 300 requests in 40 s (the run is long enough to judge)');
	ok($mean >= 9 && $mean <= 11, 'part 1: the mean rate is within 10 % of 10 req/s')
	  or diag("mean rate $mean");
}

# ---- part 2: too fast
my %b_stats_at_52;
{
	my @log = mock_log($mock_b, $start_b);
	my @bans = map { $_->[0] - $start_b } grep { $_->[2] eq 'BAN' && $_->[0] < $start_b + $run_b } @log;
	my @late_t = offer_times($mock_b, $start_b + 30, $start_b + $run_b);
	my @late_bans = grep { $_ >= 30 } @bans;
	my $late_max = max_in_window(1, @late_t);
	my $early_max = max_in_window(1, offer_times($mock_b, $start_b, $start_b + 30));
	my @all = offer_times($mock_b, $start_b, $start_b + $run_b);
	my @per5;
	$per5[ int(($_ - $start_b) / 5) ]++ for @all;
	my $s = demper_stats($node_b);
	%b_stats_at_52 = %$s;
	my $h = host_row($node_b) // {};
	my ($eg) = grep { $_->{kind} eq 'egress' } http_status($node_b);
	my $forbidden = grep { $_->[2] ne 'BAN' && $_->[4] eq '403' && $_->[0] < $start_b + $run_b } @log;
	diag(sprintf('part 2 (rate 30, burst 4): %d requests in %d s, %d answered 403; bans at %s s after the first request; '
		  . 'last ban at %s s',
		scalar @all, $run_b, $forbidden, join(', ', map { sprintf('%.2f', $_) } @bans) || 'none',
		@bans ? sprintf('%.2f', $bans[-1]) : 'n/a'));
	diag('part 2: requests per 5 s from the start: ' . join(' ', map { $_ // 0 } @per5));
	diag(sprintf('part 2: max 1 s window %d in the first 30 s, %d from 30 s to %d s (%d requests there, %.2f req/s)',
		$early_max, $late_max, $run_b, scalar @late_t, @late_t / ($run_b - 30)));
	diag(sprintf('part 2: demper_stats bans %d, egress_cooldowns %d, http_retries %d, failed_ban %d, checks_ok %d; '
		  . 'http_status host %s effective_rate %.2f state %s bans %d; egress %s rate %.2f state %s',
		$s->{bans}, $s->{egress_cooldowns}, $s->{http_retries}, $s->{failed_ban}, $s->{checks_ok},
		$h->{name} // '?', $h->{effective_rate} // -1, $h->{state} // '?', $h->{bans} // -1,
		$eg->{name} // '?', $eg->{effective_rate} // -1, $eg->{state} // '?'));
	cmp_ok(scalar @bans, '>', 0, 'part 2: 30 req/s is banned (the mock logged at least one BAN)');
	cmp_ok($s->{bans}, '>', 0, 'part 2: demper_stats counts the ban signals');
	cmp_ok($s->{egress_cooldowns}, '>', 0, 'part 2: the egress was rested after a ban signal');
	cmp_ok($h->{effective_rate} // 999, '<', 30, 'part 2: http_status shows the host\'s effective rate lowered below 30');
	is(scalar @late_bans, 0, 'part 2: no new ban from 30 s after the start to the end of the run');
	cmp_ok($late_max, '<=', 15, 'part 2: from 30 s on no 1 s window holds more than the ban threshold (15)');
	cmp_ok(scalar @late_t, '>=', ($run_b - 30) * 4,
		'part 2: the engine still sends from 30 s on (at least 4 req/s): it settled, it did not stop');
}

# ---------------------------------------------------------------------------------------------
# 3. Three egresses. Node A keeps its rate of 10 per egress; first one proxy (the mock's second
# port), then all three ports as proxies, 15 s each. The log's second column is the egress.
my $window = 15;

sub phase_start
{
	my ($since, @ports) = @_;
	my %want = map { $_ => 1 } @ports;
	my $first;
	poll_until(
		sub {
			($first) = grep { $_->[2] ne 'BAN' && $want{ $_->[1] } } mock_log($mock_a, $since);
			defined $first;
		},
		30);
	return $first ? $first->[0] : undef;
}

sub phase_lines
{
	my ($from) = @_;
	poll_until(sub { my @t = offer_times($mock_a, $from); @t && $t[-1] >= $from + $window }, $window + 60);
	return grep { $_->[2] ne 'BAN' && $_->[3] =~ m{/offer-view/offers/} && $_->[0] < $from + $window }
	  mock_log($mock_a, $from);
}

my $t_one = reload_conf($node_a, 'demper.proxies' => "'http://127.0.0.1:$p1'");
my $one_start = phase_start($t_one, $p1);
ok(defined $one_start, 'part 3: requests go through the proxy after reloading demper.proxies');
my @one = defined $one_start ? phase_lines($one_start) : ();
my %one_by = ();
$one_by{ $_->[1] }++ for @one;

my $t_three = reload_conf($node_a,
	'demper.proxies' => "'http://127.0.0.1:$p0, http://127.0.0.1:$p1, http://127.0.0.1:$p2'");
my $three_start = phase_start($t_three, $p0, $p2);
ok(defined $three_start, 'part 3: requests go through the new proxies after the reload');
my @three = defined $three_start ? phase_lines($three_start) : ();
my %three_by;
$three_by{ $_->[1] }++ for @three;
my %max_by;
for my $port ($p0, $p1, $p2)
{
	$max_by{$port} = max_in_window(1, map { $_->[0] } grep { $_->[1] eq $port } @three);
}
my $rate_one = @one / $window;
my $rate_three = @three / $window;
diag(sprintf('part 3: one egress %d requests in %d s (%.2f req/s, by port %s); three egresses %d requests (%.2f req/s); '
	  . 'ratio %.2f; reload to first request via the new egresses %.2f s',
	scalar @one, $window, $rate_one, join(', ', map { "$_: $one_by{$_}" } sort keys %one_by),
	scalar @three, $rate_three, $rate_one > 0 ? $rate_three / $rate_one : 0,
	defined $three_start ? $three_start - $t_three : -1));
diag('part 3: three egresses, per port: '
	  . join('; ', map { sprintf('%s: %d requests, max %d in 1 s', $_, $three_by{$_} // 0, $max_by{$_}) } $p0, $p1, $p2));
cmp_ok($rate_three, '>=', 2.4 * $rate_one, 'part 3: three egresses carry at least 2.4 times the throughput of one');
for my $i (0 .. 2)
{
	my $port = ($p0, $p1, $p2)[$i];
	cmp_ok($three_by{$port} // 0, '>', 0, "part 3: egress " . ($i + 1) . " carries requests");
	cmp_ok($max_by{$port}, '<=', 12, "part 3: egress " . ($i + 1) . " never exceeds rate + burst (12) in a 1 s window");
}
is(scalar(grep { $_->[2] eq 'BAN' } mock_log($mock_a, $start_a)), 0, 'parts 1 and 3: node A was never banned');

# ---------------------------------------------------------------------------------------------
# Quiet node A down: no more bulk products; wait until nothing is in flight or queued.
$node_a->safe_psql('postgres', 'UPDATE demper.product SET bot_active = false WHERE product_code::bigint <= 2000');
ok( poll_until(
		sub {
			my $s = demper_stats($node_a);
			$s->{in_flight} == 0 && $s->{queued} == 0;
		},
		60),
	'node A drained its bulk products');
$mock_a->reset;    # faults, ban emulation (now off), stats
reload_conf($node_a,
	'demper.proxies' => "''",
	'demper.requests_per_second' => 50,
	'demper.burst' => 10,
	'demper.egress_cooldown' => "'1s'");

# ---------------------------------------------------------------------------------------------
# 4. Retry-After honoured: the first answer is 429 with Retry-After: 2, then the product is healthy.
# 429 is a ban signal, so the egress also rests (demper.egress_cooldown): 1 s first, so that
# Retry-After is what delays the retry; then 4 s, so that the rest is.
sub retry_after_case
{
	my ($code, $cooldown) = @_;
	my $offers = [['M1', 50000], ['M2', 60000], [$own, 40000]];
	my $expected = expected_price(price => 70000, min_price => 1000, max_price => undef, step => 1,
		own => $own, offers => $offers);
	$mock_a->set_offers($code, $offers);
	$mock_a->fault(product => "$code", mode => 'status', status => 429, retry_after => '2', count => 1);
	my $since = time;
	insert_products($node_a, { code => $code, price => 70000, min => 1000 });
	my $row;
	ok( poll_until(
			sub {
				$row = product_row($node_a, $code);
				defined $row->{last_check_time};
			},
			60),
		"part 4 (egress_cooldown $cooldown s): the product was checked");
	my @req = grep { $_->[2] ne 'BAN' && $_->[3] eq "/yml/offer-view/offers/$code" } mock_log($mock_a, $since);
	my $gap = @req >= 2 ? $req[1][0] - $req[0][0] : -1;
	diag(sprintf('part 4 (Retry-After: 2, egress_cooldown %d s, backoff_base 0.5 s): %d requests, statuses %s, '
		  . 'second request %.3f s after the first',
		$cooldown, scalar @req, join(',', map { $_->[4] } @req), $gap));
	is(join(',', map { $_->[4] } @req), '429,200', "part 4 (egress_cooldown $cooldown s): two requests, 429 then 200");
	cmp_ok($gap, '>=', 1.9, "part 4 (egress_cooldown $cooldown s): the retry came at least 1.9 s after the 429 (Retry-After: 2)");
	is($row->{last_error_class}, undef, "part 4 (egress_cooldown $cooldown s): the check succeeded");
	is($row->{price}, $expected, "part 4 (egress_cooldown $cooldown s): the price follows the rule ($expected)");
	return $gap;
}
reload_conf($node_a, 'demper.egress_cooldown' => "'1s'");
my $gap1 = retry_after_case(4000001, 1);
cmp_ok($gap1, '<', 6, 'part 4: with a 1 s egress rest the retry comes soon after Retry-After (within 6 s)');
reload_conf($node_a, 'demper.egress_cooldown' => "'4s'");
my $gap4 = retry_after_case(4000002, 4);
cmp_ok($gap4, '>=', 3.9, 'part 4: with a 4 s egress rest the retry waits for the rest (at least 3.9 s)');
{
	my $s = demper_stats($node_a);
	diag(sprintf('part 4: demper_stats bans %d, egress_cooldowns %d, http_retries %d', $s->{bans},
		$s->{egress_cooldowns}, $s->{http_retries}));
	cmp_ok($s->{http_retries}, '>=', 2, 'part 4: demper_stats counts the retries');
}

# ---------------------------------------------------------------------------------------------
# 5. The circuit breaker opens on a run of 500s and closes again once the host answers.
reload_conf($node_a,
	'demper.breaker_threshold' => 3,
	'demper.breaker_cooldown' => "'2s'",
	'demper.egress_cooldown' => "'1s'");
my @p5;
for my $i (1 .. 20)
{
	my $code = 5000000 + $i;
	my $offers = [['M1', 20000 + $i], ['M2', 30000]];
	$mock_a->set_offers($code, $offers);
	push @p5, { code => $code, price => 90000, min => 1000,
		expected => expected_price(price => 90000, min_price => 1000, max_price => undef, step => 1,
			own => $own, offers => $offers) };
}
my $p5_where = 'product_code::bigint BETWEEN 5000001 AND 5000020';
my $opens_before = demper_stats($node_a)->{breaker_opens};
$mock_a->fault(mode => 'status', status => 500);
my $t_fault = time;
insert_products($node_a, @p5);
my %seen_state;
my $open_at;
ok( poll_until(
		sub {
			my $h = host_row($node_a);
			return 0 unless $h;
			$seen_state{ $h->{state} }++;
			$open_at = time if $h->{state} eq 'open';
			$h->{state} eq 'open';
		},
		60),
	'part 5: http_status() shows the host\'s breaker open');
my $s5 = demper_stats($node_a);
diag(sprintf('part 5: breaker open %.2f s after the fault; breaker_opens %d (before %d); failed_http_5xx %d; states seen %s',
	($open_at // time) - $t_fault, $s5->{breaker_opens}, $opens_before, $s5->{failed_http_5xx},
	join(',', sort keys %seen_state)));
cmp_ok($s5->{breaker_opens} - $opens_before, '>=', 1, 'part 5: demper_stats counts the breaker opening');
my ($moved, $hist) = split /\|/, $node_a->safe_psql('postgres',
	"SELECT (SELECT count(*) FROM demper.product WHERE $p5_where AND price <> 90000), "
	  . "(SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE $p5_where)");
is("$moved|$hist", '0|0', 'part 5: no price changed while every answer was 500');

my $db_clear = $node_a->safe_psql('postgres', 'SELECT now()');
$mock_a->fault(mode => 'none');
my $t_clear = time;
my $closed_at;
ok( poll_until(
		sub {
			my $h = host_row($node_a);
			$closed_at = time if $h && $h->{state} eq 'closed';
			defined $closed_at;
		},
		60),
	'part 5: the breaker closes again once the host answers');
diag(sprintf('part 5: breaker closed %.2f s after the fault was cleared', ($closed_at // time) - $t_clear));
# Products whose check failed wait for their back-off (10 s, 20 s...): make them due now. Leased
# ones (queued behind the breaker) finish by themselves.
ok( poll_until(
		sub {
			$node_a->safe_psql('postgres',
				"SELECT demper.check_now(id) FROM demper.product WHERE $p5_where AND last_error_class IS NOT NULL "
				  . "AND ((SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL OR (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) < now()) AND next_check_at > now()");
			$node_a->safe_psql('postgres',
				"SELECT count(*) FROM demper.product WHERE $p5_where AND (last_check_time IS NULL OR last_check_time <= '$db_clear' "
				  . "OR last_error_class IS NOT NULL)") eq '0';
		},
		90),
	'part 5: every product is checked successfully after the breaker closed');
my %got5 = map { split /\|/ } split /\n/,
  $node_a->safe_psql('postgres', "SELECT product_code, price FROM demper.product WHERE $p5_where");
is(scalar(grep { ($got5{ $_->{code} } // -1) != $_->{expected} } @p5), 0, 'part 5: every product ends at the rule\'s price');
is($node_a->safe_psql('postgres',
	"SELECT count(*), count(DISTINCT h.product_id), count(*) FILTER (WHERE h.old_price <> 90000 OR h.new_price <> p.price) "
	  . "FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE $p5_where"),
	'20|20|0', 'part 5: one history row per product, from the old price to the rule\'s: no change came from a 500');

# ---------------------------------------------------------------------------------------------
# 6. An answer that stalls after its headers times out after demper.http_timeout.
reload_conf($node_a, 'demper.http_timeout' => "'1s'", 'demper.max_attempts' => 1);
my $code6 = 6000001;
$mock_a->set_offers($code6, [['M1', 5000]]);
$mock_a->fault(product => "$code6", mode => 'stall_after_headers');
my $since6 = time;
insert_products($node_a, { code => $code6, price => 9000, min => 100 });
my $row6;
ok(poll_until(sub { $row6 = product_row($node_a, $code6); defined $row6->{last_error_class} }, 60),
	'part 6: the stalled check ended');
is($row6->{last_error_class}, 'timeout', 'part 6: the stalled check failed as timeout');
my @req6 = grep { $_->[2] ne 'BAN' && $_->[3] eq "/yml/offer-view/offers/$code6" } mock_log($mock_a, $since6);
my $elapsed6 = @req6 ? ($row6->{checked_epoch} // 0) - $req6[0][0] : -1;
diag(sprintf('part 6 (http_timeout 1 s): request arrived %.3f s after the insert; failure recorded %.3f s after the request arrived; '
	  . 'error "%s"; %d request(s)',
	@req6 ? $req6[0][0] - $since6 : -1, $elapsed6, $row6->{last_error} // '', scalar @req6));
cmp_ok(scalar @req6, '>=', 1, 'part 6: the mock saw the request');
ok($elapsed6 > 0 && $elapsed6 < 10, 'part 6: the failure was recorded less than 10 s after the request arrived');
is($row6->{price}, 9000, 'part 6: the price did not change');

# ---------------------------------------------------------------------------------------------
# 7. An answer larger than demper.max_response_size is cut off: too_large, no price change.
reload_conf($node_a, 'demper.max_response_size' => "'64kB'", 'demper.http_timeout' => "'5s'");
my $code7 = 7000001;
$mock_a->set_offers($code7, [['M1', 5000]]);
$mock_a->fault(product => "$code7", mode => 'huge', size_bytes => 1000000);
my $too_large_before = demper_stats($node_a)->{failed_too_large};
insert_products($node_a, { code => $code7, price => 9000, min => 100 });
my $row7;
ok(poll_until(sub { $row7 = product_row($node_a, $code7); defined $row7->{last_error_class} }, 60),
	'part 7: the oversized check ended');
is($row7->{last_error_class}, 'too_large', 'part 7: the oversized answer failed as too_large');
my $too_large = demper_stats($node_a)->{failed_too_large};
diag(sprintf('part 7: error "%s"; failed_too_large %d (before %d)', $row7->{last_error} // '', $too_large, $too_large_before));
cmp_ok($too_large, '>=', 1, 'part 7: demper_stats counts failed_too_large');
is($row7->{price}, 9000, 'part 7: the price did not change');
is($node_a->safe_psql('postgres',
	"SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE p.product_code IN ('$code6', '$code7')"),
	'0', 'parts 6 and 7: no price history for the failed checks');

# ---------------------------------------------------------------------------------------------
# Node B ran on at 30 req/s configured all along: does AIMD's recovery (+1 req/s per 10 s clean,
# host bucket of 4) bring it back over the threshold? Figures only.
{
	my $end = time;
	my @bans = map { $_->[0] - $start_b } ban_lines($mock_b, $start_b);
	my @all = offer_times($mock_b, $start_b);
	my @per10;
	$per10[ int(($_ - $start_b) / 10) ]++ for @all;
	my $s = demper_stats($node_b);
	my $h = host_row($node_b) // {};
	diag(sprintf('part 2, whole run of %.0f s: bans at %s s; requests per 10 s: %s; demper_stats bans %d, egress_cooldowns %d; '
		  . 'host effective_rate %.2f',
		$end - $start_b, join(', ', map { sprintf('%.1f', $_) } @bans), join(' ', map { $_ // 0 } @per10),
		$s->{bans}, $s->{egress_cooldowns}, $h->{effective_rate} // -1));
	my @after = grep { $_ >= $run_b } @bans;
	diag(sprintf('part 2: %d ban(s) after the %d s measured window (AIMD re-ban as the rate recovers)', scalar @after, $run_b))
	  if @after;
}

$node_a->stop;
$node_b->stop;
$mock_a->stop;
$mock_b->stop;
done_testing();
