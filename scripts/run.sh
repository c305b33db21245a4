#!/usr/bin/env bash
# Installs dependencies if missing, builds, and runs gm's embedded default experiment.
#   scripts/run.sh [example-or-benchmark] [args...]       (default: custom_sde)
set -euo pipefail
cd "$(dirname "$0")/.."
example="custom_sde"
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then example="$1"; shift; fi
if [ -f "examples/$example.cpp" ]; then dir=examples
elif [ -f "benchmarks/$example.cpp" ]; then dir=benchmarks
else
  echo "gm run: no example or benchmark named '$example' (see examples/*.cpp, benchmarks/*.cpp)" >&2
  exit 2
fi
scripts/setup.sh "$example"
exec "build/$dir/$example" "$@"
