# The 2-D log-density map of a trained model shows its density: on the ring of Gaussians (diffusion_2d, VP
# with noise prediction) the brightest cells lie on the ring, at radius about 4, and the centre is dark.
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || fail "no Python at $python (scripts/setup.sh makes it)"
w=$(fresh log_density_map)
capture "$diffusion_2d" --config "$GM_SOURCE/configs/diffusion_2d.toml" --data.path="$GM_SOURCE/configs/mixtures/ring8.toml" \
  --workdir "$w" --training.steps=1500 --model.hidden=128 --sampling.n=500
expect_rc 0
expect_file "$w/log_density.png"
window=$(grep -oE "log-density map: log_density.png \(96 x 96 points over \[[-0-9.e]+, [-0-9.e]+\] x \[[-0-9.e]+, [-0-9.e]+\]" "$w/log.txt" | grep -oE "\[.*" ) \
  || fail "no log-density line with its window in log.txt"
"$python" - "$w" "$window" <<'PY'
import sys, re, struct, math
import numpy as np
w, window = sys.argv[1], sys.argv[2]
x0, x1, y0, y1 = map(float, re.findall(r"-?[0-9.]+(?:e-?[0-9]+)?", window))
lp = np.load(f"{w}/log_density.npy")
n = lp.shape[0]
assert lp.shape == (n, n) and np.isfinite(lp).all(), lp.shape
r, c = np.unravel_index(np.argmax(lp), lp.shape)
x = x0 + (c + 0.5) / n * (x1 - x0); y = y1 - (r + 0.5) / n * (y1 - y0)   # row 0 at the top
radius = math.hypot(x, y)
ci, cj = round((y1 - 0) / (y1 - y0) * n - 0.5), round((0 - x0) / (x1 - x0) * n - 0.5)
centre = lp[ci, cj]
print("ok: window [%.2f, %.2f] x [%.2f, %.2f]; densest cell at radius %.2f; centre %.2f nats below the top"
      % (x0, x1, y0, y1, radius, lp.max() - centre))
assert x0 < -4 and x1 > 4 and y0 < -4 and y1 > 4, "the window does not hold the ring"
assert 3.3 < radius < 4.7, radius
assert lp.max() - centre > 3, "the centre of the ring is not dark"
png = open(f"{w}/log_density.png", "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (700, 600)
PY
