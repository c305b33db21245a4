#!/usr/bin/env bash
# Installs dependencies if missing, builds, and runs gm's embedded default experiment.
#   scripts/run.sh [example] [args...]       (default: custom_sde)
set -euo pipefail
cd "$(dirname "$0")/.."
example="custom_sde"
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then example="$1"; shift; fi
if [ ! -f "examples/$example.cpp" ]; then
  echo "gm run: no example named '$example' (see examples/*.cpp)" >&2
  exit 2
fi
scripts/setup.sh "$example"
exec "build/examples/$example" "$@"
