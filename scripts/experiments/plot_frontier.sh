#!/usr/bin/env bash
# Draws docs/privacy_utility.png from the outputs of frontier.sh for the
# 50,000- and 1,000,000-device populations (gnuplot from Debian:
# apt-get install gnuplot-nox). The PNG is a committed artifact. The NCF
# points are the previous recipe's measurements (docs/results.md).
#
#   scripts/experiments/plot_frontier.sh DIR_50K DIR_1M [PNG]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
d50=${1:?usage: plot_frontier.sh DIR_50K DIR_1M [PNG]}
d1m=${2:?usage: plot_frontier.sh DIR_50K DIR_1M [PNG]}
png=${3:-$root/docs/privacy_utility.png}
read -r nn50 _ pop50 <"$d50/levels.dat"
read -r nn1m _ pop1m <"$d1m/levels.dat"
ncf=$(mktemp)
trap 'rm -f "$ncf"' EXIT
printf '0.5 0.3828\n1 0.3968\n2 0.3912\n4 0.3842\n8 0.3880\n' >"$ncf"
gnuplot <<EOF2
set terminal pngcairo size 960,600 font "sans,11" noenhanced
set output "$png"
set title "HR@10 against epsilon: private ALS (the default), synthetic populations"
set xlabel "target epsilon of the run (user-level; sigma calibrated by the server's accountant, budget enforced)"
set ylabel "HR@10 (5,000 evaluated devices)"
set logscale x 2
set xrange [0.4:10]
set yrange [0:0.75]
set grid
set key bottom right
plot "$d50/curve.dat" using 1:2 with linespoints lw 2 pt 7 title "ALS, 50,000 devices, q = 0.2, delta 1e-5", \\
     "$d1m/curve.dat" using 1:2 with linespoints lw 2 pt 5 title "ALS, 1,000,000 devices, q = 0.02, delta 1e-7", \\
     "$ncf" using 1:2 with linespoints lw 2 pt 9 title "NCF + FedAdam (previous default), 50,000 devices, 200 rounds", \\
     $nn50 with lines dt 2 lw 2 title "ALS without noise, 50,000", \\
     $nn1m with lines dt 2 lw 1 title "ALS without noise, 1,000,000", \\
     $pop50 with lines dt 4 lw 2 title "most popular items (50,000)", \\
     0.684 with lines dt 3 lw 2 title "NCF trained centrally (50,000)"
EOF2
echo "wrote $png"
