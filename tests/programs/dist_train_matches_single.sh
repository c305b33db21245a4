# Data-parallel training on 2 Gloo ranks equals training in one process at the same global batch: the same
# loss at every step to float tolerance (only the order of sums differs), the same weights on both ranks
# (bit for bit), and bit-identical repeats at 2 ranks; under torchrun (scripts/launch.sh) the same to float
# tolerance (torchrun's OMP_NUM_THREADS=1 changes OpenBLAS's threads, so its rounding).  Ranks start from different initialisations, so the
# broadcast from rank 0 is tested too.
. "$(dirname "$0")/lib.sh"
bin="$GM_BUILD/tests/programs/dist_train_check"
port=$((30000 + $$ % 300))
d=$(fresh dist_train); mkdir -p "$d"
"$bin" 30 256 > "$d/single.txt"
for run in a b; do
  for r in 0 1; do RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$bin" 30 256 > "$d/$run$r.txt" 2>&1 & done
  wait
  port=$((port + 1))
done
GM_LAUNCH_LOGS="$d/launch_logs" "$GM_SOURCE/scripts/launch.sh" --nproc 2 "$bin" 30 256 > "$d/launch.txt" 2>&1 \
  || fail "scripts/launch.sh failed: $(tail -5 "$d/launch.txt")"
sed -nE 's/^\[[a-z]*0\]:(rank 0 .*)/\1/p' "$d/launch.txt" > "$d/c0.txt"
sed -nE 's/^\[[a-z]*1\]:(rank 1 .*)/\1/p' "$d/launch.txt" > "$d/c1.txt"
capture "$GM_SOURCE/scripts/launch.sh" --nproc 0 "$bin"
expect_rc 2
expect_match "$out" "--nproc '0' is not a positive number"
"$python" - "$d" <<'PY'
import sys
d = sys.argv[1]
def read(name):
    loss, w = [], None
    for line in open(f"{d}/{name}.txt"):
        f = line.split()
        if f[2] == "step": loss.append(float(f[5]))
        if f[2] == "weights": w = (float(f[3]), float(f[4]))
    return loss, w
single, ws = read("single")
a0, wa0 = read("a0"); a1, wa1 = read("a1"); b0, wb0 = read("b0")
assert len(single) == len(a0) == 30, (len(single), len(a0))
assert a0 == a1, "the ranks logged different losses"
assert wa0 == wa1, ("the ranks' weights differ", wa0, wa1)
assert a0 == b0 and wa0 == wb0, "two 2-rank runs differ"
c0, wc0 = read("c0"); c1, wc1 = read("c1")
# torchrun sets OMP_NUM_THREADS=1, which also gives OpenBLAS one thread instead of two: other rounding.
assert len(c0) == 30 and c0 == c1 and wc0 == wc1, "the ranks under scripts/launch.sh differ"
crel = max(abs(x - y) / abs(y) for x, y in zip(c0, a0))
assert crel < 1e-5, ("scripts/launch.sh (torchrun) gave another run", crel)
rel = max(abs(x - y) / abs(y) for x, y in zip(a0, single))
wrel = max(abs(x - y) / abs(y) for x, y in zip(wa0, ws))
print("ok: 30 steps, max relative loss difference to one process %.2g, weights %.2g" % (rel, wrel))
assert rel < 1e-4 and wrel < 1e-4, (rel, wrel)
PY
