#!/usr/bin/env bash
# The main job's training step, quiet and beside scripts/busy_load.sh, in fp32 and bf16, on 1 and 2 threads,
# with OMP_WAIT_POLICY unset (libgomp's default: spin a while, then sleep), ACTIVE (spin) and PASSIVE (sleep).
# Prints one table row per setting: the mean, median and 90th percentile of the step's milliseconds
# (history.csv, the first 20 steps left out), quiet then loaded.
#   scripts/bench_busy.sh [STEPS] [COMPILERS]      (defaults: 200 steps, 2 compilers in the load)
# Needs build/examples/flow_2d (scripts/setup.sh flow_2d).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-200}
compilers=${2:-2}
python=${GM_PYTHON:-.venv/bin/python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
stats() {  # mean, median and 90th percentile of ms_per_step after the first 20 steps
  "$python" -c '
import csv, sys
ms = sorted(float(r["ms_per_step"]) for r in csv.DictReader(open(sys.argv[1])) if int(r["step"]) > 20)
print("%.1f / %.1f / %.1f" % (sum(ms) / len(ms), ms[len(ms) // 2], ms[len(ms) * 9 // 10]))' "$1"
}
run() {  # run NAME PRECISION THREADS POLICY (at most 120 s: the steps taken by then count; POLICY default: unset)
  if [ "$4" = default ]; then local env=(env -u OMP_WAIT_POLICY); else local env=(env OMP_WAIT_POLICY="$4"); fi
  "${env[@]}" timeout 120 build/examples/flow_2d --config configs/flow_2d.toml --workdir "$out/$1" \
    --training.steps="$steps" --training.precision="$2" --training.threads="$3" --training.log_every=1000 \
    --training.checkpoint_every=100000 --eval.density_map=false --sampling.n=100 --sampling.every=0 > /dev/null || true
  stats "$out/$1/history.csv"
}
settings=()
for p in fp32 bf16; do for t in 1 2; do for w in default ACTIVE PASSIVE; do settings+=("$p $t $w"); done; done; done
declare -A quiet
for s in "${settings[@]}"; do
  set -- $s
  quiet[$s]=$(run "q_$1_$2_$3" "$1" "$2" "$3")
done
scripts/busy_load.sh 100000 "$compilers" > /dev/null 2>&1 &
load=$!
sleep 20  # the load settles (the compilers start, the Python process imports torch)
echo "| precision | threads | OMP_WAIT_POLICY | quiet ms/step (mean / median / p90) | loaded ms/step (mean / median / p90) |"
echo "|---|---:|---|---:|---:|"
for s in "${settings[@]}"; do
  set -- $s
  busy=$(run "b_$1_$2_$3" "$1" "$2" "$3")
  echo "| $1 | $2 | $3 | ${quiet[$s]} | $busy |"
done
kill "$load" 2>/dev/null
pkill -P "$load" 2>/dev/null || true
wait 2>/dev/null || true
echo "load average during the loaded runs: $(cut -d' ' -f1-3 /proc/loadavg)"
