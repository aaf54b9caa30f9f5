# The seller's cabinet both ways (issue 15), against the mock cabinet:
#   1. import: the offer list page by page (on sale and archived), each listing's details (cities,
#      prices, pickup points), one row per listing and city; imported listings wait for a floor;
#   2. a page that fails: the import fails and archives nothing; the next complete one archives;
#   3. a price the seller changed by hand in the cabinet is taken as the current price (history);
#      the seller's own settings survive a re-import;
#   4. floors with one UPDATE: the listings are repriced and pushed in the cabinet's own shape
#      (every city, exactly the cabinet's availabilities, no top-level price, no stock);
#   5. a listing whose pickup points are unknown (typed by hand) waits, visibly, and pushes nothing;
#   6. verification: accepted pushes are verified in the cabinet; a push the cabinet does not apply
#      is rejected with the reason; an offer that went off sale after a push is flagged loudly;
#   7. the offers request goes out over HTTP/1.1 with a browser's header set; with
#      demper.http_version = 2 and a WAF that answers 405 to HTTP/2, checks fail: the setting works.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time;
my $merchant = '30067228';
my ($session, $sid) = ('sess-cabinet-1', 'sid-cabinet-1');
my $mock = start_mock(synthetic => 200000);
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $key = write_key_file("$tmp/key");
my $base = $mock->{base};
my $node = demper_node('cabinet', $mock,
	'demper.credentials_key_file' => "'$key'",
	'demper.push_url' => "'$base/pricefeed/upload/merchant/process'",
	'demper.push_job_url' => "'$base/pricefeed/upload/merchant/job/{job_id}'",
	'demper.catalogue_list_url' => "'$base/bff/offer-view/list?m={merchant_uid}&p={page}&l={limit}&a={active}'",
	'demper.catalogue_details_url' => "'$base/bff/offer-view/details?m={merchant_uid}&s={sku}'",
	'demper.catalogue_sync_interval' => 0,
	'demper.catalogue_page_size' => 25,
	'demper.cabinet_read_rate' => 200,
	'demper.push_rate' => 50,
	'demper.push_verify_delay' => "'1s'",
	'demper.push_verify_timeout' => "'15s'",
	'demper.check_interval' => "'1h'");
$mock->post('/_mock/push_limits', { push_limit_rps => 1000 });

sub psql { return $node->safe_psql('postgres', $_[0]) }
my $json = JSON::PP->new;

# The cabinet: 60 offers in three cities (codes 1001.. have books in the mock), every 6th archived.
my @cities = ('750000000', '710000000', '511010000');
$mock->request('PUT', "/_mock/cabinet/$merchant", { session => $session, sid => $sid, offers => [] });
$mock->post("/_mock/cabinet/$merchant/synthetic", { count => 60, first_code => 1001, cities => \@cities, archived_every => 6 });
my $cabinet = $mock->get("/_mock/cabinet/$merchant");
my @live = grep { $_->{live} } @{ $cabinet->{offers} };
my @archived = grep { !$_->{live} } @{ $cabinet->{offers} };
diag(sprintf('cabinet: %d offers on sale, %d archived', scalar(@live), scalar(@archived)));

my $store = psql("INSERT INTO demper.store (name, merchant_id, push_mode) VALUES ('Cabinet', '$merchant', 'api') RETURNING id");
store_credentials($node, $mock, $store, $merchant, $session, $sid);

# sync waits for the store's next import to end (after $after, a time from SQL) and returns its row.
sub sync
{
	my ($what) = @_;
	my $after = psql('SELECT now()');
	psql("SELECT demper.sync_catalogue($store)");
	my $row;
	ok(poll_until(sub {
		$row = psql("SELECT status || '|' || coalesce(error, '') FROM demper.catalogue_sync WHERE store_id = $store AND finished_at > '$after'");
		$row ne '' }, 120), "$what: the import ended");
	return split /\|/, $row, 2;
}

# ---------------------------------------------------------------------------------------------
# 1. Import.
my ($status, $error) = sync('import');
is($status, 'done', 'import: done') or diag($error);
my $rows_expected = 0;
$rows_expected += scalar(@{ $_->{cities} }) for @live;
is(psql("SELECT count(*) FROM demper.product WHERE store_id = $store AND NOT cabinet_archived"), $rows_expected,
	'import: one row per listing on sale and city');
is(psql("SELECT count(*) FROM demper.product WHERE store_id = $store AND cabinet_archived AND NOT bot_active"), scalar(@archived),
	'import: each archived listing is there, inactive');
is(psql("SELECT listings_seen FROM demper.catalogue_sync WHERE store_id = $store"), scalar(@live) + scalar(@archived),
	'import: catalogue_sync counts every listing seen (both lists, page by page)');
my $mismatch = 0;
for my $o (@live)
{
	for my $c (@{ $o->{cities} })
	{
		my $row = psql("SELECT product_code || '|' || model || '|' || price || '|' || availabilities::text
		                  FROM demper.product WHERE store_id = $store AND sku = '$o->{sku}' AND city_id = '$c->{id}'");
		my ($code, $model, $price, $avail) = split /\|/, $row, 4;
		my $want_avail = $json->canonical->encode([ map { { storeId => $_->{storeId}, available => $_->{available},
			(defined $_->{stockCount} ? (stockCount => $_->{stockCount}) : ()), (defined $_->{preOrder} ? (preOrder => $_->{preOrder}) : ()) } } @{ $o->{availabilities} } ]);
		my $got_avail = defined $avail ? $json->canonical->encode($json->decode($avail)) : '';
		$mismatch++ unless defined $price && $code eq $o->{masterSku} && $model eq $o->{masterTitle} && $price == $c->{price}
		  && $got_avail eq $want_avail;
	}
}
is($mismatch, 0, 'import: card id, Cyrillic title, price per city and pickup points as the cabinet has them');
is(psql("SELECT count(*) FROM demper.product WHERE store_id = $store AND (bot_active OR min_price IS NOT NULL)"), 0,
	'import: no imported listing has a floor, none is repriced');
my ($ok_upd, $o_upd, $e_upd) = $node->psql('postgres', "UPDATE demper.product SET bot_active = true WHERE store_id = $store AND NOT cabinet_archived");
like($e_upd, qr/has no floor: set min_price before it is repriced/, 'import: activating a listing without a floor is refused, clearly');

# ---------------------------------------------------------------------------------------------
# 2. A list page fails: the import fails, nothing is archived; the next one archives.
my $to_archive = $live[0]{sku};
$mock->request('PATCH', "/_mock/cabinet/$merchant/offers/$to_archive", { archived => JSON::PP::true, archiveReason => 'Снят с продажи' });
$mock->post("/_mock/cabinet/$merchant/fault", { endpoint => 'list', page => 1, archived => JSON::PP::false, mode => 'status', status => 500 });
($status, $error) = sync('failing page');
is($status, 'failed', 'failing page: the import fails');
like($error, qr/page 1 of the on sale offers/, "failing page: the error names the page ($error)");
is(psql("SELECT count(*) FROM demper.product WHERE store_id = $store AND sku = '$to_archive' AND cabinet_archived"), 0,
	'failing page: a listing archived meanwhile is not archived by a failed import');
$mock->post("/_mock/cabinet/$merchant/fault", { endpoint => 'list', page => 1, archived => JSON::PP::false, mode => 'none' });
($status, $error) = sync('after the failure');
is($status, 'done', 'after the failure: the import succeeds') or diag($error);
is(psql("SELECT bool_and(cabinet_archived AND NOT bot_active) FROM demper.product WHERE store_id = $store AND sku = '$to_archive'"), 't',
	'after the failure: the listing archived in the cabinet is deactivated, not deleted');
reliability('a page of the cabinet\'s offer list fails during an import', 1,
	psql("SELECT count(*) FROM demper.product WHERE store_id = $store AND sku = '$to_archive' AND bot_active"), 'no listing archived by a failed import');

# ---------------------------------------------------------------------------------------------
# 3. Floors with one UPDATE; the seller's settings survive a re-import; a hand edit in the cabinet.
psql("UPDATE demper.product SET min_price = greatest(10, price / 2), bot_active = true
       WHERE store_id = $store AND NOT cabinet_archived");
my $edited = $live[1];
my $edit_city = $edited->{cities}[0]{id};
psql("UPDATE demper.product SET max_price = 900000, strategy = 'match', step = 3 WHERE store_id = $store AND sku = '$live[2]{sku}'");
my $settings_before = psql("SELECT string_agg(min_price || ':' || max_price || ':' || strategy || ':' || step, ',' ORDER BY city_id)
                              FROM demper.product WHERE store_id = $store AND sku = '$live[2]{sku}'");
# Let the first round of checks and pushes settle, then the seller edits a price in the cabinet.
ok(poll_until(sub { psql("SELECT count(*) FROM demper.product WHERE store_id = $store AND bot_active AND last_check_time IS NULL") == 0 }, 120),
	'floors: every listing with a floor is checked');
ok(poll_until(sub { psql("SELECT count(*) FROM demper.outbox WHERE store_id = $store AND (status = 'pending' OR verify_status = 'verifying')") == 0 }, 120),
	'floors: the pushes are sent and verified');
$mock->request('PATCH', "/_mock/cabinet/$merchant/offers/$edited->{sku}", { cityPrices => [ { cityId => $edit_city, value => 777777 } ] });
($status, $error) = sync('re-import');
is($status, 'done', 're-import: done') or diag($error);
is(psql("SELECT price FROM demper.product WHERE store_id = $store AND sku = '$edited->{sku}' AND city_id = '$edit_city'"), 777777,
	'hand edit: the price the seller set in the cabinet is the current price');
is(psql("SELECT count(*) FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id
          WHERE p.sku = '$edited->{sku}' AND p.city_id = '$edit_city' AND h.reason = 'cabinet_edit' AND h.new_price = 777777"), 1,
	'hand edit: recorded in the history as cabinet_edit');
is(psql("SELECT string_agg(min_price || ':' || max_price || ':' || strategy || ':' || step, ',' ORDER BY city_id)
           FROM demper.product WHERE store_id = $store AND sku = '$live[2]{sku}'"), $settings_before,
	're-import: the seller\'s floor, ceiling, strategy and step are untouched');

# ---------------------------------------------------------------------------------------------
# 4. The pushes' bodies are the cabinet's own shape.
my @pushes = grep { $_->{merchantUid} eq $merchant } @{ $mock->get('/_mock/pushes')->{pushes} };
ok(scalar(@pushes) > 0, sprintf('pushes: %d pushes reached the cabinet', scalar(@pushes)));
my %offer_by_sku = map { $_->{sku} => $_ } @{ $cabinet->{offers} };
my ($bad_shape, $bad_cities, $bad_avail) = (0, 0, 0);
for my $p (@pushes)
{
	my $b = $p->{body};
	my @keys = sort keys %$b;
	$bad_shape++ unless join(',', @keys) eq 'availabilities,cityPrices,merchantUid,model,sku';
	my $o = $offer_by_sku{ $b->{sku} } or next;
	my %want_cities = map { $_->{id} => 1 } @{ $o->{cities} };
	my %got_cities = map { $_->{cityId} => 1 } @{ $b->{cityPrices} };
	$bad_cities++ unless join(',', sort keys %want_cities) eq join(',', sort keys %got_cities);
	my $want = join(',', map { "$_->{storeId}=$_->{available}" } @{ $o->{availabilities} });
	my $got = join(',', map { "$_->{storeId}=$_->{available}" . (exists $_->{stockCount} ? '+stock' : '') } @{ $b->{availabilities} });
	$bad_avail++ unless $want eq $got;
}
is($bad_shape, 0, 'pushes: every body has exactly merchantUid, sku, model, availabilities, cityPrices (no price, no stock)');
is($bad_cities, 0, 'pushes: every body carries every city the listing is sold in');
is($bad_avail, 0, 'pushes: every body carries exactly the cabinet\'s availabilities');
my $view = $mock->get("/_mock/cabinet/$merchant");
my %now_live = map { $_->{sku} => $_->{live} } @{ $view->{offers} };
my $off_sale = grep { $_->{sku} ne $to_archive && !$now_live{ $_->{sku} } } @live;
is($off_sale, 0, 'pushes: every offer that was on sale is still on sale after the pushes');
ok(poll_until(sub { psql("SELECT count(*) FILTER (WHERE verify_status = 'verified') = count(*) AND count(*) > 0
                            FROM demper.outbox WHERE store_id = $store AND verify_status IS NOT NULL") eq 't' }, 60),
	'verification: every accepted push so far is verified in the cabinet');
cmp_ok(demper_stats($node)->{pushes_verified}, '>', 0, 'verification: demper_stats counts verified pushes');

# ---------------------------------------------------------------------------------------------
# 5. A listing typed by hand (pickup points unknown) waits for a sync, visibly, and pushes nothing.
my $hand = psql("INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
                 VALUES ($store, '1500', 'HAND-1', 9000, 100, now()) RETURNING id");
psql("SELECT demper.wake_workers()");
ok(poll_until(sub { psql("SELECT waiting_for_pickup_points FROM demper.push_status WHERE store_id = $store") >= 1 }, 60),
	'unknown pickup points: the push waits, and push_status says so');
is(psql("SELECT last_error FROM demper.outbox WHERE product_id = $hand AND status = 'pending'"),
	"waiting for a catalogue sync: the listing's pickup points are unknown (demper.sync_catalogue)",
	'unknown pickup points: the outbox row says why');
is(scalar(grep { $_->{body}{sku} eq 'HAND-1' } @{ $mock->get('/_mock/pushes')->{pushes} }), 0,
	'unknown pickup points: nothing was pushed for the listing');

# ---------------------------------------------------------------------------------------------
# 6. Verification: a push the cabinet does not apply (the offer is archived: /process never
#    re-activates) is rejected with the job's reason; a push after the cabinet dropped a pickup
#    point takes the offer off sale: flagged loudly.
my $rej = $live[3];
$mock->request('PATCH', "/_mock/cabinet/$merchant/offers/$rej->{sku}", { archived => JSON::PP::true });
my $rej_id = psql("SELECT id FROM demper.product WHERE store_id = $store AND sku = '$rej->{sku}' ORDER BY city_id LIMIT 1");
psql("UPDATE demper.product SET price = price + 100 WHERE id = $rej_id");
ok(poll_until(sub { psql("SELECT verify_status FROM demper.outbox WHERE product_id = $rej_id ORDER BY id DESC LIMIT 1") eq 'rejected' }, 60),
	'verification: a push the cabinet did not apply is rejected');
like(psql("SELECT verify_detail FROM demper.outbox WHERE product_id = $rej_id ORDER BY id DESC LIMIT 1"), qr/not_live|re-activate/,
	'verification: the rejection says why (the job\'s result)');
my $gone = $live[4];
my $other_point = "${merchant}_PP999";
my $gone_id = psql("SELECT id FROM demper.product WHERE store_id = $store AND sku = '$gone->{sku}' ORDER BY city_id LIMIT 1");
# The cabinet now has another pickup point than the one demper last read: the push carries a point
# the offer no longer has, and the cabinet takes the offer off sale.
$mock->request('PATCH', "/_mock/cabinet/$merchant/offers/$gone->{sku}",
	{ availabilities => [ { storeId => $other_point, available => 'yes' } ] });
psql("UPDATE demper.product SET price = price + 100 WHERE id = $gone_id");
ok(poll_until(sub { psql("SELECT verify_status FROM demper.outbox WHERE product_id = $gone_id ORDER BY id DESC LIMIT 1") eq 'off_sale' }, 60),
	'verification: an offer taken off sale after a push is found');
is(psql("SELECT off_sale FROM demper.push_status WHERE store_id = $store"), 1, 'off sale: push_status counts it');
cmp_ok(demper_stats($node)->{offers_off_sale}, '>=', 1, 'off sale: demper_stats counts it');
ok(poll_until(sub { server_log_count($node, qr/WARNING:.*offer "\Q$gone->{sku}\E" of store $store went off sale after a price push/) >= 1 }, 30),
	'off sale: a WARNING names the offer');

# ---------------------------------------------------------------------------------------------
# 7. The offers request: HTTP/1.1 and a browser's headers; HTTP/2 when set (and refused by a WAF).
my $head = $mock->get('/_mock/last_offers_request')->{head};
like($head, qr{^POST /yml/offer-view/offers/\S+ HTTP/1\.1\r\n}, 'offers request: HTTP/1.1');
like($head, qr{\r\nUser-Agent: Mozilla/5\.0 [^\r]*Chrome/124\.0\.0\.0}i, 'offers request: a full Chrome User-Agent');
for my $h ('Accept-Language: ru-RU,ru;q=0.9', 'Sec-Fetch-Site: same-origin', 'Sec-Fetch-Mode: cors', 'Sec-Fetch-Dest: empty',
	'X-KS-City: \d{9}', 'Cookie: kaspi.city=\d{9}', 'Referer: http://127.0.0.1:\d+/shop/p/-\S+/\?c=\d{9}')
{
	like($head, qr{\r\n$h(\r\n|$)}i, "offers request: $h");
}
$mock->post('/_mock/http2', { refuse => JSON::PP::true });
reload_conf($node, 'demper.http_version' => "'2'");
my $h2_code = psql("SELECT product_code FROM demper.product WHERE store_id = $store AND bot_active ORDER BY id LIMIT 1");
my $h2_id = psql("SELECT id FROM demper.product WHERE store_id = $store AND bot_active ORDER BY id LIMIT 1");
my $t7 = psql('SELECT now()');
ok(poll_until(sub {
	psql("SELECT demper.check_now($h2_id)");
	psql("SELECT last_check_time > '$t7' AND last_error LIKE '%405%' FROM demper.product WHERE id = $h2_id") eq 't' }, 60),
	'HTTP/2 when set: the refusing WAF answers 405 and the check fails');
cmp_ok($mock->get('/_mock/stats')->{http2_refused}, '>', 0, 'HTTP/2 when set: the mock saw HTTP/2');
$mock->post('/_mock/http2', { refuse => JSON::PP::false });
reload_conf($node, 'demper.http_version' => "'1.1'");
my $t8 = psql('SELECT now()');
ok(poll_until(sub {
	psql("SELECT demper.check_now($h2_id)");
	psql("SELECT last_check_time > '$t8' AND last_error IS NULL FROM demper.product WHERE id = $h2_id") eq 't' }, 60),
	'HTTP/1.1 again: the check succeeds');

diag(sprintf('total %.1f s', time - $t_start));
done_testing();
