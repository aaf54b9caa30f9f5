# DemperTest: what demper's TAP tests share: the mock marketplace (start it, change its offer
# books and faults, read its request log), a PostgreSQL node with demper preloaded and pointed at
# the mock, polling helpers, and an independent implementation of the default price rule.
package DemperTest;

use strict;
use warnings;

use Exporter 'import';
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(start_mock demper_node expected_price poll_until mock_request_times
  max_in_window worker_pid wait_for_worker demper_stats insert_products wait_for_connections
  wait_for_exit mock_requests_for mock_log reload_conf http_status raise_fd_limit fd_limit
  write_key_file store_credentials mock_pushes reliability vm_rss_kb history_problems push_problems
  server_log_count $DEFAULT_AVAILABILITIES);

my $json = JSON::PP->new->canonical;

# $DEFAULT_AVAILABILITIES is the pickup point a hand-entered test product is stocked at: a push
# carries the listing's pickup points and waits while it has none (an imported listing brings its
# own), so tests that push give their products this one.
our $DEFAULT_AVAILABILITIES = '[{"storeId":"PP1","available":"yes"}]';

our @started_mocks;    # every mock started, for the END block below

# start_mock starts the mock marketplace with one listening port per egress and returns a
# DemperTest::Mock. Options: egresses => N, books => "path to TSV", synthetic => N.
sub start_mock {
	my (%opt) = @_;
	my $bin = $ENV{DEMPER_MOCK} or die "DEMPER_MOCK is not set";
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $egresses = $opt{egresses} // 1;
	my @cmd = ($bin);
	push @cmd, ('--listen', '127.0.0.1:0') for 1 .. $egresses;
	push @cmd, ('--port-file', "$dir/ports", '--log', "$dir/requests.log");
	push @cmd, ('--books', $opt{books}) if $opt{books};
	push @cmd, ('--synthetic', $opt{synthetic}) if $opt{synthetic};
	my $h = IPC::Run::start(\@cmd, '>', "$dir/mock.out", '2>', "$dir/mock.err");
	my $deadline = time + 60;
	while (!-s "$dir/ports")
	{
		die "mock marketplace did not start: " . slurp_file("$dir/mock.err")
		  if time > $deadline || !$h->pumpable;
		usleep(20_000);
	}
	my @ports = grep { /^\d+$/ } split /\s+/, slurp_file("$dir/ports");
	my $mock = bless {
		handle => $h,
		dir => $dir,
		ports => \@ports,
		log => "$dir/requests.log",
		base => "http://127.0.0.1:$ports[0]",
		http => HTTP::Tiny->new(timeout => 30, keep_alive => 0),
	}, 'DemperTest::Mock';
	push @started_mocks, $mock;
	return $mock;
}

# Every mock a test started is stopped when the test ends, also when it dies halfway: an END block
# runs before global destruction, where DESTROY may come too late (a dying test left its mock
# listening).
END
{
	for my $mock (@started_mocks)
	{
		eval { $mock->{handle}->kill_kill if $mock->{handle} };
	}
}

# demper_node creates and starts a node with demper preloaded, its worker pointed at the mock,
# and the extension created in database postgres. Extra settings come in %conf.
sub demper_node {
	my ($name, $mock, %conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my %settings = (
		shared_preload_libraries => "'demper'",
		'demper.database' => "'postgres'",
		'demper.offers_url' => "'" . $mock->{base} . "/yml/offer-view/offers/{product_code}'",
		'demper.allowed_hosts' => "'127.0.0.1'",
		'demper.allow_private_addresses' => 'on',    # the mock listens on 127.0.0.1
		'demper.requests_per_second' => 500,
		'demper.burst' => 20,
		'demper.max_inflight' => 32,
		'demper.check_interval' => "'1h'",
		'demper.http_timeout' => "'5s'",
		'demper.lease_time' => "'20s'",
		%conf);
	$node->append_conf('postgresql.conf',
		join('', map { "$_ = $settings{$_}\n" } sort keys %settings));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION demper');
	return $node;
}

# expected_price is the default rule of README.md, written again independently of the C++ code:
# competitors are the offers of other merchants; with none, max_price when set, else unchanged;
# otherwise the cheapest competitor minus step, at least max(min_price, 10), at most max_price.
sub expected_price {
	my (%p) = @_;    # price, min_price, max_price (undef = none), step, own, offers => [[merchant, price]...]
	my @competitors = sort { $a <=> $b } map { $_->[1] } grep { $_->[0] ne $p{own} } @{ $p{offers} };
	if (!@competitors)
	{
		return defined $p{max_price} ? $p{max_price} : $p{price};
	}
	my $target = $competitors[0] - $p{step};
	my $floor = $p{min_price} > 10 ? $p{min_price} : 10;
	$target = $floor if $target < $floor;
	$target = $p{max_price} if defined $p{max_price} && $target > $p{max_price};
	return $target;
}

# poll_until calls $check until it returns true or $timeout seconds pass; returns its last result.
sub poll_until {
	my ($check, $timeout) = @_;
	$timeout //= $PostgreSQL::Test::Utils::timeout_default;
	my $deadline = time + $timeout;
	while (1)
	{
		my $ok = $check->();
		return $ok if $ok || time > $deadline;
		usleep(50_000);
	}
}

# worker_pid returns the pid of the demper worker ('' when none runs).
sub worker_pid {
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pg_stat_clear_snapshot(); SELECT pid FROM pg_stat_activity WHERE backend_type = 'demper worker'"
	);
}

# wait_for_worker waits until a demper worker runs and returns its pid.
sub wait_for_worker {
	my ($node) = @_;
	my $pid;
	poll_until(sub { $pid = worker_pid($node); $pid =~ s/\D//g; $pid ne '' }, 120)
	  or die "no demper worker started";
	return $pid;
}

# mock_request_times returns the arrival times (unix seconds) of the offer requests in the mock's
# log, optionally only those after $since.
sub mock_request_times {
	my ($mock, $since) = @_;
	$mock->post('/_mock/log/flush', {});
	my @times;
	open my $fh, '<', $mock->{log} or return ();
	while (my $line = <$fh>)
	{
		my ($t, $port, $method, $path) = split /\t/, $line;
		next unless defined $path && $path =~ m{/offer-view/offers/};
		next if defined $since && $t < $since;
		push @times, $t;
	}
	close $fh;
	return sort { $a <=> $b } @times;
}

# max_in_window returns the largest number of times that fall in any window of $width seconds.
sub max_in_window {
	my ($width, @times) = @_;
	my ($max, $lo) = (0, 0);
	for my $hi (0 .. $#times)
	{
		$lo++ while $times[$hi] - $times[$lo] >= $width;
		my $n = $hi - $lo + 1;
		$max = $n if $n > $max;
	}
	return $max;
}

# demper_stats returns the row of demper.demper_stats() as a hash reference (column => value).
sub demper_stats
{
	my ($node) = @_;
	my $out = $node->safe_psql('postgres',
		'SELECT row_to_json(s) FROM demper.demper_stats() s');
	return $json->decode($out);
}

# insert_products inserts products due now (next_check_at = now()) and wakes the worker. Each
# product is a hash: store (store id, default 1), code, sku (default "sku-<code>"), price, min,
# max (undef = no ceiling), step (default 1), availabilities (JSON text, default
# $DEFAULT_AVAILABILITIES).
sub insert_products
{
	my ($node, @products) = @_;
	return unless @products;
	my @values = map {
		sprintf("(%d, '%s', '%s', %d, %d, %s, %d, '%s', now())",
			$_->{store} // 1, $_->{code}, $_->{sku} // "sku-$_->{code}",
			$_->{price}, $_->{min}, defined $_->{max} ? $_->{max} : 'NULL', $_->{step} // 1,
			$_->{availabilities} // $DEFAULT_AVAILABILITIES)
	} @products;
	$node->safe_psql('postgres',
		    "INSERT INTO demper.product (store_id, product_code, sku, price, min_price, max_price, step, availabilities, next_check_at) VALUES "
		  . join(',', @values)
		  . '; SELECT demper.wake_workers()');
	return;
}

# wait_for_connections polls until the node accepts connections and answers a query again (after
# crash recovery, say); returns true when it does within $timeout seconds (default 180).
sub wait_for_connections
{
	my ($node, $timeout) = @_;
	return poll_until(
		sub {
			my $r = eval { $node->safe_psql('postgres', 'SELECT 1') };
			return defined $r && $r eq '1';
		},
		$timeout // 180);
}

# wait_for_exit polls until process $pid no longer exists (kill 0 fails); returns the seconds it
# took (measured from the call), or undef when it still exists after $timeout seconds (default 60).
sub wait_for_exit
{
	my ($pid, $timeout) = @_;
	my $start = time;
	my $deadline = $start + ($timeout // 60);
	while (kill(0, $pid))
	{
		return undef if time > $deadline;
		usleep(5_000);    # fine-grained: the exit time is a measured figure
	}
	return time - $start;
}

# mock_requests_for returns how many offer requests for product $code the mock's log holds.
sub mock_requests_for
{
	my ($mock, $code) = @_;
	$mock->post('/_mock/log/flush', {});
	my $n = 0;
	open my $fh, '<', $mock->{log} or return 0;
	while (my $line = <$fh>)
	{
		my ($t, $port, $method, $path) = split /\t/, $line;
		$n++ if defined $path && $path eq "/yml/offer-view/offers/$code";
	}
	close $fh;
	return $n;
}

# mock_log returns the mock's request log as a list of array references
# [time, egress port, method, path, status, bytes], oldest first, BAN lines included (method
# "BAN", path "egress" or "merchant:<uid>", last column the ban length in ms); optionally only the
# lines at or after $since (unix seconds).
sub mock_log
{
	my ($mock, $since) = @_;
	$mock->post('/_mock/log/flush', {});
	my @lines;
	open my $fh, '<', $mock->{log} or return ();
	while (my $line = <$fh>)
	{
		chomp $line;
		my @f = split /\t/, $line;
		next unless @f >= 6;
		next if defined $since && $f[0] < $since;
		push @lines, \@f;
	}
	close $fh;
	return @lines;
}

# reload_conf sets demper settings with ALTER SYSTEM (values are SQL literals: "'1s'", 10) and
# signals the server to reload its configuration; returns the time of pg_reload_conf().
sub reload_conf
{
	my ($node, %set) = @_;
	$node->safe_psql('postgres', join('', map { "ALTER SYSTEM SET $_ = $set{$_};\n" } sort keys %set));
	my $t = time;
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	return $t;
}

# http_status returns the rows of demper.http_status() as hash references (column => value).
sub http_status
{
	my ($node) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT coalesce(json_agg(s ORDER BY kind, name), '[]') FROM demper.http_status() s");
	return @{ $json->decode($out) };
}

# fd_limit returns the soft and hard open-file limits of process $pid (default: this one), read
# from /proc/<pid>/limits.
sub fd_limit
{
	my ($pid) = @_;
	$pid //= $$;
	open my $fh, '<', "/proc/$pid/limits" or return;
	while (my $line = <$fh>)
	{
		return ($1, $2) if $line =~ /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/;
	}
	return;
}

# raise_fd_limit raises this process's soft open-file limit to $want (at most the hard limit),
# with util-linux's prlimit on our own pid. Processes started afterwards inherit it: the mock
# (IPC::Run) and the server (pg_ctl, from $node->start), hence its worker and libcurl's sockets.
# Returns the soft limit now in force.
sub raise_fd_limit
{
	my ($want) = @_;
	my ($soft, $hard) = fd_limit();
	return $soft if !defined $soft || $soft eq 'unlimited' || $soft >= $want;
	$want = $hard if $hard ne 'unlimited' && $hard < $want;
	system('prlimit', "--pid=$$", "--nofile=$want:") == 0
	  or diag("prlimit --pid=$$ --nofile=$want: failed: $?");
	($soft) = fd_limit();
	return $soft;
}

# write_key_file writes a credentials key (32 random bytes from /dev/urandom) to $path, readable
# only by its owner (the server's user: the tests run as it), and returns $path.
sub write_key_file
{
	my ($path) = @_;
	open my $in, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
	my $n = read($in, my $bytes, 32);
	close $in;
	die "short read from /dev/urandom" unless defined $n && $n == 32;
	open my $out, '>:raw', $path or die "$path: $!";
	print $out $bytes;
	close $out or die "$path: $!";
	chmod 0600, $path or die "chmod $path: $!";
	return $path;
}

# store_credentials gives merchant $merchant the cabinet session ($session, $sid) on the mock,
# then seals the same cookies into store $store_id with demper.set_credentials(), with statement
# logging off for that call (the test framework logs every statement: the cookies would reach
# the server log through the test itself). Returns what set_credentials returned (the key's
# fingerprint).
sub store_credentials
{
	my ($node, $mock, $store_id, $merchant, $session, $sid) = @_;
	$mock->request('PUT', "/_mock/merchant/$merchant",
		{ session => $session, sid => $sid, expired => JSON::PP::false });
	return $node->safe_psql('postgres',
		"SET log_statement = 'none';\nSELECT demper.set_credentials($store_id, '$session', '$sid');");
}

# mock_pushes returns the pushes the mock accepted (hash references: t, merchantUid, sku, model,
# price, cityPrices), oldest first; only merchant $merchant's when given.
sub mock_pushes
{
	my ($mock, $merchant) = @_;
	my $all = $mock->get('/_mock/pushes')->{pushes} // [];
	for my $push (@$all)
	{
		# A push in the cabinet's shape has no price of its own: the listing's price is the one
		# its cities carry, all the same (undef when they differ, which no test expects).
		next if defined $push->{price} || ref $push->{cityPrices} ne 'ARRAY' || !@{ $push->{cityPrices} };
		my %values = map { $_->{value} => 1 } @{ $push->{cityPrices} };
		$push->{price} = (keys %values)[0] if keys %values == 1;
	}
	return grep { !defined $merchant || $_->{merchantUid} eq $merchant } @$all;
}

# reliability prints the one-line record of a fault or hostile input that scripts/reliability.sh
# collects from the TAP logs into docs/RELIABILITY.md:
#   # RELIABILITY|<fault>|<times tried>|<lost>|<detail>
# "lost" counts what the fault cost (products left unchecked, prices wrong, half-written
# decisions, pushes lost...): zero is the goal. Fields must not contain "|".
sub reliability
{
	my ($fault, $times, $lost, $detail) = @_;
	s/\|/\//g for grep { defined } ($fault, $detail);
	diag(join('|', 'RELIABILITY', $fault, $times, $lost, $detail // ''));
	return;
}

# vm_rss_kb returns the resident set size of process $pid in kB (VmRSS of /proc/<pid>/status;
# or another field of it, e.g. RssAnon: private memory only, without the shared buffers the
# process touched), or undef when the process is gone.
sub vm_rss_kb
{
	my ($pid, $field) = @_;
	$field //= 'VmRSS';
	open my $fh, '<', "/proc/$pid/status" or return undef;
	while (my $line = <$fh>)
	{
		return $1 if $line =~ /^\Q$field\E:\s+(\d+)\s+kB/;
	}
	return undef;
}

# history_problems checks the price history of the products matching $where against their
# initial prices (%$initial: product id => price before the test): for each product the rows,
# in id order, must form a chain from the initial price to the current one (each row's old price
# is the previous row's new price), no row may leave the price unchanged, and a product without
# rows must still be at its initial price. Returns the problems as strings (empty: consistent).
sub history_problems
{
	my ($node, $where, $initial) = @_;
	my %price = map { split /\|/ } split /\n/,
	  $node->safe_psql('postgres', "SELECT id, price FROM demper.product p WHERE $where");
	my %rows;
	for my $line (split /\n/, $node->safe_psql('postgres',
		"SELECT h.product_id, h.old_price, h.new_price FROM demper.price_history h JOIN demper.product p ON p.id = h.product_id WHERE $where ORDER BY h.product_id, h.id"))
	{
		my ($id, $old, $new) = split /\|/, $line;
		push @{ $rows{$id} }, [ $old, $new ];
	}
	my @problems;
	for my $id (sort { $a <=> $b } keys %price)
	{
		my $at = $initial->{$id};
		next unless defined $at;
		for my $r (@{ $rows{$id} // [] })
		{
			push @problems, "product $id: history row $r->[0] -> $r->[1] does not start from $at" if $r->[0] != $at;
			push @problems, "product $id: history row $r->[0] -> $r->[1] changes nothing" if $r->[0] == $r->[1];
			$at = $r->[1];
		}
		push @problems, "product $id: price $price{$id} but its history ends at $at" if $at != $price{$id};
	}
	return @problems;
}

# push_problems compares the products of $where (stores publishing through the API) with the
# pushes the mock accepted: a product whose price changed must have as its last accepted push its
# current price (else the push is lost); its outbox must hold no pending or failed row. Returns
# (lost, duplicates, problems): duplicates counts accepted pushes beyond the first of the same
# listing and price in a row (allowed by at-least-once after a crash).
sub push_problems
{
	my ($node, $mock, $where) = @_;
	my @products = map { [ split /\|/ ] } split /\n/, $node->safe_psql('postgres',
		"SELECT s.merchant_id, p.sku, p.price, EXISTS (SELECT 1 FROM demper.price_history h WHERE h.product_id = p.id),
		        (SELECT count(*) FROM demper.outbox o WHERE o.product_id = p.id AND o.status <> 'done')
		   FROM demper.product p JOIN demper.store s ON s.id = p.store_id WHERE $where");
	my (%last, %seq);
	for my $push (DemperTest::mock_pushes($mock))
	{
		my $k = "$push->{merchantUid}/$push->{sku}";
		$last{$k} = $push->{price};
		push @{ $seq{$k} }, $push->{price};
	}
	my ($lost, $dups, @problems) = (0, 0);
	for my $p (@products)
	{
		my ($merchant, $sku, $price, $changed, $open) = @$p;
		my $k = "$merchant/$sku";
		if ($changed eq 't' && (!defined $last{$k} || $last{$k} != $price))
		{
			$lost++;
			push @problems, "$k: price $price, last push " . ($last{$k} // 'none');
		}
		if ($open > 0)
		{
			$lost++;
			push @problems, "$k: $open outbox rows not done";
		}
		my @s = @{ $seq{$k} // [] };
		$dups += scalar grep { $s[$_] == $s[ $_ - 1 ] } 1 .. $#s;
	}
	return ($lost, $dups, @problems);
}

# server_log_count counts the lines of the node's server log matching $re (from byte $offset).
sub server_log_count
{
	my ($node, $re, $offset) = @_;
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
	$log = substr($log, $offset) if $offset;
	return scalar(() = $log =~ /$re/mg);
}

package DemperTest::Mock;

use strict;
use warnings;
use JSON::PP;

my $codec = JSON::PP->new->canonical;

sub port { return $_[0]->{ports}[ $_[1] // 0 ] }

sub request {
	my ($self, $method, $path, $body) = @_;
	my $res = $self->{http}->request($method, $self->{base} . $path,
		{ headers => { 'Content-Type' => 'application/json' },
		  defined $body ? (content => $codec->encode($body)) : () });
	die "mock $method $path failed: $res->{status} $res->{content}" unless $res->{success};
	return length($res->{content} // '') ? $codec->decode($res->{content}) : {};
}

sub post { my ($self, $path, $body) = @_; return $self->request('POST', $path, $body) }
sub get { my ($self, $path) = @_; return $self->request('GET', $path) }

# set_offers replaces a product's offer book: offers => [[merchant_id, price], ...]
sub set_offers {
	my ($self, $code, $offers) = @_;
	my @list = map { { merchantId => $_->[0], merchantName => "Shop $_->[0]", price => $_->[1] } } @$offers;
	return $self->request('PUT', "/_mock/offers/$code", { offers => \@list });
}

sub fault { my ($self, %f) = @_; return $self->post('/_mock/fault', \%f) }
sub stats { return $_[0]->get('/_mock/stats') }
sub reset { return $_[0]->post('/_mock/reset', {}) }

sub stop {
	my ($self) = @_;
	return unless $self->{handle};
	$self->{handle}->signal('TERM');
	$self->{handle}->finish;
	delete $self->{handle};
}

sub DESTROY { my ($self) = @_; eval { $self->{handle}->kill_kill if $self->{handle} } }

1;
