# A long worker run under LeakSanitizer (issue 7): the worker makes N checks and stops (SIGTERM:
# LSan reports the process's leaks at its exit), then, after a server restart, 4N checks and
# stops again. What LSan finds lost in the worker, directly or indirectly, must not grow with the
# number of checks, and none of it may come from demper's own code. The checks take the paths a
# check takes in production: good answers, price changes (the test keeps moving prices, and the
# next check moves them back), pushes to the merchant API with sealed credentials, and failing
# answers of each kind (HTML, garbage, truncated and hostile JSON, too large, a redirect to a
# host not allowed, a 503, a stalled answer that times out). LSan sees what is lost, not what is
# kept: memory that stays reachable (a container that keeps growing) is 012_lifecycle's RssAnon
# check. The numbers go to the TAP output (diag).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../t";
use DemperTest;
use SanitizerRun;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time usleep);

sanitize_run_or_skip();
my $n = $ENV{DEMPER_LEAK_CHECKS} // 1000;
my $dir = "$ENV{DEMPER_SANITIZE_REPORTS}/leaks";    # the report files of the leak run
my $t_start = time;
my $own = '30012345';
my $mock = start_mock(synthetic => 1000);
my $port = $mock->port;
my $key_file = write_key_file(PostgreSQL::Test::Utils::tempdir() . '/demper.key');
my $node = demper_node('leaks', $mock,
	'demper.check_interval' => "'1s'",    # failed checks back off at most this long too
	'demper.credentials_key_file' => "'$key_file'",
	'demper.push_url' => "'http://127.0.0.1:$port/pricefeed/upload/merchant/process'",
	'demper.push_rate' => 20,
	'demper.max_response_size' => "'64kB'",
	'demper.http_timeout' => "'2s'",
	'demper.max_attempts' => 2,
	'demper.backoff_base' => "'20ms'",
	'demper.backoff_max' => "'100ms'",
	'demper.breaker_threshold' => 1000,    # failing products must not hold the others back
	'demper.log_summary_interval' => "'1s'",
	'demper.lease_time' => "'10s'");    # what a worker stopped in a statement leaves leased
sub psql { return $node->safe_psql('postgres', $_[0]) }

# Store 1 publishes through the API (each price change is pushed); store 2 does not. Their 600
# products (below) have the mock's synthetic books and are checked about every second.
psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Pushing', '$own'), ('Plain', '30054321')");
store_credentials($node, $mock, 1, $own, 'SESSleaks0123', 'SIDleaks4567');
$mock->post('/_mock/push_limits', { push_limit_rps => 100 });    # above demper.push_rate: no 429

# 30 products answer badly, each in its own way, for the whole test.
my @faults = (
	({ mode => 'html' }) x 4,
	({ mode => 'garbage' }) x 4,
	({ mode => 'truncated' }) x 4,
	{ mode => 'body', body => '{"offers":[{"merchantId":"C1","price":"1"}],"total":1,"offersCount":1}' },
	{ mode => 'body', body => '{"offers":[{"merchantId":"C1","price":-5}],"total":1,"offersCount":1}' },
	{ mode => 'body', body => '{"offers":[{"merchantId":"C1","price":1e308}],"total":1,"offersCount":1}' },
	{ mode => 'body', body => '{"offers":[{"price":15000}],"total":1,"offersCount":1}' },
	{ mode => 'body', body => '{"offers":{"merchantId":"C1","price":15000},"total":1}' },
	{ mode => 'body', body => '{"offers":[' . ('{"merchantId":"C1","price":100},' x 200) . '{}],"total":201}' },
	{ mode => 'body', body => '' },
	{ mode => 'body', body => '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[' },
	({ mode => 'huge', size_bytes => 200_000 }) x 3,
	({ mode => 'redirect', location => 'http://169.254.169.254/latest/meta-data/' }) x 3,
	({ mode => 'status', status => 503 }) x 2,
	({ mode => 'stall_after_headers' }) x 2);
my $code = 271;
$mock->fault(product => '' . $code++, %$_) for @faults;

# run_worker lets the running worker make $checks checks while the test moves some prices of
# store 1 every half second (each move is undone by the next check: a price change, a history
# row and a push), then stops the worker with SIGTERM and returns its figures, what its leak
# report says (undef when LeakSanitizer crashed at the exit), the report's path and its text.
sub run_worker_once
{
	my ($label, $checks) = @_;
	my $pid = wait_for_worker($node);
	my $t0 = time;
	my $s0 = demper_stats($node);
	my $pushes0 = scalar mock_pushes($mock);
	my ($s1, $move) = ($s0, 0);
	while (time - $t0 < 120)
	{
		$move++;
		$s1 = JSON::PP->new->decode(psql(
			"UPDATE demper.product SET price = price + 3 WHERE store_id = 1 AND id % 5 = $move % 5 AND (SELECT s_.lease_until FROM demper.schedule s_ WHERE s_.product_id = id) IS NULL;
			 SELECT row_to_json(s) FROM demper.demper_stats() s"));
		last if $s1->{checks_ok} + $s1->{checks_failed} - $s0->{checks_ok} - $s0->{checks_failed} >= $checks;
		usleep(500_000);
	}
	my %d = map { $_ => $s1->{$_} - $s0->{$_} } qw(checks_ok checks_failed price_changes pushes_ok pushes_failed);
	$d{checks} = $d{checks_ok} + $d{checks_failed};
	$d{pushes_accepted} = scalar(mock_pushes($mock)) - $pushes0;
	$d{seconds} = time - $t0;
	kill 'TERM', $pid;
	ok(defined wait_for_exit($pid, 120), "$label: the worker (pid $pid) exited after SIGTERM");
	my $file = "$dir/asan.$pid";
	my $text = -e $file ? slurp_file($file) : '';
	return (\%d, undef, $file, $text) if leak_check_crashed($text);
	# Every postgres process has something for LSan (postgres's own allocations in main, made
	# before the worker was forked), so a whole report exists whenever LSan ran at the exit.
	ok(leak_report_complete($text), "$label: LeakSanitizer ran to its end at the worker's exit ($file)")
	  or diag(substr($text, 0, 3000));
	my $leaks = leak_summary($text);
	diag(sprintf('%s: %d checks (%d ok, %d failed) in %.1f s, %d price changes, %d pushes (%d failed), %d accepted by the mock; '
		  . 'worker leaks at exit: %d bytes direct, %d bytes indirect in %d objects; in demper code: %d direct, %d indirect',
		$label, $d{checks}, $d{checks_ok}, $d{checks_failed}, $d{seconds}, $d{price_changes}, $d{pushes_ok},
		$d{pushes_failed}, $d{pushes_accepted},
		$leaks->{direct}, $leaks->{indirect}, $leaks->{objects}, $leaks->{ours_direct}, $leaks->{ours_indirect}));
	diag("  $label: $_") for @{ $leaks->{leaks} };
	return (\%d, $leaks, $file, $text);
}

# run_worker is run_worker_once, again on a fresh worker (a server restart) when LeakSanitizer
# itself crashed at the worker's exit (see leak_check_crashed in SanitizerRun.pm): that run
# measured nothing. Its report moves to $dir/crashed, where no verdict reads it; the diag says
# so. Three crashes in a row end the test as failed.
sub run_worker
{
	my ($label, $checks) = @_;
	for my $try (1 .. 3)
	{
		my ($d, $leaks, $file, $text) = run_worker_once($label, $checks);
		return ($d, $leaks) if $leaks;
		mkdir "$dir/crashed";
		rename $file, "$dir/crashed/" . ($file =~ s{.*/}{}r) or die "rename $file: $!";
		diag("$label: LeakSanitizer crashed at the worker's exit, try $try of 3, so that run measured nothing:\n"
			  . join("\n", grep { /Tracer|LeakSanitizer/ } split /\n/, $text));
		$node->restart;
	}
	die "$label: LeakSanitizer crashed at the worker's exit in each of 3 tries";
}

# From here on every server process checks for leaks at its exit and writes its report apart.
# Every postgres process has a few leaks of postgres's own, so with ASan's default exitcode (1)
# the startup process would fail and the server would not start: leaks must not change an exit
# code (exitcode=0, no abort). So a worker exits 0 after its report, which the server takes as
# "done" (no restart): a server restart starts the next worker. An ASan error in this run exits
# 0 too, but its report is counted below and in 090_no_reports.pl.
mkdir $dir;
$ENV{ASAN_OPTIONS} = asan_options_with(detect_leaks => 1, exitcode => 0, abort_on_error => 0,
	log_path => "$dir/asan");
psql(q{CREATE FUNCTION canary_leak(int) RETURNS void
	AS 'demper_sanitizer_canary', 'sanitizer_canary_leak' LANGUAGE C STRICT});
$node->restart;

# The positive control: a backend that leaks 4242 bytes on purpose (test/sanitize/
# sanitizer_canary.c) has them reported at its exit, and leak_summary counts them as its own.
my ($canary_pid) = split /\|/, psql('SELECT pg_backend_pid(), canary_leak(4242)');
my $canary = '';
poll_until(sub { $canary = -e "$dir/asan.$canary_pid" ? slurp_file("$dir/asan.$canary_pid") : ''; $canary =~ /SUMMARY/ }, 30);
my $canary_leaks = leak_summary($canary, qr/sanitizer_canary/);
is($canary_leaks->{ours_direct}, 4242, "LeakSanitizer reports the canary's 4242 bytes leaked in backend $canary_pid");
diag("canary leak: $_") for grep { /\(ours\)/ } @{ $canary_leaks->{leaks} };

# The products come now, so that the measured worker is the first to claim them (a worker
# stopped while it runs a statement leaves its claimed products leased until lease_time).
insert_products($node, map { { store => ($_ <= 100 ? 1 : 2), code => $_, price => 900000, min => 10 } } 1 .. 600);
my ($small, $small_leaks) = run_worker("$n checks", $n);
$node->restart;    # a fresh worker (the first exited 0: it is not restarted)
my ($large, $large_leaks) = run_worker(4 * $n . ' checks', 4 * $n);

cmp_ok($small->{checks}, '>=', $n, "the first run made at least $n checks");
cmp_ok($large->{checks}, '>=', 4 * $n, 'the second run made at least ' . 4 * $n . ' checks');
for my $run ([ 'first', $small ], [ 'second', $large ])
{
	cmp_ok($run->[1]{checks_failed}, '>', 0, "the $run->[0] run took the failure paths");
	cmp_ok($run->[1]{price_changes}, '>', 0, "the $run->[0] run changed prices");
	cmp_ok($run->[1]{pushes_accepted}, '>', 0, "the $run->[0] run pushed prices");
}
my $lost_small = $small_leaks->{direct} + $small_leaks->{indirect};
my $lost_large = $large_leaks->{direct} + $large_leaks->{indirect};
cmp_ok($lost_large, '<=', $lost_small,
	"bytes lost do not grow with the number of checks ($lost_small after $small->{checks}, $lost_large after $large->{checks})");
is($small_leaks->{ours_direct} + $small_leaks->{ours_indirect}, 0, "no leak in demper's code after $small->{checks} checks");
is($large_leaks->{ours_direct} + $large_leaks->{ours_indirect}, 0, "no leak in demper's code after $large->{checks} checks");

# The other processes of the run (backends, the server's own) reported leaks only, no error.
my @errors = sanitizer_errors(report_files($dir));
is(scalar(@errors), 0, 'no sanitizer error in any process of the leak run') or diag(join("\n", @errors));

$node->stop;
$mock->stop;
diag(sprintf('020_worker_leaks took %.1f s', time - $t_start));
done_testing();
