#!/usr/bin/env bash
# A load that can be scripted, like a shared machine's: compilers and a PyTorch training beside a gm run.
#   scripts/busy_load.sh SECONDS [COMPILERS]     (COMPILERS: g++ processes at once, default 2)
# Starts COMPILERS loops of g++ compiling one of gm's translation units (torch's headers: ~1 GB of memory and
# a core each) and one Python process training an MLP with torch on every core, for SECONDS, then stops them.
# Used for README's "A busy machine" measurements: run a gm command beside it and compare with a quiet run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/busy_load.sh SECONDS [COMPILERS]}
compilers=${2:-2}
python=${GM_PYTHON:-.venv/bin/python}
torch_include=$("$python" -c 'import torch.utils.cpp_extension as e; print(" ".join("-isystem " + p for p in e.include_paths()))')
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq "$compilers"); do
  # shellcheck disable=SC2086
  (while :; do g++ -std=c++20 -O1 -Iinclude $torch_include -c tests/test_time.cpp -o /dev/null 2>/dev/null || true; done) &
  pids+=($!)
done
"$python" - "$seconds" <<'PY' &
import sys, time, torch
net = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.SiLU(), torch.nn.Linear(512, 512), torch.nn.SiLU(),
                          torch.nn.Linear(512, 64))
opt = torch.optim.Adam(net.parameters(), 1e-3)
x = torch.randn(2048, 64)
end = time.time() + float(sys.argv[1]) + 5
while time.time() < end:
    loss = (net(x) - x).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
PY
pids+=($!)
sleep "$seconds"
