# The sanitize-ext layer's own checks, run before the TAP tests it repeats: the servers it starts
# load the demper.so built with ASan and UBSan (from the layer's private PostgreSQL tree, not the
# system's), the ASan and UBSan runtimes are in the worker's address space, and a deliberate
# heap overflow and a signed integer overflow in a sanitized library loaded into such a server
# are caught and land where SanitizerRun looks: ASan's report files, the server log for UBSan
# (the positive control of 090_no_reports.pl: no report must mean that nothing went wrong, not
# that nothing was watching).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../t";
use DemperTest;
use SanitizerRun;
use PostgreSQL::Test::Utils;
use Test::More;

sanitize_run_or_skip();
my $pkglibdir = $ENV{DEMPER_SANITIZE_PKGLIBDIR};

# The library on disk, and the tree the test framework's servers come from.
my $pg_config_libdir = `pg_config --pkglibdir`;
chomp $pg_config_libdir;
is($pg_config_libdir, $pkglibdir, 'the servers of this run come from the private tree (pg_config on PATH)');
my $symbols = `nm -D $pkglibdir/demper.so 2>&1`;
like($symbols, qr/\b__asan_report_(?:load|store)\d+\b/, 'the installed demper.so is instrumented by ASan');
like($symbols, qr/\b__ubsan_handle_\w+/, 'the installed demper.so is instrumented by UBSan');

# This test's own node writes its ASan reports apart: the canaries' reports must not count as
# demper's in 090_no_reports.pl. (UBSan writes to the server log whatever its log_path: see
# sanitizer_preload.c.)
my $dir = "$ENV{DEMPER_SANITIZE_REPORTS}/canary";
mkdir $dir;
local $ENV{ASAN_OPTIONS} = asan_options_with(log_path => "$dir/asan");

my $mock = start_mock();
my $node = demper_node('canary', $mock, restart_after_crash => 'on');
my $pid = wait_for_worker($node);
my @maps = mapped_files($pid);
ok((grep { m{/libasan\.so} } @maps), "the worker (pid $pid) has the ASan runtime mapped");
ok((grep { m{/libubsan\.so} } @maps), 'the worker has the UBSan runtime mapped');
my @demper = grep { m{/demper\.so$} } @maps;
is_deeply(\@demper, ["$pkglibdir/demper.so"], 'the worker mapped the sanitized demper.so, and no other');
diag("worker $pid maps: " . join(', ', grep { m{asan|ubsan|demper|preload} } @maps));

# The canaries. Each one aborts its backend (abort_on_error): the server restarts, then goes on.
$node->safe_psql('postgres', q{
	CREATE FUNCTION canary_heap_overflow(int) RETURNS void
	  AS 'demper_sanitizer_canary', 'sanitizer_canary_heap_overflow' LANGUAGE C STRICT;
	CREATE FUNCTION canary_signed_overflow(int) RETURNS int
	  AS 'demper_sanitizer_canary', 'sanitizer_canary_signed_overflow' LANGUAGE C STRICT;});
my %found = (
	'report file' => sub { sanitizer_errors(report_files($dir)) },
	'server log' => sub { log_sanitizer_lines($node->logfile) });
for my $c (
	[ 'heap overflow', 'SELECT canary_heap_overflow(8)', qr/ERROR: AddressSanitizer: heap-buffer-overflow/, 'report file' ],
	[ 'signed overflow', 'SELECT canary_signed_overflow(1)', qr/runtime error: signed integer overflow/, 'server log' ])
{
	my ($label, $sql, $want, $where) = @$c;
	my ($rc, $out, $err) = $node->psql('postgres', $sql);
	isnt($rc, 0, "canary $label: the backend died");
	my @errors;
	poll_until(sub { @errors = grep { /$want/ } $found{$where}->(); @errors }, 30);
	is(scalar(@errors), 1, "canary $label: one report in the $where, found by SanitizerRun") or diag(join("\n", @errors));
	diag("canary $label: $_") for @errors;
	ok(wait_for_connections($node), "canary $label: the server is back");
}

# Nothing else, in the files or the log: demper itself reported nothing.
my @other = grep { !/sanitizer_canary|heap-buffer-overflow/ } sanitizer_errors(report_files($dir)), log_sanitizer_lines($node->logfile);
is(scalar(@other), 0, 'no other sanitizer report from this server') or diag(join("\n", @other));

$node->stop;
$mock->stop;
done_testing();
