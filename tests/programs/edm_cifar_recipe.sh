# configs/cifar10_edm.toml runs as written but for its size on small CIFAR-10-format files: EDM's augmentation
# (9 labels into the UNet), EDM preconditioning and Heun at 36 evaluations down to sigma_min; examples/edm2
# trains EDM2's UNet with the learned log-variance on the same files and refuses augmentation before writing.
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || fail "no Python at $python (scripts/setup.sh makes it)"
d=$(fresh edm_data)
mkdir -p "$d"
"$python" - "$d" <<'PY'
import sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    recs = [bytes([k % 10]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes() for k in range(8)]
    open(f"{d}/{name}", "wb").write(b"".join(recs))
PY
# Two threads pinned: with threads = 0 each new run takes the cores other work leaves (gm::busy_cores), so the
# uninterrupted and the resumed run could be created with different thread counts and differ in their last bits.
tiny=(--data.root="$d" --model.channels=8 --model.res_blocks=1 --model.head_channels=8 --training.steps=3
      --training.batch_size=8 --training.log_every=1 --optim.warmup=0 --sampling.n=10 --training.precision=fp32
      --training.threads=2)
w=$(fresh edm_cifar)
capture "$edm" --config "$GM_SOURCE/configs/cifar10_edm.toml" --workdir="$w" "${tiny[@]}"
expect_rc 0
expect_match "$out" "40 images 3x32x32, 10 classes, EDM augmentation p = 0.12 \(9 labels\)"
expect_match "$out" "UNet .* \(8 ch, 2-2-2, 1 blocks, attention at 16, 10 classes\)"
expect_match "$out" "with heun: 36 evaluations"
"$python" - "$w" <<'PY' || fail "the run's samples or config"
import sys, numpy as np
w = sys.argv[1]
x = np.load(f"{w}/samples/step_3.npy")
assert x.dtype == np.uint8 and x.shape == (10, 32, 32, 3), (x.dtype, x.shape)
cfg = open(f"{w}/config.toml").read()
assert "augment = 0.12" in cfg and "p_mean = -1.2" in cfg and "nfe = 36" in cfg, cfg
PY
grep -q "augment.weight" <("$python" -c "import json,struct,sys; f=open(sys.argv[1],'rb'); n=struct.unpack('<Q',f.read(8))[0]; print(' '.join(json.loads(f.read(n))))" "$w/weights.safetensors") \
  || fail "the UNet's augmentation map is not among the exported weights"
ok "EDM's CIFAR-10 recipe: augmentation labels into the UNet, Heun at 36 evaluations, 10 samples"
w=$(fresh edm2_cifar)
capture "$edm2" --workdir="$w" --data.name=cifar10 "${tiny[@]}" --model.attention=8 --model.channel_mult=1,2,2
expect_rc 0
expect_match "$out" "EDM2UNet .* params \(8 ch, 1-2-2, 1 blocks, attention at 8, 10 classes\)"
expect_match "$out" "step +3/3 +loss -?[0-9]"
ok "EDM2's UNet with the learned log-variance trains and samples"
w=$(fresh edm2_augment)
capture "$edm2" --workdir="$w" --data.name=cifar10 "${tiny[@]}" --data.augment=0.12
expect_rc 2
expect_one_line
expect_match "$out" "data.augment needs augmentation labels in the network"
expect_absent "$w"
ok "EDM2 with augmentation is a one-line error and writes nothing"
# Resumed from a checkpoint, both end with the weights of an uninterrupted run, bit for bit: the augmentation
# draws come from the checkpointed generator, and EDM2's forced weight normalisation is part of the step.
for bin in edm edm2; do
  a=$(fresh ${bin}_straight)
  b=$(fresh ${bin}_resumed)
  args=(--data.name=cifar10 "${tiny[@]}" --model.attention=none --training.checkpoint_every=2 --sampling.nfe=2
        --optim.horizon=4)
  [ "$bin" = edm ] && args+=(--data.augment=0.5)
  capture "${!bin}" "${args[@]}" --workdir="$a" --training.steps=4
  expect_rc 0
  capture "${!bin}" "${args[@]}" --workdir="$b" --training.steps=2
  expect_rc 0
  capture "${!bin}" "${args[@]}" --workdir="$b" --training.steps=4
  expect_rc 0
  expect_match "$out" "resuming at step 2"
  cmp "$a/weights.safetensors" "$b/weights.safetensors" || fail "$bin: resumed weights differ from the uninterrupted run"
  ok "$bin: resumed weights equal the uninterrupted run's"
done
