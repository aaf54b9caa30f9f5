# SanitizerRun: what the sanitize-ext tests share (scripts/sanitize-ext.sh runs them on servers
# whose demper.so is built with ASan and UBSan and whose postgres has the ASan runtime
# preloaded). ASan and LeakSanitizer write one report file per process that has something to
# say (ASAN_OPTIONS log_path: <dir>/asan.<pid>); UBSan writes to stderr, the server log (see
# sanitizer_preload.c). This module reads both, tells errors from leak reports, sums a leak
# report, lists what a process has mapped, and edits ASAN_OPTIONS.
package SanitizerRun;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Utils;

our @EXPORT = qw(sanitize_run_or_skip report_files sanitizer_errors log_sanitizer_lines
  leak_check_crashed leak_report_complete leak_summary mapped_files asan_options_with);

# sanitize_run_or_skip skips the whole test file unless scripts/sanitize-ext.sh runs it (the
# tests need its sanitized server tree and report directory).
sub sanitize_run_or_skip
{
	return if $ENV{DEMPER_SANITIZE_REPORTS} && $ENV{DEMPER_SANITIZE_PKGLIBDIR};
	Test::More::plan(skip_all => 'runs only under scripts/sanitize-ext.sh');
	return;
}

# report_files returns the report files in $dir (not below it) as hash references: path, tool
# (asan or ubsan), pid, text.
sub report_files
{
	my ($dir) = @_;
	opendir(my $dh, $dir) or return ();
	my @files = sort grep { /^(?:asan|ubsan)\.\d+$/ } readdir $dh;
	closedir $dh;
	return map {
		my ($tool, $pid) = /^(\w+)\.(\d+)$/;
		+{ path => "$dir/$_", tool => $tool, pid => $pid, text => slurp_file("$dir/$_") }
	} @files;
}

# An error line of any of the three sanitizers: ASan's and UBSan's reports and internal
# failures. A leak report ("LeakSanitizer: detected memory leaks") is not an error here:
# leak_summary reads it. Nor is LeakSanitizer's own crash at a process's exit ("Tracer caught
# signal 11" then "LeakSanitizer has encountered a fatal error"): its tracer, which stops the
# process's threads with ptrace and scans their memory, dies now and then on a busy machine
# (google/sanitizers#1353, open since 2020; CI met it once, in 020's first worker). That is a leak
# check that did not happen, not an error of the code under test: leak_check_crashed tells it,
# and a test that needs the check (020_worker_leaks.pl) runs it again.
my $lsan_crash = qr/LeakSanitizer has encountered a fatal error/;
my $error_line = qr/ERROR: AddressSanitizer|runtime error:|ERROR: UndefinedBehaviorSanitizer|AddressSanitizer CHECK failed|(?<!Leak)Sanitizer has encountered a fatal error|ERROR: LeakSanitizer: (?!detected memory leaks)/;

# leak_check_crashed is true when report text $text says LeakSanitizer crashed at the exit.
sub leak_check_crashed
{
	my ($text) = @_;
	return $text =~ $lsan_crash ? 1 : 0;
}

# leak_report_complete is true when $text holds a whole leak report: LeakSanitizer ran to its
# end and summed what it found (every postgres process has leaks of postgres's own, so a process
# whose check ran always has one).
sub leak_report_complete
{
	my ($text) = @_;
	return $text =~ /ERROR: LeakSanitizer: detected memory leaks/
	  && $text =~ /^SUMMARY: AddressSanitizer: \d+ byte\(s\) leaked in \d+ allocation\(s\)/m
	  && !leak_check_crashed($text);
}

# sanitizer_errors returns the error lines of the given reports, each prefixed with its file.
sub sanitizer_errors
{
	my (@reports) = @_;
	my @errors;
	for my $r (@reports)
	{
		push @errors, map { "$r->{path}: $_" } grep { /$error_line/ } split /\n/, $r->{text};
	}
	return @errors;
}

# log_sanitizer_lines returns the lines of file $path (a server log) that a sanitizer wrote:
# errors (UBSan reports there), and leak reports too (LeakSanitizer writes to its files: a
# report in a server log means a process ran without the layer's options).
sub log_sanitizer_lines
{
	my ($path) = @_;
	return grep { /$error_line|$lsan_crash|ERROR: LeakSanitizer/ } split /\n/, slurp_file($path);
}

# leak_summary sums a LeakSanitizer report: direct and indirect bytes and objects over all its
# leaks ("definitely" and "indirectly lost" in valgrind's words), the same for the leaks with a
# frame matching $ours (default: demper's own code: demper.so, src/core, src/pg), and one line
# per leak.
sub leak_summary
{
	my ($text, $ours) = @_;
	$ours //= qr{demper\.so|/src/(?:core|pg)/};
	my %s = (direct => 0, indirect => 0, objects => 0, ours_direct => 0, ours_indirect => 0, leaks => []);
	for my $block (split /\n\s*\n/, $text)
	{
		next unless $block =~ /^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\)/m;
		my ($kind, $bytes, $objects) = (lc $1, $2, $3);
		$s{$kind} += $bytes;
		$s{objects} += $objects;
		my $mine = $block =~ $ours;
		$s{"ours_$kind"} += $bytes if $mine;
		# Frames: "#1 0x... in function file:line" or, without symbols, "#1 0x...  (module+offset)".
		my @frames = map { /#\d+ 0x[0-9a-f]+ in (\S+)/ ? $1 : /\(([^()]*)\)\s*$/ ? ($1 =~ s{.*/}{}r) : () }
		  grep { /^\s+#\d+ / && !/libsanitizer|__interceptor_/ } split /\n/, $block;
		splice(@frames, 4) if @frames > 4;
		push @{ $s{leaks} }, sprintf('%s leak of %d bytes in %d objects%s: %s', $kind, $bytes, $objects,
			$mine ? ' (ours)' : '', join(' <- ', @frames));
	}
	return \%s;
}

# mapped_files returns the files mapped into process $pid (from /proc/<pid>/maps), sorted.
sub mapped_files
{
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/maps" or return ();
	my %seen;
	while (my $line = <$fh>)
	{
		$seen{$1} = 1 if $line =~ m{\s(/\S+)\s*$};
	}
	close $fh;
	return sort keys %seen;
}

# asan_options_with returns $ENV{ASAN_OPTIONS} with the given options set (added or replaced),
# e.g. asan_options_with(detect_leaks => 1, log_path => "$dir/asan").
sub asan_options_with
{
	my (%set) = @_;
	my @pairs = map { [ split /=/, $_, 2 ] } grep { length } split /:/, $ENV{ASAN_OPTIONS} // '';
	my %have = map { $_->[0] => 1 } @pairs;
	$_->[1] = $set{ $_->[0] } for grep { exists $set{ $_->[0] } } @pairs;
	push @pairs, map { [ $_, $set{$_} ] } grep { !$have{$_} } sort keys %set;
	return join(':', map { "$_->[0]=$_->[1]" } @pairs);
}

1;
