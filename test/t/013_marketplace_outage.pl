# The marketplace misbehaves for a while (issue 7): down (503, then connection refused), slow
# (5 s per answer), answering garbage (non-JSON bytes, an anti-bot HTML page, truncated JSON,
# hostile JSON: prices as strings, negative, zero, 1e308) for ~20 s, then healthy again. demper
# recovers by itself (no check_now, no restart) and no price changes from a bad answer. Then SSRF
# at request time: URL templates naming hosts outside demper.allowed_hosts by tricks (userinfo,
# decimal and IPv6-mapped forms of 127.0.0.1, the cloud metadata address) and redirects to
# 169.254.169.254, 0.0.0.0 and [::1]: never contacted, no price changed. RELIABILITY lines.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $t_start = time;
my $own = '30012345';
my $mock = start_mock();
my $port = $mock->port;
my $node = demper_node('outage', $mock,
	'demper.requests_per_second' => 100,
	'demper.burst' => 20,
	'demper.max_inflight' => 64,
	'demper.http_timeout' => "'8s'",
	'demper.lease_time' => "'30s'");
sub psql { return $node->safe_psql('postgres', $_[0]) }
psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Shop', '$own')");

# 60 products checked every 10 s (their own check_interval), competitors C1 and C2.
my @codes = (910000 .. 910059);
my %book;
sub set_books
{
	my ($version) = @_;
	for my $c (@codes)
	{
		my $comp = 20000 + ($c % 97) * 50 + $version * 1000;
		$book{$c} = [ [ 'C1', $comp ], [ 'C2', $comp + 333 ], [ $own, 5 ] ];
		$mock->set_offers($c, $book{$c});
	}
}
sub expected { my ($c) = @_; return expected_price(price => 0, min_price => 1000, max_price => undef, step => 1, own => $own, offers => $book{$c}) }
sub prices { return map { split /\|/ } split /\n/, psql("SELECT product_code, price FROM demper.product WHERE product_code::bigint BETWEEN 910000 AND 910059") }
sub history_rows { return psql("SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE p.product_code::bigint BETWEEN 910000 AND 910059") }

# wait_converged polls until every product is at the rule's price for the current books.
sub wait_converged
{
	my ($timeout) = @_;
	my @bad;
	poll_until(sub { my %p = prices(); @bad = grep { $p{$_} != expected($_) } @codes; !@bad }, $timeout);
	return scalar @bad;
}

set_books(1);
insert_products($node, map { { code => $_, price => 90000, min => 1000 } } @codes);
psql("UPDATE demper.product SET check_interval = '10 seconds' WHERE product_code::bigint BETWEEN 910000 AND 910059");
is(wait_converged(60), 0, 'healthy: every product converged to the rule\'s price');

# bad_phase runs a misbehaving marketplace for $seconds while the books move (a price may only
# follow a good answer, so none may change), polling every second that no price moved; returns
# (failed checks, prices changed, history rows written).
sub bad_phase
{
	my ($label, $seconds, $setup, $tick) = @_;
	my %before = prices();
	my $hist0 = history_rows();
	my $s0 = demper_stats($node);
	my $t_setup = Time::HiRes::time();
	$setup->();
	# Checks already on their way to a healthy marketplace (claimed before the fault, e.g. with
	# the old offers URL) finish first: they may rightly follow the books they read.
	$node->poll_query_until('postgres',
		"SELECT clock_timestamp() > to_timestamp($t_setup) + interval '0.5 s' AND count(*) = 0 FROM demper.product "
		  . "WHERE product_code::bigint BETWEEN 910000 AND 910059 AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NOT NULL "
		  . "AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) <= to_timestamp($t_setup) + interval '30.5 s'");
	set_books(int(rand(100)) + 2);    # the truth moved; nobody may see it until healthy again
	psql("UPDATE demper.product SET next_check_at = now() WHERE product_code::bigint BETWEEN 910000 AND 910059 AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL; SELECT demper.wake_workers()");
	my ($changed, $t0) = (0, time);
	while (time - $t0 < $seconds)
	{
		my %now = prices();
		$changed = scalar grep { $now{$_} != $before{$_} } @codes;
		last if $changed;
		sleep(1);
		$tick->() if $tick;
	}
	my $s1 = demper_stats($node);
	my $failed = $s1->{checks_failed} - $s0->{checks_failed};
	my $attempts = $s1->{http_requests} - $s0->{http_requests};
	my $rows = history_rows() - $hist0;
	my %errors = map { split /\|/ } split /\n/, psql(
		"SELECT coalesce(last_error_class, 'none'), count(*) FROM demper.product WHERE product_code::bigint BETWEEN 910000 AND 910059 GROUP BY 1");
	diag(sprintf('%s for %.0f s: %d requests attempted (%d retries, %d breaker opens), %d failed checks, %d in flight or queued at the end, %d prices changed, %d history rows; last errors: %s',
		$label, time - $t0, $attempts, $s1->{http_retries} - $s0->{http_retries}, $s1->{breaker_opens} - $s0->{breaker_opens},
		$failed, $s1->{in_flight} + $s1->{queued}, $changed, $rows, join(', ', map { "$_=$errors{$_}" } sort keys %errors)));
	is($changed, 0, "$label: no price changed");
	is($rows, 0, "$label: no history row written");
	# Failing requests are retried, and an open breaker holds checks back rather than failing
	# them: what must happen is that the worker kept trying.
	cmp_ok($attempts, '>=', 20, "$label: the worker kept trying ($attempts requests attempted)");
	return ($attempts, $changed, $rows);
}

# recover clears every fault and measures how long until every price follows the books again.
sub recover
{
	my ($label) = @_;
	my $t0 = time;
	$mock->fault(mode => 'none');
	my $bad = wait_converged(60);
	my $took = time - $t0;
	is($bad, 0, "$label: demper recovered by itself: every price follows the books again");
	diag(sprintf('%s: recovered %.1f s after the marketplace became healthy', $label, $took));
	return ($bad, $took);
}

my $failed_before_outage = demper_stats($node)->{checks_failed};
# ---------------------------------------------------------------------------------------------
# 1. Down: 503 for every answer, then connection refused (the offers URL points at a closed port).
my ($f, $c, $r) = bad_phase('down (503)', 10, sub { $mock->fault(mode => 'status', status => 503) });
my ($bad, $took) = recover('down (503)');
reliability('marketplace down: 503 for every answer (10 s)', $f, $c + $r + $bad, sprintf('recovered in %.1f s', $took));

my $closed = do { require IO::Socket::INET; my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0); my $p = $s->sockport; close $s; $p };
($f, $c, $r) = bad_phase('down (connection refused)', 10, sub {
	reload_conf($node, 'demper.offers_url' => "'http://127.0.0.1:$closed/yml/offer-view/offers/{product_code}'") });
reload_conf($node, 'demper.offers_url' => "'http://127.0.0.1:$port/yml/offer-view/offers/{product_code}'");
($bad, $took) = recover('down (connection refused)');
reliability('marketplace down: connection refused (10 s)', $f, $c + $r + $bad, sprintf('recovered in %.1f s', $took));

# ---------------------------------------------------------------------------------------------
# 2. Slow: every answer takes 5 s (within the 8 s timeout): slow is not wrong, prices follow the
#    answers; nothing is lost.
$mock->fault(mode => 'latency', latency_ms => 5000);
set_books(150);
my $t_slow = time;
my $slow_bad = wait_converged(40);
is($slow_bad, 0, 'slow (5 s per answer): every price still follows the books');
diag(sprintf('slow: converged %.1f s after the books moved, with 5 s answers', time - $t_slow));
my ($sbad, $stook) = recover('slow (5 s per answer)');
reliability('marketplace slow: 5 s per answer', scalar(@codes), $slow_bad + $sbad, sprintf('converged in %.1f s', time - $t_slow));

# ---------------------------------------------------------------------------------------------
# 3. Garbage for ~20 s: a different kind every few seconds.
my @garbage = (
	{ mode => 'garbage' },
	{ mode => 'html' },
	{ mode => 'truncated' },
	{ mode => 'body', body => '{"offers":[{"merchantId":"C1","price":"1"}],"total":1,"offersCount":1}' },
	{ mode => 'body', body => '{"offers":[{"merchantId":"C1","price":-5}],"total":1,"offersCount":1}' },
	{ mode => 'body', body => '{"offers":[{"merchantId":"C1","price":0}],"total":1,"offersCount":1}' },
	{ mode => 'body', body => '{"offers":[{"merchantId":"C1","price":1e308}],"total":1,"offersCount":1}' },
	{ mode => 'body', body => '{"offers":[{"price":15000}],"total":1,"offersCount":1}' },
	{ mode => 'body', body => '{"offers":{"merchantId":"C1","price":15000},"total":1}' },
	{ mode => 'body', body => '' },
);
my ($kinds, $gi) = (1, 0);
($f, $c, $r) = bad_phase('garbage', 20, sub { $mock->fault(%{ $garbage[0] }) },
	sub { $gi = ($gi + 1) % @garbage; $kinds++; $mock->fault(%{ $garbage[$gi] }) });
diag("garbage: $kinds changes of the kind of bad answer (" . scalar(@garbage) . " kinds)");
($bad, $took) = recover('garbage');
reliability('marketplace answering garbage (10 kinds, ~20 s)', $f, $c + $r + $bad, sprintf('recovered in %.1f s', $took));
my $breaker = join(',', map { "$_->{name}=$_->{state}" } grep { $_->{kind} ne 'egress' } http_status($node));
diag("after recovery, hosts: $breaker");

# ---------------------------------------------------------------------------------------------
# 4. SSRF at request time. Each attempt: one product checked now; the check must fail as
#    refused (never contacting the host), no price may change, and the mock must see nothing.
my $victim = 910000;
my $victim_id = psql("SELECT id FROM demper.product WHERE product_code = '$victim'");
psql("UPDATE demper.product SET check_interval = NULL WHERE id = $victim_id");
sub ssrf_attempt
{
	my ($label, %conf) = @_;
	my $price0 = psql("SELECT price FROM demper.product WHERE id = $victim_id");
	my $requests0 = mock_requests_for($mock, $victim);  # the victim's own: others are checked meanwhile
	my $t0 = time;
	if (%conf)
	{
		reload_conf($node, %conf);
		# A new session sees the new values only once the postmaster has re-read the file, and it
		# signals the worker before that: the check below cannot run with the old settings.
		for my $k (keys %conf)
		{
			(my $v = $conf{$k}) =~ s/^'(.*)'$/$1/;
			poll_until(sub { $node->safe_psql('postgres', "SHOW $k") eq $v }, 30);
		}
	}
	psql("SELECT demper.check_now($victim_id)");
	my $done = $node->poll_query_until('postgres',
		"SELECT last_check_time > to_timestamp($t0) AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL FROM demper.product WHERE id = $victim_id");
	my ($price, $class, $error) = split /\|/, psql("SELECT price, last_error_class, last_error FROM demper.product WHERE id = $victim_id");
	my $seen = mock_requests_for($mock, $victim) - $requests0;
	ok($done, "SSRF $label: the check finished");
	is($class, 'refused_host', "SSRF $label: refused as refused_host") or diag("last_error: $error");
	is($price, $price0, "SSRF $label: no price changed");
	diag("SSRF $label: class $class, error '$error', mock saw $seen offer requests");
	return (($class eq 'refused_host' ? 0 : 1) + ($price == $price0 ? 0 : 1), $seen);
}
my $ssrf_lost = 0;
my @url_tricks = (
	[ 'metadata address 169.254.169.254', "'http://169.254.169.254/latest/meta-data/{product_code}'", "'127.0.0.1'" ],
	[ 'userinfo kaspi.kz@127.0.0.1', "'http://kaspi.kz\@127.0.0.1:$port/yml/offer-view/offers/{product_code}'", "'kaspi.kz'" ],
	[ 'decimal 2130706433', "'http://2130706433:$port/yml/offer-view/offers/{product_code}'", "'kaspi.kz'" ],
	[ 'IPv6-mapped [::ffff:127.0.0.1]', "'http://[::ffff:127.0.0.1]:$port/yml/offer-view/offers/{product_code}'", "'kaspi.kz'" ],
	[ 'short form 127.1', "'http://127.1:$port/yml/offer-view/offers/{product_code}'", "'kaspi.kz'" ],
	[ '127.0.0.1 not allowed', "'http://127.0.0.1:$port/yml/offer-view/offers/{product_code}'", "'kaspi.kz'" ],
);
for my $t (@url_tricks)
{
	# A template that does not parse as a plain http(s) URL is refused when set: also a pass.
	my ($rc, $out, $err) = $node->psql('postgres',
		"ALTER SYSTEM SET demper.allowed_hosts = $t->[2]; ALTER SYSTEM SET demper.offers_url = $t->[1]");
	if ($rc != 0)
	{
		my ($msg) = $err =~ /ERROR:\s+(.*)/;
		like($err, qr/invalid offers URL template/, "SSRF URL $t->[0]: refused when set ($msg)");
		$ssrf_lost++ unless $err =~ /invalid offers URL template/;
		$node->safe_psql('postgres', "ALTER SYSTEM SET demper.allowed_hosts = $t->[2]");
		next;
	}
	my ($l, $s) = ssrf_attempt("URL $t->[0]", 'demper.offers_url' => $t->[1], 'demper.allowed_hosts' => $t->[2]);
	my $contacted = ($t->[1] =~ /$port/) ? $s : 0;
	is($contacted, 0, "SSRF URL $t->[0]: the mock was not contacted");
	$ssrf_lost += $l + $contacted;
}
reload_conf($node, 'demper.offers_url' => "'http://127.0.0.1:$port/yml/offer-view/offers/{product_code}'",
	'demper.allowed_hosts' => "'127.0.0.1'");
my @redirects = ('http://169.254.169.254/latest/meta-data/iam/', "http://0.0.0.0:$port/yml/offer-view/offers/$victim",
	"http://[::1]:$port/yml/offer-view/offers/$victim", "http://localhost:$port/yml/offer-view/offers/$victim");
for my $loc (@redirects)
{
	$mock->fault(product => "$victim", mode => 'redirect', location => $loc);
	my ($l, $s) = ssrf_attempt("redirect to $loc");
	cmp_ok($s, '<=', 1, "SSRF redirect to $loc: the mock saw only the first request, not the redirected one ($s)");
	$ssrf_lost += $l + ($s > 1 ? 1 : 0);
}
$mock->fault(product => "$victim", mode => 'none');
reliability('SSRF: URL templates to hosts outside allowed_hosts (userinfo, decimal, IPv6-mapped, 127.1, metadata)',
	scalar(@url_tricks), $ssrf_lost, 'lost counts attempts not refused or that reached the host, for URLs and redirects');
reliability('SSRF: redirects to 169.254.169.254, 0.0.0.0, [::1], localhost', scalar(@redirects), $ssrf_lost, '');

diag(sprintf('013_marketplace_outage took %.1f s', time - $t_start));
$node->stop;
$mock->stop;
done_testing();
