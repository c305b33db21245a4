#!/usr/bin/env bash
# Installs dependencies if missing, builds, and runs gm's embedded default experiment.
#   scripts/run.sh [example-or-benchmark] [args...]
# With no arguments it runs the default experiment, flow_2d with configs/flow_2d.toml, into runs/flow_2d
# (or runs/flow_2d-<date> when that folder already holds a run).
set -euo pipefail
cd "$(dirname "$0")/.."
example="flow_2d"
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then example="$1"; shift; fi
if [ "$example" = flow_2d ] && [ $# -eq 0 ]; then
  workdir=runs/flow_2d
  if [ -e "$workdir/config.toml" ]; then workdir="runs/flow_2d-$(date +%Y%m%d-%H%M%S)"; fi
  set -- --config configs/flow_2d.toml --workdir "$workdir"
fi
if [ -f "examples/$example.cpp" ]; then dir=examples
elif [ -f "benchmarks/$example.cpp" ]; then dir=benchmarks
else
  echo "gm run: no example or benchmark named '$example' (see examples/*.cpp, benchmarks/*.cpp)" >&2
  exit 2
fi
scripts/setup.sh "$example"
exec "build/$dir/$example" "$@"
