# Publishing (issue 5): every price change reaches the mock marketplace's merchant endpoint as
# the latest decided price; cookies never leak; each merchant's push budget holds; a 429 pauses
# that store only; a 401 parks its pushes until new credentials; kill -9 loses no push; a fast
# competitor's moves are coalesced; the push counters move.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $t_start = time;
my $mock = start_mock();
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $key_file = write_key_file("$tmp/demper.key");
my $push_url = 'http://127.0.0.1:' . $mock->port . '/pricefeed/upload/merchant/process';
my $node = demper_node('publish', $mock,
	'demper.credentials_key_file' => "'$key_file'",
	'demper.push_url' => "'$push_url'",
	'demper.push_ban_pause' => "'20s'",
	restart_after_crash => 'on');    # the test framework turns it off

sub psql { return $node->safe_psql('postgres', $_[0]) }

sub secret { return join('', map { sprintf('%02x', int(rand(256))) } 1 .. 8) }

# Stores: one per part, each its own merchant.
my %store;
for my $s (['pub', '30010001'], ['rate', '30010003'], ['login', '30010004'], ['kill', '30010005'],
	['coal', '30010006'], ['fail', '30010007'])
{
	my ($name, $merchant) = @$s;
	my $id = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Shop $name', '$merchant') RETURNING id");
	$store{$name} = { id => $id, merchant => $merchant,
		session => "SESS$name" . secret(), sid => "SID$name" . secret() };
	my $fp = store_credentials($node, $mock, $id, $merchant, $store{$name}{session}, $store{$name}{sid});
	unlike($fp, qr/SESS|SID/, "set_credentials($name) returns no cookie (fingerprint $fp)");
}
is(psql("SELECT string_agg(DISTINCT push_mode, ',') FROM demper.store"), 'api',
	'set_credentials switches the stores to push_mode api');

# Products: competitor C1 at comp, our own offer at the current price (excluded by the rule).
my $code = 9100;
my %products;    # store name => [ {code, sku, city, comp, expected, id} ]
sub add_products
{
	my ($name, $n, $comp0) = @_;
	for my $i (0 .. $n - 1)
	{
		my $p = { store => $name, code => $code++, sku => "$name-" . ($i + 1), comp => $comp0 + 10 * $i,
			city => ($i % 4 == 3 ? '710000000' : undef) };
		$p->{expected} = $p->{comp} - 1;
		$mock->set_offers($p->{code}, [['C1', $p->{comp}], [$store{$name}{merchant}, 10000]]);
		push @{ $products{$name} }, $p;
	}
}
add_products('pub', 20, 8000);
add_products('rate', 30, 7000);
add_products('login', 3, 6000);
add_products('kill', 5, 5000);
add_products('coal', 1, 9000);
add_products('fail', 1, 9500);
my @all = map { @{ $products{$_} } } sort keys %products;
psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, step, city_id, availabilities, next_check_at) VALUES "
	  . join(',', map {
		  sprintf("(%d, '%s', '%s', 10000, 1000, 1, %s, '%s', now())", $store{ $_->{store} }{id}, $_->{code}, $_->{sku},
			  defined $_->{city} ? "'$_->{city}'" : 'NULL', $DEFAULT_AVAILABILITIES)
	  } @all)
	  . '; SELECT demper.wake_workers()');
my %id_of = map { split /\|/ } split /\n/, psql('SELECT sku, id FROM demper.product');
$_->{id} = $id_of{ $_->{sku} } for @all;

sub db_prices { return map { split /\|/ } split /\n/, psql('SELECT sku, price FROM demper.product') }

# wait_prices polls until every given product has its expected price; returns the mismatches.
sub wait_prices
{
	my ($timeout, @ps) = @_;
	my @bad;
	poll_until(sub {
		my %price = db_prices();
		@bad = grep { $price{ $_->{sku} } != $_->{expected} } @ps;
		return !@bad;
	}, $timeout);
	diag('not at the expected price: ' . join(', ', map { $_->{sku} } @bad)) if @bad;
	return scalar @bad;
}

# move_competitor lowers the competitor of each product by $delta and checks them now.
sub move_competitor
{
	my ($delta, @ps) = @_;
	for my $p (@ps)
	{
		$p->{comp} -= $delta;
		$p->{expected} = $p->{comp} - 1;
		$mock->set_offers($p->{code}, [['C1', $p->{comp}], [$store{ $p->{store} }{merchant}, $p->{expected} + 1]]);
	}
	psql('SELECT demper.check_now(id) FROM demper.product WHERE id IN (' . join(',', map { $_->{id} } @ps) . ')');
}

# push_mismatches: for each product, the LAST accepted push for its merchant and sku must carry its
# current price, its sku, its merchant and one city price for its listing's city.
sub push_mismatches
{
	my (@ps) = @_;
	my %price = db_prices();
	my %last;
	for my $push (mock_pushes($mock))
	{
		$last{"$push->{merchantUid}/$push->{sku}"} = $push;
	}
	my @bad;
	for my $p (@ps)
	{
		my $m = $store{ $p->{store} }{merchant};
		my $push = $last{"$m/$p->{sku}"};
		my $city = $p->{city} // '750000000';
		my $want = $price{ $p->{sku} };
		my $ok = $push && $push->{price} == $want && $push->{sku} eq $p->{sku} && $push->{merchantUid} eq $m
		  && ref $push->{cityPrices} eq 'ARRAY' && @{ $push->{cityPrices} } == 1
		  && $push->{cityPrices}[0]{cityId} eq $city && $push->{cityPrices}[0]{value} == $want;
		push @bad, "$p->{sku} (db $want, last push " . ($push ? JSON::PP->new->canonical->encode($push) : 'none') . ')'
		  unless $ok;
	}
	return @bad;
}

sub wait_pushed
{
	my ($timeout, @ps) = @_;
	my @bad;
	poll_until(sub { @bad = push_mismatches(@ps); !@bad }, $timeout);
	diag('last push differs: ' . join('; ', @bad[0 .. ($#bad < 4 ? $#bad : 4)])) if @bad;
	return scalar @bad;
}

sub outbox_counts
{
	my ($name) = @_;
	my ($pending, $done, $failed, $done_job) = split /\|/, psql(
		"SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'done'),
		        count(*) FILTER (WHERE status = 'failed'),
		        count(*) FILTER (WHERE status = 'done' AND job_id ~ '^job-[0-9]+\$')
		   FROM demper.outbox WHERE store_id = $store{$name}{id}");
	return { pending => $pending, done => $done, failed => $failed, done_job => $done_job };
}

sub store_row
{
	my ($name) = @_;
	my $out = psql("SELECT row_to_json(x) FROM (SELECT needs_login, extract(epoch FROM push_paused_until)::float8 AS paused_until,
		 last_push_error, push_paused_until > now() AS paused FROM demper.store WHERE id = $store{$name}{id}) x");
	return decode_json($out);
}

# ---------------------------------------------------------------------------------------------
# 1. Every change reaches the mock as the latest decided price.
is(wait_prices(60, @all), 0, 'part 1: every product converged to the default rule');
my $t_converged = time;
ok(poll_until(sub { my $c = outbox_counts('pub'); $c->{pending} == 0 && $c->{done} == 20 }, 60),
	'part 1: the pub store has 20 done outbox rows and none pending');
my $c = outbox_counts('pub');
is($c->{done_job}, 20, 'part 1: every done outbox row of the pub store has the job_id the mock answered');
is(wait_pushed(30, @{ $products{pub} }), 0,
	'part 1: for each of 20 products the last accepted push has its price, sku, merchantUid and city price');
is(psql("SELECT pending FROM demper.push_status WHERE store_id = $store{pub}{id}"), '0',
	'part 1: push_status shows 0 pending for the pub store');
diag(sprintf('part 1: all converged and pushed %.1f s after start (pub: %d pushes at the mock)',
	time - $t_start, scalar(mock_pushes($mock, $store{pub}{merchant}))));

# ---------------------------------------------------------------------------------------------
# 3a. Per-merchant budget: 30 changes for one merchant at push_rate 2.
ok(poll_until(sub { my $c = outbox_counts('rate'); $c->{pending} == 0 && $c->{done} == 30 }, 60),
	'part 3: the rate store\'s 30 pushes are done');
is(wait_pushed(30, @{ $products{rate} }), 0, 'part 3: the rate store\'s last pushes carry the current prices');
my @rate_times = sort { $a <=> $b } map { $_->{t} } mock_pushes($mock, $store{rate}{merchant});
my $max_window = max_in_window(1, @rate_times);
diag(sprintf('part 3: %d accepted pushes for merchant %s over %.2f s, max %d in any 1 s window',
	scalar(@rate_times), $store{rate}{merchant}, @rate_times ? $rate_times[-1] - $rate_times[0] : 0, $max_window));
cmp_ok(scalar(@rate_times), '>=', 30, 'part 3: the mock accepted at least 30 pushes for that merchant');
cmp_ok($max_window, '<=', 3, 'part 3: no 1 s window holds more than 3 pushes of one merchant (push_rate 2)');
is($mock->stats->{push_bans}, 0, 'part 3: the mock banned no merchant at push_rate 2');
my $stats;
ok(poll_until(sub { psql("SELECT count(*) FROM demper.outbox WHERE status = 'pending'") == 0 }, 30),
	'part 1: no push of the first round is left pending');
my $done_rows = psql("SELECT count(*) FROM demper.outbox WHERE status = 'done'");
ok(poll_until(sub { $stats = demper_stats($node); $stats->{pushes_ok} >= $done_rows }, 10),
	"part 7: pushes_ok counts the first round of accepted pushes ($done_rows done rows)");
diag("part 7: after the first round: pushes_ok $stats->{pushes_ok}, pushes_failed $stats->{pushes_failed}, pushes_retried $stats->{pushes_retried}");
my $stats_before_429 = $stats;

# 3b. A 429 pauses that store only.
$mock->post('/_mock/push_limits', { push_limit_rps => 1, push_ban_ms => 5000 });
my $t429 = time;
my @rate_moved = @{ $products{rate} }[0 .. 3];
move_competitor(100, @rate_moved);
my $row;
ok(poll_until(sub { $row = store_row('rate'); $row->{paused} }, 60),
	'part 3: a 429 sets the rate store\'s push_paused_until in the future');
like($row->{last_push_error} // '', qr/429/, 'part 3: the rate store\'s last_push_error names the 429');
my $paused_until = $row->{paused_until};
my ($ban) = grep { $_->[2] eq 'BAN' && $_->[3] eq "merchant:$store{rate}{merchant}" } mock_log($mock);
ok($ban, 'part 3: the mock banned the rate merchant');
my $ban_t = $ban ? $ban->[0] : $t429;
diag(sprintf('part 3: ban at +%.2f s after the moves, paused until +%.2f s after the ban', $ban_t - $t429,
	$paused_until - $ban_t));
cmp_ok($paused_until - $ban_t, '>', 15, 'part 3: the pause lasts about demper.push_ban_pause (20 s)');
$mock->post('/_mock/push_limits', { push_limit_rps => 3, push_ban_ms => 5000 });
is(wait_prices(30, @rate_moved), 0, 'part 3: the rate store\'s prices still change during the pause');
my $rate_outbox = outbox_counts('rate');
is($rate_outbox->{failed}, 0, 'part 3: no push of the paused store is marked failed');
cmp_ok($rate_outbox->{pending}, '>=', 3, "part 3: the paused store's pushes stay pending ($rate_outbox->{pending})");

# Another merchant keeps publishing during the pause.
my @pub_moved = @{ $products{pub} }[0 .. 2];
move_competitor(50, @pub_moved);
is(wait_prices(30, @pub_moved), 0, 'part 3: the pub store\'s new prices are decided');
is(wait_pushed(15, @pub_moved), 0, 'part 3: the other merchant\'s new prices reach the mock during the pause');
my %moved = map { $_->{sku} => $_->{expected} } @pub_moved;
my @pub_new = grep { defined $moved{ $_->{sku} } && $_->{price} == $moved{ $_->{sku} } }
  mock_pushes($mock, $store{pub}{merchant});
my @pub_t = sort { $a <=> $b } map { $_->{t} } @pub_new;
diag(sprintf('part 3: the other merchant\'s 3 pushes arrived +%.2f..+%.2f s after the ban (pause ends +%.2f)',
	(@pub_t ? ($pub_t[0] - $ban_t, $pub_t[-1] - $ban_t) : (0, 0)), $paused_until - $ban_t));
ok(@pub_t == 3 && $pub_t[0] > $ban_t && $pub_t[-1] < $paused_until,
	'part 3: the other merchant\'s pushes arrived after the ban and before the pause ended');
my $pub_row = store_row('pub');
ok(!defined $pub_row->{paused_until} && !$pub_row->{needs_login},
	'part 3: nothing paused the other store (push_paused_until null, needs_login false)');

# A new price of the paused store during the pause (after the mock's own 5 s ban ended) must wait
# for the pause too.
poll_until(sub { time > $ban_t + 6 }, 30);
my @rate_late = ($products{rate}[4]);
move_competitor(100, @rate_late);
is(wait_prices(30, @rate_late), 0, 'part 3: a new price of the paused store is decided during the pause');
push @rate_moved, @rate_late;
ok(poll_until(sub { time > $paused_until + 0.5 && outbox_counts('rate')->{pending} == 0 }, 60),
	'part 3: after the pause the paused store\'s pushes complete');
is(wait_pushed(20, @rate_moved), 0, 'part 3: after the pause the paused store\'s last pushes carry its latest prices');
my @early = grep { $_->{t} > $ban_t + 0.5 && $_->{t} < $paused_until - 0.5 } mock_pushes($mock, $store{rate}{merchant});
diag(sprintf('part 3: paused store pushes accepted during its pause: %s',
	join(', ', map { sprintf('%s=%d at +%.2f s', $_->{sku}, $_->{price}, $_->{t} - $ban_t) } @early) || 'none'));
is(scalar(@early), 0, 'part 3: no push of the paused store reached the mock during its pause, even for a new price');
$stats = demper_stats($node);
cmp_ok($stats->{pushes_retried}, '>', $stats_before_429->{pushes_retried},
	"part 7: pushes_retried moved with the 429 ($stats_before_429->{pushes_retried} -> $stats->{pushes_retried})");

# ---------------------------------------------------------------------------------------------
# 4. 401: the store needs a new login; its pushes wait, checks go on.
my $stats_before_401 = $stats;
my $t401 = time;
$mock->request('PUT', "/_mock/merchant/$store{login}{merchant}", { expired => JSON::PP::true });
my @login = @{ $products{login} };
move_competitor(100, @login);
is(wait_prices(30, @login), 0, 'part 4: the login store\'s new prices are decided');
ok(poll_until(sub { store_row('login')->{needs_login} }, 30), 'part 4: a 401 sets needs_login');
like(store_row('login')->{last_push_error} // '', qr/session|login/i, 'part 4: last_push_error says the session expired');
my $pending_ok = "SELECT count(*) FROM demper.outbox o JOIN demper.product p ON p.id = o.product_id
	WHERE o.store_id = $store{login}{id} AND o.status = 'pending' AND o.price = p.price";
ok(poll_until(sub { psql($pending_ok) == 3 }, 30), 'part 4: the 3 pushes stay pending with the current prices');
move_competitor(100, $login[0]);
is(wait_prices(30, $login[0]), 0, 'part 4: checks go on while the store needs a login (price changed again)');
ok(poll_until(sub { psql($pending_ok) == 3 }, 10), 'part 4: the pending push follows the newer price');
my $c4 = outbox_counts('login');
is($c4->{failed}, 0, 'part 4: no push of the logged-out store is failed (none lost)');
ok(store_row('login')->{needs_login}, 'part 4: needs_login stays set until new credentials');
is(scalar(grep { $_->{t} >= $t401 } mock_pushes($mock, $store{login}{merchant})), 0,
	'part 4: nothing was accepted for the logged-out merchant');
diag('part 4: mock answers so far: ' . JSON::PP->new->canonical->encode($mock->stats->{by_status}));
$mock->request('PUT', "/_mock/merchant/$store{login}{merchant}", { expired => JSON::PP::false });
store_credentials($node, $mock, $store{login}{id}, $store{login}{merchant}, $store{login}{session}, $store{login}{sid});
ok(!store_row('login')->{needs_login}, 'part 4: set_credentials clears needs_login');
ok(poll_until(sub { outbox_counts('login')->{pending} == 0 }, 30), 'part 4: the pending pushes complete after set_credentials');
is(wait_pushed(15, @login), 0, 'part 4: the mock got the latest price of each of the 3 products');
$stats = demper_stats($node);
cmp_ok($stats->{pushes_retried}, '>', $stats_before_401->{pushes_retried},
	"part 7: pushes_retried moved with the 401 ($stats_before_401->{pushes_retried} -> $stats->{pushes_retried})");

# ---------------------------------------------------------------------------------------------
# 5. kill -9 between decide and push loses no push. Pushes first fail (closed port) and retry.
my $stats_before_kill = $stats;
reload_conf($node, 'demper.push_url' => "'http://127.0.0.1:1/pricefeed/upload/merchant/process'");
usleep(500_000);    # pacing: the worker reloads on SIGHUP
my @kill = @{ $products{kill} };
move_competitor(100, @kill);
is(wait_prices(30, @kill), 0, 'part 5: the kill store\'s new prices are decided');
my $attempted = "SELECT count(*) FROM demper.outbox WHERE store_id = $store{kill}{id} AND status = 'pending'
	AND attempts >= 1 AND last_error IS NOT NULL";
ok(poll_until(sub { psql($attempted) == 5 }, 30), 'part 5: the 5 pushes failed against the closed port and wait to retry')
  or diag("part 5: outbox rows:\n" . psql("SELECT status, attempts, last_error IS NULL, last_error, lease_token IS NULL, round(extract(epoch FROM next_attempt_at - now())) FROM demper.outbox WHERE store_id IN ($store{kill}{id}, $store{fail}{id})"));
diag('part 5: last_error: ' . psql("SELECT last_error FROM demper.outbox WHERE store_id = $store{kill}{id} AND status = 'pending' LIMIT 1"));
# pushes_failed: a pending push of a store that stops publishing through the API is failed.
my $fail = $products{fail}[0];
# One transaction: the trigger writes the pending push while the store publishes, then the store
# stops publishing through the API before the worker can claim it.
psql("BEGIN; UPDATE demper.product SET price = price - 7 WHERE id = $fail->{id};
      UPDATE demper.store SET push_mode = 'none' WHERE id = $store{fail}{id}; COMMIT;");
is(outbox_counts('fail')->{pending}, 1, 'part 7: the fail store\'s price change wrote a pending push');
ok(poll_until(sub { outbox_counts('fail')->{failed} == 1 }, 60), 'part 7: its push is failed once the store stops publishing');
ok(poll_until(sub { demper_stats($node)->{pushes_failed} > $stats_before_kill->{pushes_failed} }, 10),
	'part 7: pushes_failed moved');
$stats = demper_stats($node);
cmp_ok($stats->{pushes_retried}, '>=', $stats_before_kill->{pushes_retried} + 5,
	"part 7: pushes_retried counts the closed-port failures ($stats_before_kill->{pushes_retried} -> $stats->{pushes_retried})");
my $pid = wait_for_worker($node);
my $t_kill = time;
kill 'KILL', $pid;
ok(wait_for_connections($node), 'part 5: the node accepts connections after kill -9 of the worker');
my $pid2 = wait_for_worker($node);
isnt($pid2, $pid, 'part 5: a new worker runs');
my $stats_after_kill = demper_stats($node);
reload_conf($node, 'demper.push_url' => "'$push_url'");
is(wait_pushed(90, @kill), 0, 'part 5: after kill -9 every change of the kill store reached the mock');
diag(sprintf('part 5: pushed %.1f s after kill -9', time - $t_kill));
ok(poll_until(sub { outbox_counts('kill')->{pending} == 0 }, 20), 'part 5: no push of the kill store is left pending');
ok(poll_until(sub { demper_stats($node)->{pushes_ok} >= $stats_after_kill->{pushes_ok} + 5 }, 20),
	'part 7: pushes_ok moved by the 5 pushes after the restart');

# ---------------------------------------------------------------------------------------------
# 6. Coalescing: a fast competitor (10 moves, about one a second) against slow pushes (one every
# 5 s): about 3 pushes when pending pushes are coalesced, up to one per move when they are not.
reload_conf($node, 'demper.push_rate' => 0.2);
usleep(500_000);    # pacing: the worker reloads on SIGHUP
my $coal = $products{coal}[0];
my $t6 = time;
my $decided = 0;
for my $k (1 .. 10)
{
	my $t_iter = time;
	move_competitor(10, $coal);
	$decided++ if wait_prices(20, $coal) == 0;
	my $left = $t_iter + 1 - time;
	usleep($left * 1e6) if $left > 0;    # pacing: about one move per second
}
is($decided, 10, 'part 6: each of the 10 competitor moves was decided');
my $decisions = psql("SELECT count(*) FROM demper.price_history WHERE product_id = $coal->{id} AND changed_at >= to_timestamp($t6)");
is(wait_pushed(20, $coal), 0, 'part 6: the last push carries the final price (within 20 s of the last decision)');
my @coal_pushes = grep { $_->{sku} eq $coal->{sku} && $_->{t} >= $t6 } mock_pushes($mock, $store{coal}{merchant});
diag(sprintf('part 6: %d decisions, %d pushes (%s) in %.1f s', $decisions, scalar(@coal_pushes),
	join(',', map { $_->{price} } @coal_pushes), time - $t6));
cmp_ok(scalar(@coal_pushes), '<=', $decisions / 2, 'part 6: pushes are coalesced (at most half the decisions)');
my @history = map { [split /\|/] } split /\n/, psql(
	"SELECT extract(epoch FROM changed_at)::float8, new_price FROM demper.price_history WHERE product_id = $coal->{id} ORDER BY changed_at, id");
my %decided_prices = map { $_->[1] => 1 } @history;
is(scalar(grep { !$decided_prices{ $_->{price} } } @coal_pushes), 0, 'part 6: every push carries a decided price');
# Staleness of a push: how long before it reached the mock a newer price had been decided. With
# one pending push per listing it waits at most one push interval (5 s at push_rate 0.2).
my $max_stale = 0;
for my $push (@coal_pushes)
{
	my ($i) = grep { $history[$_][1] == $push->{price} && $history[$_][0] <= $push->{t} } reverse 0 .. $#history;
	next unless defined $i && $i < $#history && $history[ $i + 1 ][0] < $push->{t};
	my $stale = $push->{t} - $history[ $i + 1 ][0];
	$max_stale = $stale if $stale > $max_stale;
}
diag(sprintf('part 6: the stalest push arrived %.1f s after a newer price had been decided', $max_stale));
cmp_ok($max_stale, '<', 7, 'part 6: no push carries a price superseded more than one push interval (+2 s) earlier');

# ---------------------------------------------------------------------------------------------
# 2. The cookies never leak (checked last, after every failure above).
my @cookies = map { ($store{$_}{session}, $store{$_}{sid}) } sort keys %store;
my $log = slurp_file($node->logfile);
is(scalar(grep { index($log, $_) >= 0 } @cookies), 0, 'part 2: no cookie appears in the server log');
# From here on the queries hold the cookies: keep them out of the log.
sub quiet { return $node->safe_psql('postgres', "SET log_statement = 'none';\n$_[0]") }
my $texts = quiet(
	"SELECT coalesce(string_agg(last_error, ' '), '') FROM demper.outbox;
	 SELECT string_agg(ps::text, ' ') FROM demper.push_status ps;
	 SELECT string_agg(demper.explain(id)::text, ' ') FROM demper.product;
	 SELECT string_agg(coalesce(last_push_error, ''), ' ') FROM demper.store;");
my @found = grep { index($texts, $_) >= 0 } @cookies;
is(scalar(@found), 0, 'part 2: no cookie in outbox.last_error, push_status, explain() or last_push_error');
is(psql("SELECT data_type FROM information_schema.columns WHERE table_schema = 'demper' AND table_name = 'store' AND column_name = 'credentials'"),
	'bytea', 'part 2: store.credentials is bytea');
my $cond = join(' OR ', map { "position(convert_to('$_', 'UTF8') in credentials) > 0" } @cookies);
is(quiet("SELECT count(*) FROM demper.store WHERE credentials IS NOT NULL AND ($cond)"), '0',
	'part 2: no store\'s sealed credentials contain a cookie string');
is(psql('SELECT count(*) FROM demper.store WHERE credentials IS NULL'), '0', 'part 2: every store has sealed credentials');

$stats = demper_stats($node);
diag("part 7: final: pushes_ok $stats->{pushes_ok}, pushes_failed $stats->{pushes_failed}, pushes_retried $stats->{pushes_retried}");
diag(sprintf('total %.1f s', time - $t_start));

$node->stop;
$mock->stop;
done_testing();
