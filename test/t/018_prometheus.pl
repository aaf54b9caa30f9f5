# Prometheus: after a worker's real checks and pushes, demper.metrics() lints clean under
# `promtool check metrics`; prometheus-postgres-exporter, started with the README's command line
# and contrib/prometheus/demper-queries.yaml as a role that has only demper_reader, serves the
# same families from its HTTP endpoint (names, help, type, labels and values), which lint clean
# too; and every metric that the alert rules and the Grafana dashboard use is one it serves.
use strict;
use warnings;
use Cwd qw(abs_path);
use FindBin;
use lib $FindBin::RealBin;
use DemperTest;
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time;
my $root = abs_path("$FindBin::RealBin/../..");
my $queries = "$root/contrib/prometheus/demper-queries.yaml";
my $rules = "$root/contrib/prometheus/demper-alerts.yml";
my $dashboard = "$root/contrib/grafana-demper.json";
ok(-f $_, "$_ exists") for ($queries, $rules, $dashboard);

# The Debian packages prometheus (promtool) and prometheus-postgres-exporter; scripts/setup.sh
# installs them. Missing, the test fails: it must not pass by doing nothing.
my %tool;
for my $name ('promtool', 'prometheus-postgres-exporter')
{
	($tool{$name}) = grep { -x "$_/$name" } split /:/, "$ENV{PATH}:/usr/bin";
	ok($tool{$name}, "$name is installed") or do { done_testing(); exit 1 };
	$tool{$name} .= "/$name";
}
my $tmp = PostgreSQL::Test::Utils::tempdir();

# promtool_findings runs `promtool check metrics` over $text; returns its findings ('' when clean).
sub promtool_findings
{
	my ($text) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $tool{promtool}, 'check', 'metrics' ], '<', \$text, '>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	return join('', $out, $err, $rc ? "(exit code $rc)\n" : '');
}

# parse_exposition reads the text format into { family => { help, type, samples => { sample => value } } },
# where a sample is its name and labels in label order, without the exporter's own label `server`.
sub parse_exposition
{
	my ($text, $prefix) = @_;
	my (%family, @samples);
	for my $line (split /\n/, $text)
	{
		if (my ($what, $name, $text) = $line =~ /^# (HELP|TYPE) (\S+) ?(.*)$/)
		{
			$family{$name}{ lc $what } = $text if $name =~ /^$prefix/;
			next;
		}
		next if $line =~ /^#/ || $line !~ /\S/;
		my ($name, $labels, $value) = $line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/
		  or die "not a sample line: $line";
		next unless $name =~ /^$prefix/;
		my %label = ($labels // '') =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
		delete $label{server};
		push @samples, [ $name, join(',', map { qq{$_="$label{$_}"} } sort keys %label), $value ];
	}
	for my $s (@samples)
	{
		my ($name, $labels, $value) = @$s;
		my $fam = $name;
		$fam = $1 if !exists $family{$name} && $name =~ /^(.*)_(bucket|sum|count)$/
		  && ($family{$1}{type} // '') eq 'histogram';
		$family{$fam}{samples}{"$name\{$labels\}"} = $value;
	}
	return \%family;
}

# The worker at work: a store that publishes through the API, products that reprice, fail in
# three ways, and sit at their floor.
my $mock = start_mock();
my $key_file = write_key_file("$tmp/demper.key");
my $node = demper_node('prometheus', $mock,
	'demper.credentials_key_file' => "'$key_file'",
	'demper.push_url' => "'http://127.0.0.1:" . $mock->port . "/pricefeed/upload/merchant/process'",
	'demper.requests_per_second' => 200,
	'demper.max_attempts' => 1,
	'demper.egress_cooldown' => "'1s'");
sub psql { return $node->safe_psql('postgres', $_[0]) }
my $store = psql("INSERT INTO demper.store (name, merchant_id) VALUES ('Scraped', '30030001') RETURNING id");
store_credentials($node, $mock, $store, '30030001', 'SESSprom' . int(rand(1e9)), 'SIDprom' . int(rand(1e9)));

my @healthy = (8100001 .. 8100020);
my @at_floor = (8100101, 8100102);
my @html = (8100201 .. 8100203);
my @missing = (8100301, 8100302);
my @banned = (8100401);
$mock->set_offers($_, [ [ 'C1', 1000 ] ]) for (@healthy, @at_floor, @html, @missing, @banned);
$mock->fault(product => "$_", mode => 'html') for @html;
$mock->fault(product => "$_", mode => 'status', status => 404) for @missing;
$mock->fault(product => "$_", mode => 'status', status => 429) for @banned;
insert_products($node,
	(map { { store => $store, code => $_, price => 5000, min => 100 } } @healthy, @html, @missing, @banned),
	(map { { store => $store, code => $_, price => 5000, min => 1500 } } @at_floor));
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.product WHERE last_check_time IS NULL"),
	'the worker checked every product');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM demper.outbox WHERE status = 'pending'"),
	'and pushed every price change');
reload_conf($node, 'demper.enabled' => 'off');
ok( $node->poll_query_until('postgres',
		"SELECT in_flight = 0 AND queued = 0 FROM demper.demper_stats()"),
	'nothing in flight once disabled');
ok( $node->poll_query_until('postgres', "SELECT state = 'disabled' FROM demper.status"),
	'the worker reports itself disabled');

# demper.metrics(): clean under promtool, with what the worker did in it.
my $metrics = psql('SELECT demper.metrics()') . "\n";
is(promtool_findings($metrics), '', 'promtool check metrics finds nothing in demper.metrics()');
my $own = parse_exposition($metrics, 'demper_');
my $st = demper_stats($node);
is($own->{demper_checks_ok_total}{samples}{'demper_checks_ok_total{}'}, $st->{checks_ok},
	'checks_ok_total is demper_stats().checks_ok');
cmp_ok($st->{checks_ok}, '>=', @healthy + @at_floor, 'every healthy product was checked');
# A failed check is tried again after a back-off: the 404s may have been counted more than once.
is($own->{demper_checks_failed_by_class_total}{samples}{'demper_checks_failed_by_class_total{class="http_4xx"}'},
	$st->{failed_http_4xx}, 'failures by class: http_4xx is demper_stats().failed_http_4xx');
cmp_ok($st->{failed_http_4xx}, '>=', scalar(@missing), 'every 404 counted as http_4xx');
cmp_ok($own->{demper_checks_failed_by_class_total}{samples}{'demper_checks_failed_by_class_total{class="ban"}'},
	'>=', 1, 'failures by class: the 429 is a ban');
is($own->{demper_store_products_at_floor}{samples}{"demper_store_products_at_floor{store_id=\"$store\"}"},
	scalar(@at_floor), 'products at their floor, per store');
cmp_ok($own->{demper_push_latency_seconds}{samples}{'demper_push_latency_seconds_count{}'}, '>=', 1,
	'push latency histogram counts the pushes');
is($own->{demper_workers_by_state}{samples}{'demper_workers_by_state{state="disabled"}'}, 1,
	'one worker, disabled');
my ($offers_host) = grep { /kind="host"/ } keys %{ $own->{demper_http_breaker_open}{samples} // {} };
ok($offers_host, 'the marketplace host has a breaker series' . ($offers_host ? ": $offers_host" : ''));

# Every column of demper_stats() is a metric (the latency percentiles are the histograms).
my @uncovered = grep {
	my $c = $_;
	$c !~ /^(stats_reset|failed_.*|.*_latency_p\d+_ms)$/ && !$own->{"demper_${c}_total"} && !$own->{"demper_$c"}
} sort keys %$st;
is("@uncovered", '', 'every demper_stats() column is in demper.metrics()');

# prometheus-postgres-exporter with the queries file, as a role that has only demper_reader.
psql("CREATE ROLE metrics_scraper LOGIN; GRANT demper_reader TO metrics_scraper");
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = sprintf('host=%s port=%d user=metrics_scraper dbname=postgres sslmode=disable',
	$node->host, $node->port);
my $exporter_log = "$tmp/exporter.log";
my $exporter = IPC::Run::start(
	[ 'env', "DATA_SOURCE_NAME=$dsn", $tool{'prometheus-postgres-exporter'},
		"--web.listen-address=127.0.0.1:$port", "--extend.query-path=$queries" ],
	'<', \undef, '>', $exporter_log, '2>&1');
my $http = HTTP::Tiny->new(timeout => 30);
my $scrape = '';
ok( poll_until(
		sub {
			my $r = $http->get("http://127.0.0.1:$port/metrics");
			$scrape = $r->{success} ? $r->{content} : '';
			return $scrape =~ /^demper_store_pushes_total\{/m;
		},
		120),
	'the exporter serves demper metrics on its HTTP endpoint');
# The comparison's scrape, between two readings of demper.metrics(): a figure that moves meanwhile
# (a failed product's back-off ends and it comes due, say) must equal one of them.
my $metrics_before = psql('SELECT demper.metrics()') . "\n";
$scrape = $http->get("http://127.0.0.1:$port/metrics")->{content} // '';
my $metrics_after = psql('SELECT demper.metrics()') . "\n";
like($scrape, qr/^pg_exporter_user_queries_load_error\{[^}]*\} 0$/m, 'the exporter loaded the queries file');
like($scrape, qr/^pg_up 1$/m, 'the exporter reached the database');
my @query_errors = grep { /level=(error|warn)/ && /demper/ } split /\n/, slurp_file($exporter_log);
is(join("\n", @query_errors), '', 'no demper query failed in the exporter');

my $demper_lines = join('', map { "$_\n" } grep { /^(# (HELP|TYPE) )?demper_/ } split /\n/, $scrape);
is(promtool_findings($demper_lines), '', "promtool check metrics finds nothing in the exporter's demper families");

# The same families with the same help, type, labels and values. Gauges that move with the clock
# or decay continuously are compared by their series only.
my $served = parse_exposition($scrape, 'demper_');
my $before = parse_exposition($metrics_before, 'demper_');
my $ours = parse_exposition($metrics_after, 'demper_');
is_deeply([ sort keys %$served ], [ sort keys %$ours ], 'the exporter serves the families of demper.metrics()');
my %clock = map { $_ => 1 } qw(demper_checks_per_second demper_backlog_oldest_due_seconds
  demper_store_oldest_pending_push_seconds demper_http_effective_rate_per_second);
for my $f (sort keys %$ours)
{
	my ($got, $want) = ($served->{$f} // {}, $ours->{$f});
	my $same = ($got->{help} // '') eq $want->{help} && ($got->{type} // '') eq $want->{type}
	  && join(' ', sort keys %{ $got->{samples} // {} }) eq join(' ', sort keys %{ $want->{samples} });
	if ($same && !$clock{$f})
	{
		for my $sample (keys %{ $want->{samples} })
		{
			my $v = $got->{samples}{$sample};
			$same &&= $v == $want->{samples}{$sample}
			  || (defined $before->{$f}{samples}{$sample} && $v == $before->{$f}{samples}{$sample});
		}
	}
	ok($same, "$f: same help, type, series" . ($clock{$f} ? '' : ' and values'))
	  or diag(explain({ exporter => $got, metrics => $want }));
}

# What the alert rules and the dashboard ask for exists.
my %served_names = map { $_ => 1 } keys %{ parse_exposition($scrape, '') };
for my $file ($rules, $dashboard)
{
	my $text = slurp_file($file);
	my %used = map { $_ => 1 } $text =~ /\b((?:demper|pg)_[a-z0-9_]+)/g;
	my @unknown = grep {
		my $n = $_;
		!$served_names{$n} && !($n =~ /^(.*)_(bucket|sum|count)$/ && ($served->{$1}{type} // '') eq 'histogram')
	} sort keys %used;
	cmp_ok(scalar(keys %used), '>', 5, "$file uses metrics (" . scalar(keys %used) . ')');
	is("@unknown", '', "every metric $file uses is served by the exporter");
}

$exporter->kill_kill;
$node->stop;
$mock->stop;
diag(sprintf('018_prometheus took %.1f s', time - $t_start));
done_testing();
