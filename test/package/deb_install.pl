# The Debian package, installed (scripts/test-package.sh): every file of the .deb is in the
# PostgreSQL tree as packaged, a fresh cluster of that tree loads the package's demper.so, CREATE
# EXTENSION runs the package's scripts at the package's version, and the worker reprices a
# product against the mock marketplace.
# DEMPER_DEB: the .deb; DEMPER_DEB_ROOT: where it was installed (/ for dpkg -i, or the root of a
# private copy of the tree for dpkg -x); PATH leads to that tree's PostgreSQL 15 binaries.
use strict;
use warnings;
use File::Compare qw(compare);
use File::Find;
use FindBin;
use lib "$FindBin::RealBin/../t";
use DemperTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $deb = $ENV{DEMPER_DEB} or BAIL_OUT('DEMPER_DEB is not set');
my $root = $ENV{DEMPER_DEB_ROOT} // '/';
$root =~ s{/+$}{};

# What the package holds, unpacked aside, against what is installed.
my $unpacked = PostgreSQL::Test::Utils::tempdir();
system('dpkg-deb', '-x', $deb, $unpacked) == 0 or BAIL_OUT("dpkg-deb -x $deb failed");
my @files;
find({ no_chdir => 1, wanted => sub { push @files, substr($_, length $unpacked) if -f $_ } },
	"$unpacked/usr/lib/postgresql/15/lib", "$unpacked/usr/share/postgresql/15/extension");
ok((grep { m{/demper\.so$} } @files) && (grep { m{/demper\.control$} } @files),
	'the package holds demper.so and demper.control (' . scalar(@files) . ' files for the server)');
my @differ = grep { compare("$unpacked$_", "$root$_") != 0 } sort @files;
is("@differ", '', "every one of them is installed under $root/ as packaged");

my @monitoring = map { "/usr/share/postgresql-15-demper/$_" } qw(demper-queries.yaml demper-alerts.yml grafana-demper.json);
my @absent = grep { !-f "$root$_" } @monitoring;
is("@absent", '', 'the exporter queries file, the alert rules and the dashboard are installed');

my ($version) = `dpkg-deb -f '$deb' Version` =~ /^([^-\s]+)/;
like($version // '', qr/^\d+\.\d+\.\d+$/, "the package's upstream version: " . ($version // 'none'));

my $mock = start_mock();
my $node = demper_node('package', $mock);
my $pkglibdir = $node->safe_psql('postgres', "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'");
is($pkglibdir, "$root/usr/lib/postgresql/15/lib", 'the cluster runs on the tree the package went into');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'demper'"),
	$version, "CREATE EXTENSION demper installed the package's version");

my $worker = wait_for_worker($node);
like(slurp_file("/proc/$worker/maps"), qr{\Q$pkglibdir\E/demper\.so$}m,
	"the worker (pid $worker) runs the package's demper.so");

# One product: the only competitor sells at 1,000, so the default rule asks 999.
$node->safe_psql('postgres', "INSERT INTO demper.store (name, merchant_id) VALUES ('Packaged', 'PKG1')");
$mock->set_offers('8300001', [ [ 'C1', 1000 ] ]);
insert_products($node, { code => '8300001', price => 5000, min => 100 });
my $want = expected_price(price => 5000, min_price => 100, max_price => undef, step => 1, own => 'PKG1',
	offers => [ [ 'C1', 1000 ] ]);
ok( $node->poll_query_until('postgres',
		"SELECT price = $want FROM demper.product WHERE product_code = '8300001'"),
	"the worker repriced the product against the mock: 5000 -> $want");
is( $node->safe_psql('postgres',
		"SELECT old_price || ' -> ' || new_price || ' ' || reason FROM demper.price_history"),
	"5000 -> $want undercut", 'one price change in the history, with its reason');

$node->stop;
$mock->stop;
done_testing();
