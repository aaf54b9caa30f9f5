# The XML price feed (whole catalogue, escaped, never partial), the privilege model (demper_reader,
# demper_admin, PUBLIC) and key rotation (re-sealed credentials still push).
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
my $key1 = write_key_file("$tmp/key1");
my $push_url = 'http://127.0.0.1:' . $mock->port . '/pricefeed/upload/merchant/process';
my $node = demper_node('feedroles', $mock,
	'demper.credentials_key_file' => "'$key1'",
	'demper.push_url' => "'$push_url'");

sub psql { return $node->safe_psql('postgres', $_[0]) }

# as runs $sql as login role $role; returns (ok, stdout, stderr).
sub as
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => ['-U', $role]);
	return ($ret == 0, $out, $err);
}

# ---------------------------------------------------------------------------------------------
# Feed: the whole catalogue, escaped.
my $feed_store = psql(q{INSERT INTO demper.store (name, merchant_id) VALUES ('Shop & "Sons" <1>', 'FEED1') RETURNING id});
my @rows;
for my $i (1 .. 40)
{
	push @rows, sprintf("(%d, '%d', 'F-%d', 'Model %d', 'Brand', %d, 100, NULL)", $feed_store, 8000 + $i, $i, $i, 1000 + $i);
}
# One sku listed in a second city; one model and brand with every character XML escapes.
push @rows, sprintf("(%d, '8001', 'F-1', 'Model 1', 'Brand', 777, 100, '710000000')", $feed_store);
push @rows, sprintf(q{(%d, '8100', 'ESC-1', 'Phone <X> & "Q" ''Y''', 'A&B <C> "D" ''E''', 5000, 100, NULL)}, $feed_store);
psql('INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price, city_id) VALUES '
	  . join(',', @rows));
my $xml = psql("SELECT demper.price_feed($feed_store)");
my @skus = $xml =~ /<offer sku="([^"]*)">/g;
is(scalar(@skus), 41, 'feed: one <offer sku=...> per sku (40 + the escaped one)');
my %seen = map { $_ => 1 } @skus;
is(scalar(grep { !$seen{"F-$_"} } 1 .. 40), 0, 'feed: every sku of the catalogue is in it');
like($xml, qr{<merchantid>FEED1</merchantid>}, 'feed: merchantid');
like($xml, qr{<offer sku="F-1">.*?<cityprice cityId="750000000">1001</cityprice>.*?</offer>}s,
	'feed: the store city price of F-1');
like($xml, qr{<offer sku="F-1">(?:(?!</offer>).)*<cityprice cityId="710000000">777</cityprice>}s,
	'feed: the second city listing of F-1 is a city price of the same offer');
my ($model) = $xml =~ m{<offer sku="ESC-1">.*?<model>(.*?)</model>}s;
my ($brand) = $xml =~ m{<offer sku="ESC-1">.*?<brand>(.*?)</brand>}s;
diag("feed: escaped model '" . ($model // 'none') . "', brand '" . ($brand // 'none') . "'");
sub unescape { my ($s) = @_; $s =~ s/&lt;/</g; $s =~ s/&gt;/>/g; $s =~ s/&quot;/"/g; $s =~ s/&apos;/'/g; $s =~ s/&#39;/'/g; $s =~ s/&#34;/"/g; $s =~ s/&amp;/&/g; return $s }
ok(defined $model && $model !~ /[<>"']|&(?!amp;|lt;|gt;|quot;|apos;|#\d+;)/, 'feed: the model has & < > " \' escaped');
ok(defined $brand && $brand !~ /[<>"']|&(?!amp;|lt;|gt;|quot;|apos;|#\d+;)/, 'feed: the brand has & < > " \' escaped');
is(unescape($model // ''), q{Phone <X> & "Q" 'Y'}, 'feed: the model unescapes to the original');
is(unescape($brand // ''), q{A&B <C> "D" 'E'}, 'feed: the brand unescapes to the original');
like($xml, qr{<company>Shop &amp; (?:&quot;|")Sons(?:&quot;|") &lt;1&gt;</company>}, 'feed: the company name is escaped');

# Refusals: never a partial or empty feed.
sub feed_error
{
	my ($store) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT demper.price_feed($store)");
	return ($ret != 0 && $out eq '') ? $err : "returned a feed of " . length($out) . " bytes";
}
my $empty = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Empty', 'EMPTY1') RETURNING id");
like(feed_error($empty), qr/ERROR:.*partial/, 'feed: a store with no products is refused (partial)');
my $nobrand = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('No brand', 'NOBRAND1') RETURNING id");
psql("INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price) VALUES
	($nobrand, '8201', 'NB-1', 'Cable', 'Acme', 990, 500), ($nobrand, '8202', 'NB-2', 'Cable', NULL, 990, 500)");
like(feed_error($nobrand), qr/ERROR:.*partial/, 'feed: a product without brand makes it refused (partial)');
my $nomodel = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('No model', 'NOMODEL1') RETURNING id");
psql("INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price) VALUES
	($nomodel, '8301', 'NM-1', 'Cable', 'Acme', 990, 500), ($nomodel, '8302', 'NM-2', NULL, 'Acme', 990, 500)");
like(feed_error($nomodel), qr/ERROR:.*partial/, 'feed: a product without model makes it refused (partial)');
my $longsku = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Long sku', 'LONGSKU1') RETURNING id");
psql("INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price) VALUES
	($longsku, '8401', 'LS-1', 'Cable', 'Acme', 990, 500), ($longsku, '8402', 'ABCDEFGHIJKLMNOPQRSTU', 'Charger', 'Acme', 990, 500)");
like(feed_error($longsku), qr/ERROR:.*partial/, 'feed: a sku of 21 characters makes it refused (partial)');
psql("UPDATE demper.product SET sku = 'ABCDEFGHIJKLMNOPQRST' WHERE store_id = $longsku AND product_code = '8402'");
like(psql("SELECT demper.price_feed($longsku)"), qr/<offer sku="ABCDEFGHIJKLMNOPQRST">/, 'feed: a sku of exactly 20 characters is served');

# ---------------------------------------------------------------------------------------------
# Roles.
psql("CREATE ROLE t_reader LOGIN; GRANT demper_reader TO t_reader;
      CREATE ROLE t_admin LOGIN; GRANT demper_admin TO t_admin;
      CREATE ROLE t_public LOGIN;");
my $pid1 = psql("SELECT id FROM demper.product WHERE sku = 'F-2'");
my $mid = '30020001';
my $rstore = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Rotate', '$mid') RETURNING id");
my $fp1 = store_credentials($node, $mock, $rstore, $mid, 'SESSrot1', 'SIDrot1');
$mock->set_offers(8500, [['C1', 3000]]);
psql("INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price, availabilities) VALUES ($rstore, '8500', 'R-1', 'Thing', 'Acme', 5000, 100, '$DEFAULT_AVAILABILITIES')");
my $rp = psql("SELECT id FROM demper.product WHERE sku = 'R-1'");

my @reader_ok = (
	['SELECT count(*) FROM demper.product_status', 'SELECT product_status'],
	['SELECT checks_started FROM demper.demper_stats()', 'call demper_stats()'],
	["SELECT demper.explain($pid1)", 'call explain()'],
	['SELECT name, needs_login, credentials_key FROM demper.store', 'SELECT the store\'s other columns'],
	['SELECT pending FROM demper.push_status', 'SELECT push_status'],
);
for my $c (@reader_ok)
{
	my ($ok, $out, $err) = as('t_reader', $c->[0]);
	ok($ok, "reader can $c->[1]") or diag($err);
}
my @reader_denied = (
	['SELECT credentials FROM demper.store', 'SELECT store.credentials'],
	["UPDATE demper.product SET min_price = 200 WHERE id = $pid1", 'UPDATE product'],
	["SELECT demper.set_credentials($rstore, 'a', 'b')", 'call set_credentials()'],
	["UPDATE demper.store SET name = 'x' WHERE id = $rstore", 'UPDATE store'],
	["SELECT demper.price_feed($feed_store)", 'call price_feed()'],
	["SELECT demper.rotate_credentials_key('$key1')", 'call rotate_credentials_key()'],
);
for my $c (@reader_denied)
{
	my ($ok, $out, $err) = as('t_reader', $c->[0]);
	ok(!$ok && $err =~ /permission denied/, "reader cannot $c->[1]") or diag("ok=$ok out=$out err=$err");
}

# Admin: configure, set credentials, approve; never read credentials.
my $astore = psql("INSERT INTO demper.store (name, merchant_id, approval_mode) VALUES ('Approve', '30020002', true) RETURNING id");
psql("INSERT INTO demper.product (store_id, product_code, sku, model, brand, price, min_price, availabilities) VALUES ($astore, '8600', 'A-1', 'Thing', 'Acme', 5000, 100, '$DEFAULT_AVAILABILITIES')");
my $ap = psql("SELECT id FROM demper.product WHERE sku = 'A-1'");
my $proposal = psql("INSERT INTO demper.proposal (product_id, store_id, old_price, new_price, competitor_price, reason)
	VALUES ($ap, $astore, 5000, 4900, 4901, 'undercut') RETURNING id");
my @admin_ok = (
	["UPDATE demper.product SET min_price = 150 WHERE id = $pid1", 'UPDATE product'],
	["UPDATE demper.store SET name = 'Renamed' WHERE id = $astore", 'UPDATE store (name)'],
	["SELECT demper.set_credentials($astore, 'SESSadmin', 'SIDadmin')", 'call set_credentials()'],
	["SELECT demper.approve($proposal)", 'call approve()'],
	["SELECT length(demper.price_feed($feed_store)) > 0", 'call price_feed()'],
	['SELECT count(*) FROM demper.product_status', 'SELECT product_status'],
);
$mock->request('PUT', '/_mock/merchant/30020002', { session => 'SESSadmin', sid => 'SIDadmin' });
for my $c (@admin_ok)
{
	my ($ok, $out, $err) = as('t_admin', $c->[0]);
	ok($ok, "admin can $c->[1]") or diag($err);
}
is(psql("SELECT price FROM demper.product WHERE id = $ap"), '4900', 'admin approve() applied the proposal');
ok(poll_until(sub { psql("SELECT count(*) FROM demper.outbox WHERE product_id = $ap AND status = 'done'") == 1 }, 30),
	'the approved price was pushed (credentials set by the admin)');
my @admin_denied = (
	['SELECT credentials FROM demper.store', 'SELECT store.credentials'],
	["UPDATE demper.store SET credentials = 'x' WHERE id = $astore", 'UPDATE store.credentials directly'],
	["UPDATE demper.store SET credentials_key = 'x' WHERE id = $astore", 'UPDATE store.credentials_key directly'],
	["SELECT demper.rotate_credentials_key('$key1')", 'call rotate_credentials_key()'],
	["SELECT * FROM demper.store WHERE id = $astore", 'SELECT * from store (includes credentials)'],
);
for my $c (@admin_denied)
{
	my ($ok, $out, $err) = as('t_admin', $c->[0]);
	ok(!$ok && $err =~ /permission denied/, "admin cannot $c->[1]") or diag("ok=$ok out=$out err=$err");
}

# PUBLIC: a fresh role can do nothing.
my @public = (
	'SELECT count(*) FROM demper.product', 'SELECT count(*) FROM demper.product_status',
	'SELECT name FROM demper.store', 'SELECT count(*) FROM demper.outbox', 'SELECT count(*) FROM demper.push_status',
	'SELECT count(*) FROM demper.price_history', 'SELECT * FROM demper.demper_stats()',
	"SELECT demper.explain($pid1)", "SELECT demper.check_now($pid1)", 'SELECT demper.wake_workers()',
	"SELECT demper.set_credentials($rstore, 'a', 'b')", "SELECT demper.price_feed($feed_store)",
	"SELECT demper.approve($proposal)", "SELECT demper.rotate_credentials_key('$key1')",
	'SELECT * FROM demper.http_status()',
);
my @public_allowed;
for my $sql (@public)
{
	my ($ok, $out, $err) = as('t_public', $sql);
	push @public_allowed, "$sql -> $out" if $ok || $err !~ /permission denied/;
}
is(scalar(@public_allowed), 0, 'PUBLIC (a fresh login role) can do nothing (' . scalar(@public) . ' statements)')
  or diag(join("\n", @public_allowed));

# ---------------------------------------------------------------------------------------------
# Key rotation.
my $stores_sealed = psql('SELECT count(*) FROM demper.store WHERE credentials IS NOT NULL');
my %fp_before = map { split /\|/ } split /\n/, psql('SELECT id, credentials_key FROM demper.store WHERE credentials IS NOT NULL');
my $key2 = write_key_file("$tmp/key2");
reload_conf($node, 'demper.credentials_key_file' => "'$key2'");
my $resealed = psql("SELECT demper.rotate_credentials_key('$key1')");
is($resealed, $stores_sealed, "rotate_credentials_key re-sealed every store ($resealed of $stores_sealed)");
my %fp_after = map { split /\|/ } split /\n/, psql('SELECT id, credentials_key FROM demper.store WHERE credentials IS NOT NULL');
is(scalar(grep { $fp_after{$_} eq $fp_before{$_} } keys %fp_before), 0, 'every credentials_key fingerprint changed');
my $fp2 = psql("SELECT DISTINCT credentials_key FROM demper.store WHERE credentials IS NOT NULL");
isnt($fp2, $fp1, "the new fingerprint ($fp2) is not the old one ($fp1)");
is(psql("SELECT demper.rotate_credentials_key('$key1')"), '0', 'a second rotation re-seals nothing');
my $t_rot = time;
$mock->set_offers(8500, [['C1', 2500]]);
ok(poll_until(sub { psql("SELECT demper.check_now($rp); SELECT price FROM demper.product WHERE id = $rp") == 2499 }, 30),
	'the rotate store\'s new price is decided after the rotation');
ok(poll_until(sub { scalar(grep { $_->{sku} eq 'R-1' && $_->{price} == 2499 && $_->{t} >= $t_rot } mock_pushes($mock, $mid)) }, 30),
	'pushes still work after the rotation (the mock accepted the new price)');
is(psql("SELECT needs_login FROM demper.store WHERE id = $rstore"), 'f', 'the rotated store does not need a login');

diag(sprintf('total %.1f s', time - $t_start));
$node->stop;
$mock->stop;
done_testing();
