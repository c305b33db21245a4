# --mode=eval: samples do not depend on eval.batch (sample i comes from (seed, i)), each evaluation gets its
# own folder and a record appended to eval.json (FD against data draws, NLL of held-out draws), and a bad
# checkpoint path is a one-line error.
. "$(dirname "$0")/lib.sh"
w=$(fresh flow_2d_eval)
capture "$flow_2d" --config "$small" --workdir="$w" --training.steps=200
expect_rc 0
for b in 64 500; do
  capture "$flow_2d" --workdir="$w" --mode=eval --eval.n=500 --eval.batch=$b --eval.likelihood_n=64
  expect_rc 0
  expect_match "$out" "eval fd [0-9.]+"
  expect_match "$out" "eval nll [0-9.-]+"
done
for b in 50 300; do
  capture "$flow_2d" --workdir="$w" --mode=eval --eval.n=300 --eval.batch=$b --eval.likelihood_n=0 \
    --sampling.sampler=ddpm --sampling.nfe=30
  expect_rc 0
done
"$python" - "$w" "$GM_SOURCE/tests/programs" <<'PY'
import sys, json, numpy as np
w = sys.argv[1]
recs = json.load(open(f"{w}/eval.json"))
assert len(recs) == 4, len(recs)
f = [r["folder"] for r in recs]
assert f[0].startswith("heun_nfe") and f[1] == f[0] + "_2" and f[2] == "ddpm_nfe30_step200" and f[3] == f[2] + "_2", f
for r in recs[:2]:
    assert r["fd"] >= 0 and np.isfinite(r["nll"]) and r["nll_n"] == 64, r
    assert np.isfinite(r["kid"]) and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1, r
    assert 0.8 < r["precision_data"] <= 1 and 0.8 < r["recall_data"] <= 1, r  # two sets of data draws
for a, b in [(0, 1), (2, 3)]:
    x = np.load(f"{w}/eval/{recs[a]['folder']}/samples.npy"); y = np.load(f"{w}/eval/{recs[b]['folder']}/samples.npy")
    # the same samples; batched matrix products round differently at another batch size
    assert x.shape == y.shape and np.abs(x - y).max() < 1e-4, np.abs(x - y).max()
print("ok: 4 records; the same samples at two batch sizes (ODE and SDE), max difference %.2g" % np.abs(x - y).max())
# TensorBoard: each way of sampling is its own curve, eval/<sampler>_nfe<N>/<metric>.
import glob
sys.path.insert(0, sys.argv[2])
import read_tfevents
_, events = read_tfevents.read(glob.glob(f"{w}/events.out.tfevents.*")[0])
tags = {v["tag"] for e in events for v in e["values"] if "scalar" in v}
heun = f[0][:f[0].rfind("_step")]
for want in (f"eval/{heun}/fd", f"eval/{heun}/nll", "eval/ddpm_nfe30/fd"):
    assert want in tags, (want, sorted(t for t in tags if t.startswith("eval/")))
print(f"ok: TensorBoard eval tags name the sampler and NFE ({heun}, ddpm_nfe30)")
PY
capture "$flow_2d" --workdir="$w" --mode=eval --eval.checkpoint="$w/checkpoints/step_999"
expect_rc 2
expect_one_line
expect_match "$out" "checkpoint .*step_999 cannot be used"
ok "a missing checkpoint is a one-line error"
