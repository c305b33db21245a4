# fashion_mnist on 2 data-parallel ranks (scripts/launch.sh, torchrun): each rank gathers, flips and
# dequantises only its own rows of every batch (the log says how many), drawing the flips and the noise for
# the whole batch, so the run trains as one process on the same global batch: the same losses to float
# tolerance (the two ranks' gradients are summed in another order), and the ranks log the same losses.
# With training.coupling=exact_ot the ranks gather their rows into the whole micro-batch, which the coupling
# pairs (OT over the global batch), and the run again trains as one process does.
. "$(dirname "$0")/lib.sh"
need_fmnist
[ -x "$torchrun" ] || fail "no torchrun at $torchrun (scripts/setup.sh installs it with torch)"
d=$(fresh dist_fmnist_shards); mkdir -p "$d"
export GM_LAUNCH_LOGS="$d/logs"
# 12 rows in 2 micro-batches of 6: each rank prepares 3 of each, 6 of the 12.  The learning rate stays in
# its warmup (5e-6 .. 2.5e-5): the weights move, and the runs stay close enough that each step's loss checks
# that step's data.  At lr 1e-3, Adam's first steps (about lr times each gradient's sign, whatever its size)
# grow the summation order's 1e-7 into 1.7e-5 by step 3 (measured): rounding amplified, not other data.
args=("${fmnist_tiny[@]}" --training.threads=1 --training.batch_size=12 --training.accumulate=2 --training.steps=5
      --training.log_every=1 --data.hflip=true --data.dequantize=true --sampling.nfe=2 --sampling.every=0)
for coupling in independent exact_ot; do
  capture "$fashion_mnist" "${args[@]}" --training.coupling=$coupling --workdir="$d/one_$coupling"
  expect_rc 0
  grep -q "this rank prepares" <<<"$out" && fail "one process said it prepares a share of the batch"
  capture "$GM_SOURCE/scripts/launch.sh" --nproc 2 "$fashion_mnist" "${args[@]}" --training.coupling=$coupling \
    --workdir="$d/two_$coupling"
  expect_rc 0
  expect_match "$out" "\[default0\]:this rank prepares 6 of each batch's 12 rows"
  expect_match "$out" "\[default1\]:this rank prepares 6 of each batch's 12 rows"
  expect_file "$d/two_$coupling/weights.safetensors"
done
"$python" - "$d" <<'PY'
import csv, sys
d = sys.argv[1]
def loss(run): return [float(r["loss"]) for r in csv.DictReader(open(f"{d}/{run}/history.csv"))]
for c in ("independent", "exact_ot"):
    one, two, two1 = loss(f"one_{c}"), loss(f"two_{c}"), loss(f"two_{c}/.rank1")
    assert len(one) == len(two) == 5, (len(one), len(two))
    assert two == two1, "the ranks logged different losses"
    rel = max(abs(a - b) / abs(b) for a, b in zip(two, one))
    # fp32 (fmnist_tiny): a reordered sum moves the loss by ~1e-7 relative; a wrong row, flip or noise by ~1e-2.
    assert rel < 1e-5, ("2 ranks preparing their own rows train differently from one process", c, rel, one, two)
    print("ok: %s: 2 ranks, each preparing 6 of 12 rows, vs 1 process: %.2g relative loss difference over 5 steps"
          % (c, rel))
assert loss("one_exact_ot") != loss("one_independent"), "exact_ot paired nothing"
PY
