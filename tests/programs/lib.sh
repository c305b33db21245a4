# Helpers shared by gm's program-level tests.  ctest runs each scenario script with GM_BUILD (the build
# folder), GM_SOURCE (the source tree) and GM_RUNS (a scratch folder) set; a script exits non-zero with a
# FAIL line saying what it expected, or prints its ok lines.
set -euo pipefail
: "${GM_BUILD:?}" "${GM_SOURCE:?}" "${GM_RUNS:?}"
flow_2d="$GM_BUILD/examples/flow_2d"
diffusion_2d="$GM_BUILD/examples/diffusion_2d"
fashion_mnist="$GM_BUILD/examples/fashion_mnist"
dit="$GM_BUILD/examples/dit"
classifier="$GM_BUILD/examples/classifier"
downscale="$GM_BUILD/examples/downscale"
vdm="$GM_BUILD/examples/vdm"
edm="$GM_BUILD/examples/edm"
edm2="$GM_BUILD/examples/edm2"
meanflow_2d="$GM_BUILD/examples/meanflow_2d"
ot_flow_2d="$GM_BUILD/examples/ot_flow_2d"
fashion_mnist_meanflow="$GM_BUILD/examples/fashion_mnist_meanflow"
fmnist_root=/usr/share/datasets/fashion-mnist
# A small, fast fashion_mnist: 512 images, a 16-channel UNet without attention, fp32, 2 threads (pinned: auto
# takes fewer on a busy machine, and fp32 runs compared bit for bit must run on the same count).
fmnist_tiny=(--data.limit=512 --model.channels=16 --model.channel_mult=1,2 --model.attention=none --training.precision=fp32
             --training.batch_size=16 --sampling.n=20 --training.threads=2)
small="$GM_SOURCE/tests/data/flow_2d_small.toml"
# The Python with torch, numpy and the peers (scripts/setup.sh's environment), and its torchrun.
python=${GM_PYTHON:-$GM_SOURCE/.venv/bin/python}
torchrun="$(dirname "$python")/torchrun"

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# A fresh, empty scratch folder path for this scenario (the folder itself is not created).
fresh() { mkdir -p "$GM_RUNS"; rm -rf "${GM_RUNS:?}/$1"; echo "$GM_RUNS/$1"; }
# Run a command, keeping its combined output in $out and its exit code in $rc, whatever it returns.
capture() { set +e; out=$("$@" 2>&1); rc=$?; set -e; }
# expect_match TEXT REGEX: TEXT matches the extended regular expression.
expect_match() { grep -qE -- "$2" <<<"$1" || fail "expected /$2/ in output:"$'\n'"$1"; }
expect_rc() { [ "$rc" -eq "$1" ] || fail "exit code $rc, expected $1; output:"$'\n'"$out"; }
expect_file() { [ -s "$1" ] || fail "missing or empty file: $1"; }
expect_absent() { [ ! -e "$1" ] || fail "should not exist: $1"; }
# The number of lines of OUTPUT that are exactly one line long (no trace): every error is one line.
expect_one_line() { [ "$(printf '%s\n' "$out" | grep -c .)" -eq 1 ] || fail "expected a one-line message, got:"$'\n'"$out"; }
# expect_refused REGEX PATH: the last capture exited 2 with one line matching REGEX, and PATH was not written.
expect_refused() { expect_rc 2; expect_one_line; expect_match "$out" "$1"; expect_absent "$2"; }
# Skip the scenario when Debian's dataset-fashion-mnist is missing (scripts/setup.sh installs it).
need_fmnist() { [ -f "$fmnist_root/train-images-idx3-ubyte.gz" ] || { echo "skipped: no $fmnist_root (apt-get install dataset-fashion-mnist)"; exit 0; }; }
