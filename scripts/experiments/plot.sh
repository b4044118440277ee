#!/usr/bin/env bash
# Draws docs/privacy_utility.png from the output of scale.sh (gnuplot from
# Debian: apt-get install gnuplot-nox). The PNG is a committed artifact.
#
#   scripts/experiments/plot.sh [SCALE_OUT_DIR] [PNG]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$root/build/experiments/scale}
png=${2:-$root/docs/privacy_utility.png}
read -r nonoise _ nonoise20 _ <"$dir/nonoise.dat"
read -r untrained _ <"$dir/untrained.dat"
read -r popular _ <"$dir/popularity.dat"
gnuplot <<EOF2
set terminal pngcairo size 960,600 font "sans,11" noenhanced
set output "$png"
set title "HR@10 against epsilon (delta 1e-5), 50,000 synthetic devices, about 10,000 per round (q = 0.2), 200 rounds planned"
set xlabel "target epsilon of the run (user-level; noise calibrated by the server's RDP accountant, budget enforced)"
set ylabel "HR@10 (5,000 evaluated devices)"
set logscale x 2
set xrange [0.4:10]
set yrange [0:0.72]
set grid
set key top left
plot "$dir/curve.dat" using 1:2 with linespoints lw 2 pt 7 title "DP, after all 200 rounds", \
     "$dir/curve.dat" using 1:4 with linespoints lw 2 pt 5 title "DP, after 20 of the 200 rounds", \
     $nonoise with lines dt 2 lw 2 title "no noise (not private), after 200 rounds", \
     $popular with lines dt 4 lw 2 title "most popular items", \
     $untrained with lines dt 3 lw 2 title "untrained model"
EOF2
echo "wrote $png"
