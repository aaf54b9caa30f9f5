# The verdict of the sanitize-ext layer, run last: no server process of the run (postmasters,
# backends, demper workers, all with the sanitized demper.so) reported an ASan or UBSan error,
# neither in a report file (ASan, LeakSanitizer failures) nor in a server log (UBSan, and
# anything written to stderr), and every server log of the run comes from a postgres with the
# ASan runtime preloaded from the layer's private tree. 010_sanitized_server.pl showed that a
# deliberate error of each kind is found where this test looks; 020_worker_leaks.pl judged the
# leak reports of its own run.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use SanitizerRun;
use PostgreSQL::Test::Utils;
use Test::More;

sanitize_run_or_skip();
my $reports = $ENV{DEMPER_SANITIZE_REPORTS};
my $bindir = $ENV{DEMPER_SANITIZE_BINDIR};

# The report files. The servers of the TAP tests run without leak detection, so any file in the
# top directory is an error report; the leak run's directory may hold leak reports only.
my @top = report_files($reports);
my @leak_run = report_files("$reports/leaks");
my @errors = sanitizer_errors(@top, @leak_run);
is(scalar(@errors), 0, 'no ASan or UBSan error in the report files of the run') or diag(join("\n", @errors));
is(scalar(@top), 0, 'no report file at all from the servers of the TAP tests')
  or diag(join("\n", map { "$_->{path}:\n" . substr($_->{text}, 0, 3000) } @top));
diag(sprintf('%d report files in %s (0 expected), %d leak reports from the leak run', scalar(@top), $reports, scalar(@leak_run)));
# LeakSanitizer crashing at a process's exit is not an error of the code under test (see
# SanitizerRun.pm); the leak run's processes where it did are listed here, with those whose
# worker run 020 made again (in leaks/crashed).
my @crashed = grep { leak_check_crashed($_->{text}) } @leak_run, report_files("$reports/leaks/crashed");
diag(scalar(@crashed) . ' processes of the leak run where LeakSanitizer crashed at the exit: '
	  . join(', ', map { $_->{path} } @crashed)) if @crashed;

# The server logs of the run (PostgreSQL::Test::Cluster names them <test>_<node>.log).
my $logdir = "$PostgreSQL::Test::Utils::tmp_check/log";
opendir(my $dh, $logdir) or die "$logdir: $!";
my @logs = sort map { "$logdir/$_" } grep { /\.log$/ && !/^regress_log_/ } readdir $dh;
closedir $dh;
diag('server logs: ' . join(', ', map { m{([^/]+)$} } @logs));
cmp_ok(scalar(@logs), '>=', 4, 'the run left the server logs of its tests');
for my $log (@logs)
{
	my ($name) = $log =~ m{([^/]+)\.log$};
	my $text = slurp_file($log);
	my @wrapped = $text =~ /^sanitize-ext: (\S+) runs with the ASan runtime preloaded/mg;
	my @foreign = grep { $_ ne "$bindir/postgres" } @wrapped;
	my $starts = () = $text =~ /LOG:  starting PostgreSQL/g;
	ok($starts > 0 && @wrapped >= $starts && !@foreign,
		"$name: each of its $starts server starts ran $bindir/postgres with the ASan runtime preloaded")
	  or diag(scalar(@wrapped) . " starts with the runtime preloaded: @wrapped");
	# UBSan reports to the server log (sanitizer_preload.c); 010's canary reports name its source.
	my @lines = grep { !/sanitizer_canary\.c/ } log_sanitizer_lines($log);
	is(scalar(@lines), 0, "$name: no sanitizer output in the server log") or diag(join("\n", @lines[0 .. ($#lines < 20 ? $#lines : 20)]));
}
done_testing();
