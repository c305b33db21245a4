# The 2-D log-density map of a trained model shows its density: on the ring of Gaussians (diffusion_2d, VP
# with noise prediction) the brightest cells lie on the ring, at radius about 4, and the centre is dark.
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || fail "no Python at $python (scripts/setup.sh makes it)"
w=$(fresh log_density_map)
capture "$diffusion_2d" --config "$GM_SOURCE/configs/diffusion_2d.toml" --data.path="$GM_SOURCE/configs/mixtures/ring8.toml" \
  --workdir "$w" --training.steps=1500 --model.hidden=128 --sampling.n=500
expect_rc 0
expect_file "$w/log_density.png"
"$python" - "$w/log_density.png" <<'PY'
import sys, zlib, struct, math
data = open(sys.argv[1], "rb").read()
w, h = struct.unpack(">II", data[16:24])
idat = b""
at = 8
while at < len(data):
    n, = struct.unpack(">I", data[at:at + 4]); t = data[at + 4:at + 8]
    if t == b"IDAT": idat += data[at + 8:at + 8 + n]
    at += 12 + n
raw = zlib.decompress(idat)
stride = 1 + 3 * w
assert all(raw[r * stride] == 0 for r in range(h)), "gm writes filter type 0"
def px(x, y): o = y * stride + 1 + 3 * x; return raw[o:o + 3]
# Yellow (the top of the map) has the largest red + green; the ring's modes are at radius 4 of 5.
best = max(((px(x, y)[0] + px(x, y)[1], x, y) for y in range(0, h, 4) for x in range(0, w, 4)))
_, bx, by = best
r = math.hypot((bx + 0.5) / w * 10 - 5, 5 - (by + 0.5) / h * 10)
centre = px(w // 2, h // 2)
print("ok: brightest cell at radius %.2f; centre colour %s" % (r, tuple(centre)))
assert 3.3 < r < 4.7, r
assert centre[0] + centre[1] < 200, centre   # the centre of the ring is dark
PY
