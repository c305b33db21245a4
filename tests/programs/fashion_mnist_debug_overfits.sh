# training.debug overfits one image (DiT's debug mode): after 240 steps every sample, of every class row,
# reproduces debug_target.npy (Euler, NFE 10).  Measured here: per-sample MSE 0.0021 on average (0.0093 at
# most) on the [-1, 1] scale, against 0.16 for a flat grey guess.
. "$(dirname "$0")/lib.sh"
need_fmnist
w=$(fresh fmnist_debug)
capture "$fashion_mnist" "${fmnist_tiny[@]}" --workdir="$w" --training.debug=true --training.steps=240 \
  --training.lr=2e-3 --optim.warmup=20 --training.ema_decay=0.9 --model.dropout=0 --sampling.guidance=1 \
  --sampling.sampler=euler --sampling.nfe=10
expect_rc 0
expect_file "$w/debug_target.npy"
expect_file "$w/debug_target.png"
"$python" - "$w" <<'PY'
import sys, numpy as np
w = sys.argv[1]
target = np.load(f"{w}/debug_target.npy")[0, 0]            # [28, 28] in [-1, 1]
u8 = np.load(f"{w}/samples/step_240.npy")                   # uint8 [20, 28, 28, 1]
assert u8.dtype == np.uint8 and u8.shape == (20, 28, 28, 1), (u8.dtype, u8.shape)
x = u8[..., 0].astype(np.float64) * 2 / 255 - 1
mse = ((x - target) ** 2).mean(axis=(1, 2))
med = np.median(np.abs(x - target), axis=(1, 2))
spread = ((target - target.mean()) ** 2).mean()             # the MSE of a flat grey guess
print("ok: per-sample MSE to the debug image: max %.4f, mean %.4f; median |error| max %.4f; flat guess %.4f"
      % (mse.max(), mse.mean(), med.max(), spread))
assert mse.max() < 0.02 and mse.max() < spread / 5, mse
assert med.max() < 0.1, med
PY
