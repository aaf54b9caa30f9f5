# The worker's apply and release statements do work linear in the batch, in the plan the worker
# would use with a fresh batch's figures (custom) and in the one it may reuse after five runs, which
# cannot see the batch's size (generic). Twice the apply became quadratic without a test noticing
# (the quick benchmark fell from 7,000 to 2,100 checks/s): a merge join on the lease token, which a
# batch's rows all share, compared every row with every other; a generic plan rescanned one CTE for
# each row of another. Here the worker's own statements (src/pg/catalog_checks.cpp, macros
# expanded and parameters numbered by scripts/isolation.sh, the spec copies' source) run under
# EXPLAIN ANALYZE on a batch of 1,000 claimed from 5,000 products, and no plan node may filter out
# or produce a number of rows that only a per-pair loop reaches. Nothing is timed: the figures are row counts.
use strict;
use warnings;
use Cwd qw(abs_path);
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time;
my $root = abs_path("$FindBin::RealBin/../..");
BAIL_OUT("$root is not demper's source tree: run this test from a copy of the whole tree")
  unless -f "$root/demper.control" && -f "$root/src/pg/catalog_checks.cpp";

my $products = 5000;
my $batch = 1000;
my $store_id = 1;
# A linear plan filters out each row of the batch, and of the tables it scans (5 x batch
# products), a few times at most; the quadratic plans removed 999,000 and 1,999,000.
my $max_filtered = 5 * $batch;
# Rows a node returns over all its loops: an index probe per row of the batch is 1 x batch, a
# sequential scan of the products 5 x batch; a CTE rescanned for each row of the batch is
# batch x batch.
my $max_node_rows = 20 * $batch;

# The statement text the worker prepares, from the same source as the isolation specs' copies.
sub worker_statement
{
	my ($name) = @_;
	local $ENV{DEMPER_ISOLATION_PRINT} = $name;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'bash', "$root/scripts/isolation.sh" ], '<', \undef, '>', \$out, '2>', \$err)
	  or BAIL_OUT("scripts/isolation.sh did not print $name: $err");
	BAIL_OUT("scripts/isolation.sh printed no statement for $name") unless $out =~ /\S/;
	return $out;
}

# The parameters of statement $k as the worker declares them (names and SQL types, in order): the
# Statement<Param, ...> that names $k, then that enum's DEMPER_..._PARAMS(F) list, in the catalog's
# files read as one text, as scripts/isolation.sh reads them.
my $catalog = join("\n",
	map { slurp_file($_) } "$root/src/pg/catalog.cpp",
	sort(glob("$root/src/pg/catalog_*.cpp")), sort(glob("$root/src/pg/catalog_*.hpp")));
my %sql_type = (
	INT4OID => 'int4', INT8OID => 'int8', FLOAT8OID => 'float8', BOOLOID => 'bool',
	INT8ARRAYOID => 'int8[]', BOOLARRAYOID => 'bool[]', TEXTARRAYOID => 'text[]',
	JSONARRAYOID => 'json[]', TIMESTAMPTZARRAYOID => 'timestamptz[]', FLOAT8ARRAYOID => 'float8[]');
sub worker_params
{
	my ($k) = @_;
	my ($enum) = $catalog =~ /Statement<(\w+),\s*\w+>\s*\w+\{"\w+",\s*\Q$k\E,/
	  or BAIL_OUT("no Statement declares $k in src/pg/catalog_*.cpp");
	my ($macro) = $catalog =~ /DEMPER_DECLARE_FIELDS\(\Q$enum\E,\s*(\w+)\)/
	  or BAIL_OUT("no DEMPER_DECLARE_FIELDS for $enum in src/pg/catalog_*");
	my ($body) = $catalog =~ /^#define\s+\Q$macro\E\(F\)\s*((?:.*\\\n)*.*)$/m
	  or BAIL_OUT("no #define $macro in src/pg/catalog_*");
	my @params;
	while ($body =~ /F\((\w+),\s*(\w+)\)/g)
	{
		BAIL_OUT("$k: parameter $1 has type $2, which this test does not know") unless $sql_type{$2};
		push @params, [ $1, $sql_type{$2} ];
	}
	return @params;
}

# prepare_sql: PREPARE $name typed like the worker's SPI plan of statement $k.
# execute_sql: EXECUTE $name with a value (SQL expression) for each named parameter.
my %params_of;
sub prepare_sql
{
	my ($name, $k) = @_;
	$params_of{$name} = [ worker_params($k) ];
	return "PREPARE $name(" . join(', ', map { $_->[1] } @{ $params_of{$name} }) . ") AS\n"
	  . worker_statement($k) . ";\n";
}
sub execute_sql
{
	my ($name, %value) = @_;
	my @args;
	for my $p (@{ $params_of{$name} })
	{
		BAIL_OUT("no value for parameter $p->[0] of $name (a new parameter of the worker's?)")
		  unless exists $value{ $p->[0] };
		push @args, delete $value{ $p->[0] };
	}
	BAIL_OUT("$name has no parameter " . join(', ', sort keys %value)) if %value;
	return "EXECUTE $name(" . join(",\n  ", @args) . ")";
}

# The figures of an EXPLAIN (ANALYZE, FORMAT JSON) that tell a per-pair plan: rows removed by
# filters and join filters over all nodes, and each node's rows over all its loops (EXPLAIN gives
# both per loop). Every node is walked: CTEs, InitPlans and SubPlans are children too.
sub plan_figures
{
	my ($json_text) = @_;
	my $doc = JSON::PP->new->decode($json_text);
	my %f = (nodes => 0, filtered => 0, worst_filter => [ 0, 'none' ], worst_rows => [ 0, 'none' ], kinds => {},
		ms => $doc->[0]{'Execution Time'} // 0);
	my @todo = ($doc->[0]{Plan});
	while (my $n = shift @todo)
	{
		my $loops = $n->{'Actual Loops'} // 0;
		my $what = join(' ', grep { defined }
			$n->{'Node Type'}, $n->{'Operation'}, $n->{'Relation Name'}, $n->{'CTE Name'},
			$n->{'Index Name'} && "using $n->{'Index Name'}", $n->{'Subplan Name'} && "($n->{'Subplan Name'})")
		  . sprintf(' (loops %d, rows %d)', $loops, $n->{'Actual Rows'} // 0);
		my $removed = (($n->{'Rows Removed by Filter'} // 0) + ($n->{'Rows Removed by Join Filter'} // 0)) * $loops;
		my $rows = ($n->{'Actual Rows'} // 0) * $loops;
		$f{nodes}++;
		$f{filtered} += $removed;
		$f{worst_filter} = [ $removed, $what ] if $removed > $f{worst_filter}[0];
		$f{worst_rows} = [ $rows, $what ] if $rows > $f{worst_rows}[0];
		$f{kinds}{ join(' ', grep { defined } $n->{'Node Type'}, $n->{'Relation Name'} // $n->{'CTE Name'}) } = 1;
		push @todo, @{ $n->{Plans} // [] };
	}
	return \%f;
}

# check_plan asserts the bounds on one statement's plan and says its largest figures.
sub check_plan
{
	my ($label, $json_text, @must_have) = @_;
	my $f = plan_figures($json_text);
	# The time is said, never asserted (a busy machine): the row counts are the test.
	diag(sprintf('%s: %d nodes, %.1f ms; rows removed by filters %d (most: %d, %s); most rows from one node %d, %s',
		$label, $f->{nodes}, $f->{ms}, $f->{filtered}, @{ $f->{worst_filter} }, @{ $f->{worst_rows} }));
	# A walk that saw nothing would pass: the plan must show the statement's own steps.
	my @missing = grep { !$f->{kinds}{$_} } @must_have;
	ok(!@missing, "$label: the plan was read (it shows @must_have)")
	  or diag("$label: not in the plan: @missing; seen: " . join(', ', sort keys %{ $f->{kinds} }));
	cmp_ok($f->{filtered}, '<=', $max_filtered,
		"$label: rows removed by filters and join filters, over all nodes, at most 5 x batch");
	cmp_ok($f->{worst_rows}[0], '<=', $max_node_rows, "$label: no node returns more than 20 x batch rows over its loops")
	  or diag("$label: $f->{worst_rows}[1]");
	return $f;
}

# The worker is loaded (the extension's C functions need the library) but disabled, and pointed at
# another database than the one the products live in.
my $node = PostgreSQL::Test::Cluster->new('apply_plan');
$node->init;
$node->append_conf('postgresql.conf', join('',
	"shared_preload_libraries = 'demper'\n",
	"demper.database = 'postgres'\n",
	"demper.enabled = off\n",
	# The statistics are those of one ANALYZE after the load, when nothing was leased (as in a
	# large catalogue, where a batch is a small part of it); autovacuum would change them between
	# the runs below, and with them the plans.
	"autovacuum = off\n"));
$node->start;
my $db = 'plans';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, 'CREATE EXTENSION demper');

# One store that pushes through the API (so the apply also queues pushes); products inserted as a
# user does, through the validation and queue triggers.
$node->safe_psql($db, qq{
	INSERT INTO demper.store (id, name, merchant_id, push_mode) VALUES ($store_id, 'Shop A', '30012345', 'api');
	INSERT INTO demper.product (store_id, product_code, sku, price, min_price, next_check_at)
	SELECT $store_id, (1000000 + g)::text, 'sku-' || g, 500000 + g, 100, now() - interval '1 minute'
	  FROM generate_series(1, $products) g;
	ANALYZE;
});
is($node->safe_psql($db, 'SELECT count(*) FROM demper.schedule WHERE lease_token IS NULL AND next_check_at <= now()'),
	$products, "$products products loaded, all due, none leased");

my $claim_prepare = prepare_sql('claim', 'kClaimSql');
my $apply_prepare = prepare_sql('apply', 'kApplySql');
my $release_prepare = prepare_sql('release', 'kReleaseSql');
my $as_worker = "SET session_replication_role = replica;\n";

# claim: every product due and unleased again, then a batch of $batch leased with $token by the
# worker's claim (always planned for its execution: CURSOR_OPT_CUSTOM_PLAN); its plan is checked
# too. Returns the claimed products as hashes, in id order.
sub claim
{
	my ($token) = @_;
	$node->safe_psql($db,
		"UPDATE demper.schedule SET lease_token = NULL, lease_until = NULL, next_check_at = now() - interval '1 minute'");
	my $plan = $node->safe_psql($db, $as_worker . "SET plan_cache_mode = force_custom_plan;\n" . $claim_prepare
		  . 'EXPLAIN (ANALYZE, FORMAT JSON) ' . execute_sql('claim', limit => $batch, lease_token => $token, lease_seconds => 60));
	check_plan("claim (token $token)", $plan, 'ModifyTable schedule');
	my @rows = map {
		my %r;
		@r{qw(id price min_price max_price step inputs_version store_id)} = split /\|/, $_, -1;
		\%r
	} split /\n/, $node->safe_psql($db, qq{
		SELECT p.id, p.price, p.min_price, p.max_price, p.step, p.inputs_version, p.store_id
		  FROM demper.schedule s JOIN demper.product p ON p.id = s.product_id
		 WHERE s.lease_token = $token ORDER BY p.id});
	is(scalar(@rows), $batch, "the claim leased a batch of $batch with token $token");
	return @rows;
}

# Array literals of a column of the claimed rows ('' is NULL), and arrays of one value.
sub column_array
{
	my ($type, $rows, $f) = @_;
	return "'{" . join(',', map { my $v = $f->($_); length($v) ? $v : 'NULL' } @$rows) . "}'::$type\[]";
}
sub same_array
{
	my ($value, $type) = @_;
	return "array_fill(${value}::$type, ARRAY[$batch])";
}

# The apply in both plans, first with the store's changes unlimited, then with a change budget
# that admits half the batch: the changes of a store with a budget are numbered per store in
# product id order, a step over the whole batch that must stay linear too (the same per-pair loop
# as above, a CTE rescanned for each row of the batch, once hid there). The budget counts the
# store's changes in its window, and the runs before made some: it is those plus half a batch.
my $history_before = 0;
for my $run ([ 'force_custom_plan', 101, 0 ], [ 'force_generic_plan', 102, 0 ],
	[ 'force_custom_plan', 103, 1 ], [ 'force_generic_plan', 104, 1 ])
{
	my ($mode, $token, $budgeted) = @$run;
	my $label = $budgeted ? "apply with a change budget, $mode" : "apply, $mode";
	my @claimed = claim($token);
	my $admitted = $budgeted ? $batch / 2 : $batch;
	if ($budgeted)
	{
		my $recent = $node->safe_psql($db, "SELECT count(*) FROM demper.price_history WHERE store_id = $store_id");
		$node->safe_psql($db, qq{
			UPDATE demper.store SET change_budget = $recent + $admitted, change_budget_window = interval '1 day'
			 WHERE id = $store_id});
	}
	# The changes the budget admits are those of the lowest product ids; the others are deferred.
	my @applied = @claimed[ 0 .. $admitted - 1 ];
	my @deferred = @claimed[ $admitted .. $#claimed ];
	# Every check succeeded and undercuts by 1: the price changes (history rows, pushes queued).
	my $plan = $node->safe_psql($db, $as_worker . "SET plan_cache_mode = $mode;\n" . $apply_prepare
		  . 'EXPLAIN (ANALYZE, FORMAT JSON) ' . execute_sql('apply',
			ids => column_array('int8', \@claimed, sub { $_[0]{id} }),
			lease_tokens => same_array($token, 'int8'),
			ok => same_array('true', 'bool'),
			skipped => same_array('false', 'bool'),
			new_prices => column_array('int8', \@claimed, sub { $_[0]{price} - 1 }),
			competitor_prices => column_array('int8', \@claimed, sub { $_[0]{price} }),
			reasons => same_array("'undercut'", 'text'),
			error_classes => same_array("''", 'text'),
			error_texts => same_array("''", 'text'),
			seen_prices => column_array('int8', \@claimed, sub { $_[0]{price} }),
			seen_mins => column_array('int8', \@claimed, sub { $_[0]{min_price} }),
			seen_maxes => column_array('int8', \@claimed, sub { $_[0]{max_price} }),
			seen_steps => column_array('int8', \@claimed, sub { $_[0]{step} }),
			dry_run => 'false',
			check_interval_s => 3600,
			priority_interval_s => 600,
			store_ids => column_array('int8', \@claimed, sub { $_[0]{store_id} }),
			explains => same_array(q{'{"rule":"undercut"}'}, 'json'),
			seen_versions => column_array('int8', \@claimed, sub { $_[0]{inputs_version} }),
			claimed_ats => same_array('now()', 'timestamptz'),
			schedule_states => same_array("''", 'text'),
			next_intervals => same_array(0, 'float8'),
			base_intervals => same_array('NULL', 'float8'),
			shortests => same_array('NULL', 'float8'),
			longests => same_array('NULL', 'float8'),
			war_rivals => same_array("''", 'text')));
	check_plan($label, $plan, 'ModifyTable product', 'ModifyTable schedule', 'CTE Scan d', 'CTE Scan locked');

	# The apply did its job: each product the budget admits at its decided price, its lease ended,
	# its next check an interval away, one history row and one pending push each; each deferred
	# one at its price as claimed, due again within a minute.
	my $ids = column_array('int8', \@applied, sub { $_[0]{id} });
	my $decided = column_array('int8', \@applied, sub { $_[0]{price} - 1 });
	is( $node->safe_psql($db, qq{
			SELECT count(*) FROM demper.product p JOIN unnest($ids, $decided) d(id, price) ON d.id = p.id
			 WHERE p.price = d.price AND p.last_reason = 'undercut' AND p.check_failures = 0}),
		$admitted, "$label: the $admitted products admitted are at their decided prices");
	is( $node->safe_psql($db, qq{
			SELECT count(*) FILTER (WHERE s.lease_token IS NULL AND s.next_check_at > now() + interval '50 minutes')
			     || ' ' || (SELECT count(*) FROM demper.schedule WHERE lease_token IS NOT NULL)
			  FROM demper.schedule s WHERE s.product_id = ANY ($ids)}),
		"$admitted 0", "$label: their leases ended and their next checks are an interval away");
	my $history = $node->safe_psql($db, 'SELECT count(*) FROM demper.price_history');
	is($history - $history_before, $admitted, "$label: one history row per changed price");
	$history_before = $history;
	is( $node->safe_psql($db, qq{
			SELECT count(*) FROM demper.outbox o JOIN unnest($ids, $decided) d(id, price) ON d.id = o.product_id
			 WHERE o.status = 'pending' AND o.price = d.price}),
		$admitted, "$label: one pending push per changed price");
	next unless $budgeted;
	my $deferred_ids = column_array('int8', \@deferred, sub { $_[0]{id} });
	my $claimed_prices = column_array('int8', \@deferred, sub { $_[0]{price} });
	is( $node->safe_psql($db, qq{
			SELECT count(*) FROM demper.product p JOIN unnest($deferred_ids, $claimed_prices) d(id, price) ON d.id = p.id
			  JOIN demper.schedule s ON s.product_id = p.id
			 WHERE p.price = d.price AND p.last_reason = 'budget_deferred' AND s.lease_token IS NULL
			   AND s.next_check_at <= now() + interval '1 minute'}),
		scalar(@deferred), "$label: the other " . scalar(@deferred) . " are deferred, due again within a minute");
	$node->safe_psql($db, "UPDATE demper.store SET change_budget = NULL WHERE id = $store_id");
}

# The release hands a batch back (a worker stopping with checks in flight): due again at once.
for my $mode ('force_custom_plan', 'force_generic_plan')
{
	my $token = $mode eq 'force_custom_plan' ? 201 : 202;
	my @claimed = claim($token);
	my $ids = column_array('int8', \@claimed, sub { $_[0]{id} });
	my $plan = $node->safe_psql($db, $as_worker . "SET plan_cache_mode = $mode;\n" . $release_prepare
		  . 'EXPLAIN (ANALYZE, FORMAT JSON) ' . execute_sql('release',
			ids => $ids, lease_tokens => same_array($token, 'int8'), delay_s => 0));
	check_plan("release, $mode", $plan, 'ModifyTable schedule');
	is( $node->safe_psql($db, qq{
			SELECT count(*) FILTER (WHERE s.lease_token IS NULL AND s.next_check_at <= now())
			     || ' ' || (SELECT count(*) FROM demper.schedule WHERE lease_token IS NOT NULL)
			  FROM demper.schedule s WHERE s.product_id = ANY ($ids)}),
		"$batch 0", "release, $mode: the batch is unleased and due again");
}

$node->stop;
diag(sprintf('023_apply_plan took %.1f s', time - $t_start));
done_testing();
