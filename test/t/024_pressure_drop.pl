# When the adaptive schedule's pressure falls, products that checks scheduled under the old, higher
# pressure come forward (core::latest_next_check_s; the "pressure lag" of live runs: without it they
# wait up to their longest interval while the budget goes unspent).
#
# The test writes the due queue itself (base intervals, bounds, next checks, a foreign lease), so
# that nothing is due while it runs and every expectation follows from what it wrote: a budget of
# 0.01 requests/s holds the pressure at its ceiling (64); a reload to 0.25 requests/s lets it fall
# to about 5. Then, for every row:
#   - it moved iff it is unleased, has a base interval, its product has no failed checks, and its
#     next check lay beyond now + the bounded interval at the new pressure but not beyond now + its
#     longest interval (now: the statement's, recovered from the moved rows);
#   - a moved row's next check is now + bounded interval x spread(id), spread(id) = 0.5 + 0.5 x
#     (((id & 2147483647) x 2654435761) mod 1000) / 1000, the formula of the C++ function (its unit
#     test pins the same values): within [now + 0.5 x bound, now + bound), and every moved row
#     gives the same statement time (the SQL and the C++ formula agree);
#   - no row moved later; a leased row kept its next check and its lease; product.next_check_at
#     follows the queue;
#   - the worker logs one line naming how many products it moved and the two pressures.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use List::Util qw(max min sum);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time;
my %global = (min => 30, max => 3600);    # demper.check_interval_min / _max
my $slack = 0.05;                         # ScheduleTuning::deadline_slack_share
my ($rps_high, $rps_low) = (0.25, 0.01);

my $mock = start_mock();
my $node = demper_node('pressure_drop', $mock,
	'demper.adaptive_intervals' => 'on',
	'demper.requests_per_second' => $rps_low,
	'demper.burst' => 1,
	'demper.check_interval' => "'15min'",
	'demper.check_interval_min' => "'$global{min}s'",
	'demper.check_interval_max' => "'$global{max}s'",
	'demper.lease_time' => "'1h'");

sub psql { return $node->safe_psql('postgres', $_[0]) }
sub pressure { return demper_stats($node)->{schedule_pressure} }

# The rows: [group, count, base interval (undef: none yet), shortest, longest (undef: the settings'),
# next check in seconds from now, what else].
my @groups = (
	[ 'main, own bounds', 50, 120, 30, 3600, 1500, {} ],
	[ 'main, the settings\' bounds', 50, 120, undef, undef, 1500, {} ],
	[ 'at its shortest', 10, 4, 300, 3600, 1000, {} ],
	[ 'at its longest', 10, 1000, 60, 2400, 2399, {} ],
	[ 'near: within the new interval', 5, 120, 30, 3600, 300, {} ],
	[ 'leased', 5, 120, 30, 3600, 2000, { leased => 1 } ],
	[ 'beyond its longest', 5, 120, 30, 3600, 5000, {} ],
	[ 'failing', 5, 120, 30, 3600, 2000, { failures => 2 } ],
	[ 'no base interval yet', 5, undef, undef, undef, 2000, {} ],
);

my $store = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Pressure', '30024001') RETURNING id");
my $total = sum(map { $_->[1] } @groups);
my @ids = split /\n/, psql(
	"INSERT INTO demper.product (store_id, product_code, sku, price, min_price, step, next_check_at)
	 SELECT $store, (240000 + g)::text, 'p-' || g, 100000, 10, 1, now() + interval '3 hours'
	   FROM generate_series(1, $total) g RETURNING id");
is(scalar(@ids), $total, "$total products inserted");

# The worker has measured the pressure (slot 0 is ready: it has reclaimed dead leases already, so
# the lease written below stays).
ok(poll_until(sub { pressure() == 64 }, 60), "at $rps_low requests/s the pressure is at its ceiling, 64")
  or diag('pressure: ' . pressure());

my (%group_of, %row);
my $i = 0;
my $sql = '';
for my $g (@groups)
{
	my ($name, $n, $base, $lo, $hi, $in_s, $else) = @$g;
	my @mine = @ids[ $i .. $i + $n - 1 ];
	$i += $n;
	my $in = 'IN (' . join(',', @mine) . ')';
	$group_of{$_} = $g for @mine;
	my $spread = $n >= 50 ? 10 : 0;    # the main groups' next checks 10 s apart (1500 to 2490 s ahead)
	$sql .= "UPDATE demper.product SET next_check_at = now() + make_interval(secs => $in_s + $spread * (id % 100)),
	                                   check_failures = " . ($else->{failures} // 0) . " WHERE id $in;\n";
	$sql .= sprintf("UPDATE demper.schedule SET base_interval_s = %s, shortest_s = %s, longest_s = %s%s WHERE product_id %s;\n",
		$base // 'NULL', $lo // 'NULL', $hi // 'NULL',
		$else->{leased} ? ", lease_token = 424242, lease_until = now() + interval '1 hour'" : '', $in);
}
psql($sql);

# The rows as written: next check (epoch seconds, exact text), lease, and the product's next check.
sub rows
{
	my %r;
	for (split /\n/, psql("SELECT s.product_id, extract(epoch FROM s.next_check_at), coalesce(s.lease_token::text, ''),
	                              coalesce(extract(epoch FROM s.lease_until)::text, ''), extract(epoch FROM p.next_check_at)
	                         FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id WHERE p.store_id = $store"))
	{
		my ($id, $next, $token, $until, $shown) = split /\|/;
		$r{$id} = { next => $next, token => $token, until => $until, shown => $shown };
	}
	return \%r;
}
my $before = rows();
is(scalar(keys %$before), $total, 'every product has its row in the due queue');
is(scalar(grep { $before->{$_}{next} ne $before->{$_}{shown} } keys %$before), 0,
	'the queue and product.next_check_at agree before');

# The pressure falls.
my $log_offset = -s $node->logfile;
my $t_reload = psql('SELECT extract(epoch FROM clock_timestamp())');
reload_conf($node, 'demper.requests_per_second' => $rps_high);
my $line_re = qr/demper worker brought (\d+) products forward: the schedule's pressure fell from (\S+) to (\S+)/;
my $line_count_re = qr/demper worker brought \d+ products forward/;    # server_log_count counts captures
ok(poll_until(sub { server_log_count($node, $line_count_re, $log_offset) > 0 }, 60),
	'the worker logs that it brought products forward');
my $t_seen = psql('SELECT extract(epoch FROM clock_timestamp())');
my $after = rows();
my $p = pressure();
my $log = substr(PostgreSQL::Test::Utils::slurp_file($node->logfile), $log_offset);
my ($logged_n, $logged_from, $logged_to) = $log =~ $line_re;
diag(sprintf('the pressure fell from 64 to %.4f; %s products moved; %.1f s after the reload', $p, $logged_n // '?',
	$t_seen - $t_reload));
cmp_ok($p, '<', 64 / 1.25, 'the pressure fell by more than 1.25 times');
is(server_log_count($node, $line_count_re, $log_offset), 1, 'one line');
is($logged_from, '64', 'the line names the old pressure');
is($logged_to, sprintf('%.3g', $p), 'and the new one');

# What the test expects of each row, from what it wrote and the new pressure.
sub bounds_of
{
	my ($g) = @_;
	my ($lo, $hi) = ($g->[3] // $global{min}, $g->[4] // $global{max});
	$hi = max(1, $hi > 0 ? $hi : 7200);
	$lo = min($hi, max(1, $lo > 0 ? $lo : 1));
	return ($lo, $hi);
}
sub bound_of
{
	my ($g) = @_;
	my ($lo, $hi) = bounds_of($g);
	my $base = $g->[2] > 0 ? $g->[2] : $hi;
	return min(max($base * $p, $lo), max($lo, $hi * (1 - $slack)));
}
sub spread_of { my ($id) = @_; return 0.5 + 0.5 * ((($id & 2147483647) * 2654435761) % 1000) / 1000 }

my @moved = grep { $after->{$_}{next} != $before->{$_}{next} } @ids;
my @later = grep { $after->{$_}{next} > $before->{$_}{next} } @ids;
is(scalar(@later), 0, 'no next check moved later') or diag(join(', ', @later));
is(scalar(@moved), $logged_n // -1, 'as many rows moved as the line says');

# The statement's time, recovered from each moved row: they all give the same one when SQL computed
# exactly the C++ formula.
my @t_stmt = sort { $a <=> $b } map { $after->{$_}{next} - bound_of($group_of{$_}) * spread_of($_) } @moved;
my $t = @t_stmt ? $t_stmt[ int(@t_stmt / 2) ] : $t_seen;    # none moved: judge from the latest time it could be
cmp_ok(@t_stmt ? $t_stmt[-1] - $t_stmt[0] : 1, '<', 0.002,
	'every moved row is at now + bounded interval x spread(id) of one statement time (SQL = the C++ formula, within 2 ms)');
ok($t >= $t_reload - 0.001 && $t <= $t_seen + 0.001, 'that time lies between the reload and the log line')
  or diag("reload $t_reload, statement $t, seen $t_seen");

my (@wrong, %moved_in);
for my $id (@ids)
{
	my $g = $group_of{$id};
	my ($lo, $hi) = bounds_of($g);
	my $b = bound_of($g);
	my $old = $before->{$id}{next};
	my $want = !$g->[6]{leased} && defined $g->[2] && !$g->[6]{failures} && $old > $t + $b && $old <= $t + $hi;
	my $did = $after->{$id}{next} != $old;
	$moved_in{ $g->[0] } += $did ? 1 : 0;
	push @wrong, sprintf('%d (%s): %s, next check %.3f s ahead, bound %.3f s', $id, $g->[0],
		$did ? 'moved' : 'stayed', $old - $t, $b) if $want != $did;
	next unless $did;
	my $ahead = $after->{$id}{next} - $t;
	push @wrong, sprintf('%d (%s): moved to %.3f s ahead, outside [%.3f, %.3f)', $id, $g->[0], $ahead, 0.5 * $b, $b)
	  if $ahead < 0.5 * $b - 0.002 || $ahead >= $b + 0.002;
	push @wrong, "$id ($g->[0]): product.next_check_at $after->{$id}{shown}, the queue $after->{$id}{next}"
	  if $after->{$id}{shown} != $after->{$id}{next};
}
is(scalar(@wrong), 0, 'exactly the rows beyond the new interval moved, each into [now + 0.5 x bound, now + bound), '
	  . 'product.next_check_at with it')
  or diag(join('; ', @wrong[ 0 .. min($#wrong, 9) ]));
diag('moved per group: ' . join('; ', map { "$_->[0] $moved_in{$_->[0]}/$_->[1]" } @groups));
# The groups were chosen so that each rule shows: the main ones and the clamped ones all move, the
# others none.
is($moved_in{$_->[0]}, $_->[1], "all of '$_->[0]' moved") for @groups[ 0 .. 3 ];
is($moved_in{$_->[0]}, 0, "none of '$_->[0]' moved") for @groups[ 4 .. 8 ];
my @leased = grep { $group_of{$_}[6]{leased} } @ids;
is(scalar(grep { join('|', @{ $after->{$_} }{qw(next token until)}) ne join('|', @{ $before->{$_} }{qw(next token until)}) } @leased),
	0, 'the leased rows kept their next check and their lease');

$node->stop;
$mock->stop;
diag(sprintf('024_pressure_drop took %.0f s', time - $t_start));
done_testing();
