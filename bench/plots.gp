# plots.gp: the benchmark's PNG plots, from the data files bench.py writes into outdir.
# gnuplot -e "outdir='bench/results'; interval=30; rate=10; burst=5" bench/plots.gp
# Each plot is drawn only when its data file exists (BENCH_ONLY runs write some of them).
set terminal pngcairo size 900,520 noenhanced font ",10" 
set datafile separator whitespace
set grid ytics

has(f) = system('test -s '.outdir.'/'.f.' && echo 1') eq '1'

if (has('throughput_bars.dat')) {
  set output outdir.'/throughput.png'
  set title 'Checks per second end to end (median of runs; claim, HTTP to the mock, decide, apply)'
  set style data histograms
  set style fill solid 0.7 border -1
  set boxwidth 0.6
  set ylabel 'checks / s'
  set yrange [0:*]
  set xtics nomirror
  set bmargin 5
  plot outdir.'/throughput_bars.dat' using 2:xtic(1) title '' lc rgb '#3b75af', \
       '' using 0:($2):(sprintf('%.0f', $2)) with labels offset 0,0.8 notitle, \
       5000 with lines dt 2 lc rgb 'red' title 'target 5,000/s'
  set bmargin
}

if (has('workers.dat')) {
  set output outdir.'/workers.png'
  set title 'Several workers (demper.workers = N): benchmark 1 at each N, checks per second and CPU per check'
  set style data linespoints
  set xlabel 'demper.workers'
  set ylabel 'checks / s'
  set y2label 'CPU us per check, all workers'
  set y2tics
  set ytics nomirror
  set yrange [0:*]
  set y2range [0:*]
  stats outdir.'/workers.dat' using 1 nooutput
  set xrange [0.7:STATS_max*1.5]
  set logscale x 2
  set xtics nomirror
  set key below horizontal
  plot outdir.'/workers.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb '#3b75af' title 'checks/s (median, min-max)', \
       '' using 1:2:(sprintf('%.0f (%.2fx)', $2, $5)) with labels offset 0,1.2 notitle, \
       '' using 1:7 with lines dt 2 lc rgb 'gray' title 'linear from N = 1', \
       '' using 1:6 axes x1y2 with linespoints lw 1.5 pt 5 lc rgb '#d9822b' title 'CPU us/check (all workers, right axis)', \
       5000 with lines dt 2 lc rgb 'red' title 'target 5,000/s'
  unset logscale x
  unset y2tics
  unset y2label
  unset xlabel
  set ytics mirror
  set xrange [*:*]
  set key default
}

set style data lines
set datafile separator ','
set key autotitle columnhead

if (has('large_run.csv')) {
  set output outdir.'/large_run.png'
  set title 'Large throughput run: checks per second and worker memory over time'
  set xlabel 'seconds'
  set ylabel 'checks / s'
  set y2label 'MiB'
  set y2tics
  set ytics nomirror
  set yrange [0:*]
  set y2range [0:*]
  plot outdir.'/large_run.csv' using 1:5 with lines lw 1.5 title 'checks/s (0.5 s samples)', \
       '' using 1:($4/1024) axes x1y2 with lines lw 2 title 'worker RssAnon (MiB)', \
       '' using 1:($3/1024) axes x1y2 with lines dt 3 title 'worker VmRSS (MiB, incl. shared buffers)'
  unset y2tics
  unset y2label
  set ytics mirror
}

if (has('staleness.csv')) {
  set output outdir.'/staleness.png'
  set title sprintf('Time between two checks of a product (interval %d s): cumulative share', interval)
  set xlabel 'seconds between consecutive checks'
  set ylabel 'share of gaps'
  set yrange [*:*]
  set xrange [*:*]
  stats outdir.'/staleness.csv' using 1 nooutput
  set yrange [0:1.02]
  set xrange [interval*0.95 : (STATS_max > interval*1.15 ? STATS_max*1.01 : interval*1.15)]
  set arrow 1 from interval*1.1, graph 0 to interval*1.1, graph 1 nohead dt 2 lc rgb 'red'
  set label 1 '1.1 x interval' at interval*1.1, graph 0.5 offset 0.5,0 tc rgb 'red'
  plot outdir.'/staleness.csv' using 1:2 with lines lw 2 title 'CDF'
  unset arrow 1
  unset label 1
}

if (has('rate.csv')) {
  set output outdir.'/rate.png'
  set title sprintf('Offers requests seen by the mock per 1 s window (rate %g, burst %g)', rate, burst)
  set xlabel 'second of the run'
  set ylabel 'requests'
  set yrange [0:rate+burst+3]
  set xrange [*:*]
  plot outdir.'/rate.csv' using 1:2 with steps lw 2 title 'requests in the window', \
       rate with lines dt 2 title 'rate', rate+burst with lines dt 3 lc rgb 'red' title 'rate + burst'
}

# Benchmark 8 (adaptive schedule): whitespace-separated data files without headers.
set datafile separator whitespace
set key noautotitle
unset xlabel
set xrange [*:*]
set yrange [*:*]

if (has('market_runs.dat')) {
  set output outdir.'/market.png'
  set title 'Product-time lost from first place (winnable: a price at or above the floor would have been first)'
  set style data histograms
  set style histogram rowstacked
  set style fill solid 0.7 border -1
  set boxwidth 0.6
  set ylabel 'share of product-time'
  set yrange [0:*]
  set key top right
  plot outdir.'/market_runs.dat' using 2:xtic(1) title 'winnable' lc rgb '#d9822b', \
       '' using 3 title 'competitors below the floor' lc rgb '#9a9a9a'
  set style data lines
  set key default
  set key noautotitle
}

if (has('market_reactions_fixed.dat')) {
  set output outdir.'/market_reactions.png'
  set title 'Time from a rival''s undercut to the seller''s next check (live runs, market seconds): cumulative share'
  set xlabel 'market seconds'
  set ylabel 'share of undercuts'
  set yrange [0:1.02]
  set xrange [0:*]
  set key bottom right
  runs = ''
  do for [run in 'fixed adaptive adaptive_half adaptive_keep_margin'] {
    if (has('market_reactions_'.run.'.dat')) { runs = runs.' '.run }
  }
  plot for [run in runs] outdir.'/market_reactions_'.run.'.dat' using 1:2 with lines lw 2 title run
  set key default
  set key noautotitle
}

if (has('market_sim_curve.dat')) {
  set output outdir.'/market_sim.png'
  set title 'Simulator: share of product-time in first place by requests per second'
  set xlabel 'requests per second'
  set ylabel 'first-place share'
  set yrange [*:*]
  set xrange [0:*]
  set key bottom right
  plot outdir.'/market_sim_curve.dat' index 0 using 1:2 with linespoints lw 2 pt 7 title 'fixed intervals', \
       '' index 1 using 1:2 with linespoints lw 2 pt 5 title 'adaptive'
}
