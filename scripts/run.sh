#!/usr/bin/env bash
# Installs dependencies if missing, builds, and runs gm's embedded default experiment.
#   scripts/run.sh [example-or-benchmark] [args...]
#   scripts/run.sh --dry-run [...]      print the command it would run, and run nothing
# With no example it runs the default experiment, flow_2d with configs/flow_2d.toml (further --key=value
# arguments go after it), in runs/flow_2d.  Run again, it continues the newest run there that was
# interrupted (Ctrl-C, a kill: no weights.safetensors yet) instead of starting another; once runs/flow_2d
# holds a finished run, a new one goes to runs/flow_2d-<date>.  GM_RUNS names another folder than runs/.

set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
example="flow_2d"
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then example="$1"; shift; fi
if [ "$example" = flow_2d ] && [[ " $* " != *" --config"* ]] && [[ " $* " != *" --workdir"* ]]; then
  runs=${GM_RUNS:-runs}
  workdir=""
  # The newest interrupted run (a config.toml, no exported weights) continues.
  for d in $(ls -d "$runs/flow_2d" "$runs"/flow_2d-* 2>/dev/null | sort -r); do
    if [ -f "$d/config.toml" ] && [ ! -e "$d/weights.safetensors" ]; then
      workdir=$d
      echo "gm run: continuing the interrupted run in $workdir (remove that folder to start afresh)" >&2
      break
    fi
  done
  if [ -z "$workdir" ]; then
    workdir=$runs/flow_2d
    if [ -e "$workdir/config.toml" ]; then workdir="$runs/flow_2d-$(date +%Y%m%d-%H%M%S)"; fi
  fi
  set -- --config configs/flow_2d.toml --workdir "$workdir" "$@"
fi
if [ -f "examples/$example.cpp" ]; then dir=examples
elif [ -f "benchmarks/$example.cpp" ]; then dir=benchmarks
else
  echo "gm run: no example or benchmark named '$example' (see examples/*.cpp, benchmarks/*.cpp)" >&2
  exit 2
fi
build=${GM_BUILD_DIR:-build}
if [ "$dry" = 1 ]; then
  echo "$build/$dir/$example $*"
  exit 0
fi
scripts/setup.sh "$example"
exec "$build/$dir/$example" "$@"
