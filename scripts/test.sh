#!/usr/bin/env bash
# Installs dependencies if missing, builds, and runs gm's whole test suite.  Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
ctest -j"$(nproc)" --output-on-failure "$@"
