#!/usr/bin/env bash
# isolation.sh: runs the isolation specs of test/isolation (concurrency of the worker's own claim
# and apply statements) with pg_isolation_regress against a temporary instance, as the postgres
# user, and prints pg_isolation_regress's result. Run as root or as postgres, after
# `make install`. First it checks that the statements copied into the specs are still, verbatim,
# those of the worker's catalog (src/pg/catalog_*.cpp, whitespace aside): a spec that tests stale
# SQL fails here.
# Exit status: 0 when every spec passed and no copy drifted.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pgbin=${PGBIN:-/usr/lib/postgresql/15/bin}
isolation_regress=${PG_ISOLATION_REGRESS:-/usr/lib/postgresql/15/lib/pgxs/src/test/isolation/pg_isolation_regress}

# 1. Drift: every "-- BEGIN kName ... -- END kName" block of a spec must equal kName of the catalog
#    (src/pg/catalog.cpp, catalog_*.cpp and catalog_*.hpp read as one text; its macros expanded,
#    its named parameters numbered as the worker prepares them), whitespace normalised. DEMPER_ISOLATION_PRINT=kName prints that form of one statement (to copy it again).
perl - "$root" "$root"/test/isolation/specs/*.spec <<'PERL' || exit 1
use strict; use warnings;
my ($root, @specs) = @ARGV;
# The statements are split by job over several files (catalog_statements.hpp lists them), and a
# declaration two jobs share sits in that header.
my @sources = ("$root/src/pg/catalog.cpp", sort(glob("$root/src/pg/catalog_*.cpp")),
               sort(glob("$root/src/pg/catalog_*.hpp")));
my $catalog = 'src/pg/catalog_*.cpp';
my $src = '';
for my $file (@sources) {
    open my $fh, '<', $file or die "$file: $!";
    $src .= do { local $/; <$fh> } . "\n";
}
my (%macro, %raw_macro);
while ($src =~ /^#define\s+(\w+)(?:\([^)]*\))?\s*((?:.*\\\n)*.*)$/mg) {
    my ($m, $body) = ($1, $2);
    $body =~ s/\\\n/ /g;
    $raw_macro{$m} = $body;
}
# A macro's text: its string literals and, in order, the text of the macros it names (they nest:
# DEMPER_DECISION_STANDS is made of DEMPER_SAME_INPUTS and DEMPER_ABOVE_FLOOR).
sub expand_macro {
    my ($m, $depth) = @_;
    return $macro{$m} if exists $macro{$m};
    die "isolation.sh: macro $m nests too deep\n" if $depth > 20;
    my ($body, $text) = ($raw_macro{$m}, '');
    while ($body =~ /"((?:[^"\\]|\\.)*)"|\b([A-Z][A-Z0-9_]+)\b/g) {
        if (defined $1) { $text .= $1 }
        elsif (exists $raw_macro{$2} && $2 ne $m) { $text .= expand_macro($2, $depth + 1) }
    }
    return $macro{$m} = $text;
}
expand_macro($_, 0) for keys %raw_macro;
# Each statement names its parameters ($limit); the worker prepares it with them numbered in the
# order its declaration lists them (src/pg/statement.hpp). The specs hold the numbered form.
my (%fields_macro, %params_of);
$fields_macro{$1} = $2 while $src =~ /DEMPER_DECLARE_FIELDS\((\w+),\s*(\w+)\)/g;
while ($src =~ /Statement<(\w+),\s*\w+>\s*\w+\{"\w+",\s*(k\w+),/g) {
    my ($enum, $k) = ($1, $2);
    next if $enum eq 'NoFields' || !exists $fields_macro{$enum};
    $params_of{$k} = [ $raw_macro{$fields_macro{$enum}} =~ /F\((\w+),/g ];
}
sub statement {
    my ($name) = @_;
    $src =~ /constexpr const char\* \Q$name\E = (.*?);\n/s or return undef;
    my ($expr, $out) = ($1, '');
    while ($expr =~ /\G\s*(?:R"SQL\((.*?)\)SQL"|(\w+))/gsc) {
        if (defined $1) { $out .= $1 } else { return undef unless exists $macro{$2}; $out .= $macro{$2} }
    }
    my $i = 0;
    for my $p (@{ $params_of{$name} // [] }) {
        $i++;
        $out =~ s/\$\Q$p\E(?![A-Za-z0-9_])/\$$i/g;
    }
    return $out;
}
if (my $want = $ENV{DEMPER_ISOLATION_PRINT}) { print statement($want) // die "no statement $want\n"; exit 0 }
sub norm { my $s = shift; $s =~ s/\s+/ /g; $s =~ s/^ | $//g; return $s }
my ($checked, $drift) = (0, 0);
for my $spec (@specs) {
    open my $sf, '<', $spec or die "$spec: $!";
    my $text = do { local $/; <$sf> };
    while ($text =~ /^-- BEGIN (k\w+)\n(.*?)^-- END \1$/msg) {
        my ($name, $copy) = ($1, $2);
        my $orig = statement($name);
        $checked++;
        if (!defined $orig) { print "isolation: $name (copied in $spec) no longer exists in $catalog\n"; $drift++; next }
        if (norm($orig) ne norm($copy)) { print "isolation: the copy of $name in $spec differs from $catalog: copy it again\n"; $drift++ }
    }
}
print "isolation: $checked statement copies checked against $catalog, $drift drifted\n";
exit($drift ? 1 : 0);
PERL
[ -n "${DEMPER_ISOLATION_PRINT:-}" ] && exit 0

# 2. pg_isolation_regress in a scratch copy the postgres user owns.
work=$(mktemp -d /tmp/demper-isolation.XXXXXX)
cp -a "$root/test/isolation/." "$work/"
cat >"$work/isolation.conf" <<CONF
# demper preloaded, its worker idle and away from the test database: the specs play the worker.
shared_preload_libraries = 'demper'
demper.database = 'postgres'
demper.enabled = off
demper.allowed_hosts = '127.0.0.1'
CONF
specs=$(cd "$work/specs" && ls *.spec | sed 's/\.spec$//' | sort | tr '\n' ' ')
run() {
  cd "$work" && env PATH="$pgbin:$PATH" "$isolation_regress" --bindir="$pgbin" --inputdir="$work" \
    --outputdir="$work/output" --temp-instance="$work/tmp_check" --temp-config="$work/isolation.conf" $specs
}
if [ "$(id -u)" = 0 ]; then
  chown -R postgres: "$work"
  export -f run; export work pgbin isolation_regress specs
  runuser -u postgres -- bash -c run
else
  run
fi
rc=$?
if [ $rc -ne 0 ] && [ -f "$work/output/regression.diffs" ]; then
  head -80 "$work/output/regression.diffs"
  echo "isolation: diffs in $work/output/regression.diffs"
fi
# A failed run keeps its work directory (diffs, results, the server's log); a passed one goes.
[ $rc -eq 0 ] && rm -rf "$work"
exit $rc
