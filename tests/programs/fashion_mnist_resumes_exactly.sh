# An image run resumed from its checkpoint ends with the same weights, bit for bit, as one uninterrupted run:
# the epoch permutation comes from (seed, epoch), flips and dequantisation noise from the checkpointed
# generator.  The samples are uint8 NHWC with their labels, one row per class in the PNG grid.
. "$(dirname "$0")/lib.sh"
need_fmnist
a=$(fresh fmnist_straight)
b=$(fresh fmnist_resumed)
args=("${fmnist_tiny[@]}" --sampling.nfe=4 --data.hflip=true --data.dequantize=true --training.checkpoint_every=3 --training.log_every=1)
capture "$fashion_mnist" "${args[@]}" --workdir="$a" --training.steps=6
expect_rc 0
capture "$fashion_mnist" "${args[@]}" --workdir="$b" --training.steps=3
expect_rc 0
capture "$fashion_mnist" "${args[@]}" --workdir="$b" --training.steps=6
expect_rc 0
expect_match "$out" "resuming at step 3"
cmp "$a/weights.safetensors" "$b/weights.safetensors" || fail "resumed weights differ from the uninterrupted run"
ok "resumed weights equal the uninterrupted run's"
# The saved config records the data's real shape (data.resolution and data.channels shape image folders;
# for Fashion-MNIST they are 28 and 1, not the keys' defaults 32 and 3).
grep -qE '^resolution = 28$' "$a/config.toml" && grep -qE '^channels = 1$' "$a/config.toml" ||
  fail "config.toml does not record 28x28x1: $(grep -E '^(resolution|channels) =' "$a/config.toml")"
ok "config.toml records the data's shape, 28 x 28 x 1"
"$python" - "$a" <<'PY'
import sys, numpy as np
a = sys.argv[1]
x, y = np.load(f"{a}/samples/step_6.npy"), np.load(f"{a}/samples/step_6_labels.npy")
assert x.dtype == np.uint8 and x.shape == (20, 28, 28, 1), (x.dtype, x.shape)
assert y.tolist() == [k for k in range(10) for _ in range(2)], y   # sampling.n = 20: 2 per class row
print("ok: samples uint8 NHWC", x.shape, "with labels 0..9 in rows")
PY
expect_file "$a/samples/step_6.png"
# Sampling the run again: one class, with guidance; the file names the sampler, NFE and scale.
capture "$fashion_mnist" --mode=sample --workdir="$a" --sampling.class=3 --sampling.guidance=4 --sampling.nfe=2
expect_rc 0
expect_file "$a/samples/step_6_heun_nfe2_w4.npy"
"$python" -c "import numpy as np, sys; y = np.load(sys.argv[1]); assert (y == 3).all() and len(y) == 20, y" \
  "$a/samples/step_6_heun_nfe2_w4_labels.npy" || fail "class 3 labels"
ok "mode=sample with sampling.class=3 and guidance 4"
# The resumed run's TensorBoard file holds each step once and the sample grid as an image.
capture "$python" "$GM_SOURCE/tests/programs/read_tfevents.py" "$b"
expect_rc 0
expect_match "$out" "loss, lr, grad_norm, ms_per_step at steps 1..6 equal history.csv"
expect_match "$out" "image 'samples' at step 6, [0-9]+x[0-9]+ PNG"
ok "TensorBoard: steps 1..6 once, the sample grid as an image"
expect_match "$(cat "$b/log.txt")" "sampled 20 in [0-9.]+ s with heun: 4 evaluations, [0-9.]+ s in the network, sampler overhead"
