# Image evaluation end to end on a tiny model: a classifier trained for a few steps scores the samples
# (Fréchet distance to cached train-split statistics, class agreement), bits/dim of test images, and the
# samples exported as an ADM-style .npz (uint8 NHWC arr_0, labels arr_1) and a PNG folder.
. "$(dirname "$0")/lib.sh"
need_fmnist
c=$(fresh fmnist_eval_classifier)
capture "$classifier" --workdir="$c" --training.steps=60 --data.limit=2000
expect_rc 0
expect_match "$out" "test accuracy 0\.[0-9]+"
expect_file "$c/classifier.safetensors"
capture "$classifier" --workdir="$c" --training.steps=60 --data.limit=2000
expect_rc 2
expect_match "$out" "classifier.safetensors exists"
w=$(fresh fmnist_eval)
capture "$fashion_mnist" "${fmnist_tiny[@]}" --workdir="$w" --training.steps=40 --sampling.nfe=4
expect_rc 0
ref=$(fresh fmnist_eval_reference)
ev=(--workdir="$w" --mode=eval --eval.n=30 --eval.batch=16 --eval.likelihood_n=8 --eval.likelihood_steps=4
    --sampling.nfe=4 --eval.features="$c/classifier.safetensors" --eval.cache="$ref")
capture "$fashion_mnist" "${ev[@]}"
expect_rc 0
expect_match "$out" "eval fd [0-9.]+"
expect_match "$out" "eval class_agreement 0?\.?[0-9]+"
expect_match "$out" "eval bpd [0-9.]+"
[ "$(ls "$ref" | wc -l)" -eq 1 ] || fail "expected one cached reference file in $ref"
capture "$fashion_mnist" "${ev[@]}" --eval.png=false
expect_rc 0
"$python" - "$w" <<'PY'
import sys, json, numpy as np
w = sys.argv[1]
recs = json.load(open(f"{w}/eval.json"))
assert len(recs) == 2, recs
a, b = (f"{w}/eval/{r['folder']}" for r in recs)
z = np.load(f"{a}/samples.npz")
x, y = z["arr_0"], z["arr_1"]
assert x.dtype == np.uint8 and x.shape == (30, 28, 28, 1), (x.dtype, x.shape)
assert list(y) == [i % 10 for i in range(30)], y
assert (np.load(f"{b}/samples.npz")["arr_0"] == x).all()  # the cached statistics give the same record
assert recs[0]["fd"] == recs[1]["fd"], recs
import os
assert len(os.listdir(f"{a}/images")) == 30 and not os.path.exists(f"{b}/images")
for r in recs:
    assert r["fd"] > 0 and 0 <= r["class_agreement"] <= 1 and r["bpd"] > 0 and r["bpd_n"] == 8, r
    assert r["fd_real_test"] > 0 and 0 <= r["class_agreement_real_test"] <= 1, r
    for suffix in ("", "_real_test"):  # KID and precision/recall, beside the real test images' (the floor)
        assert np.isfinite(r["kid" + suffix]) and r["kid_std" + suffix] >= 0, r
        assert 0 <= r["precision" + suffix] <= 1 and 0 <= r["recall" + suffix] <= 1, r
assert recs[0]["kid"] > recs[0]["kid_real_test"], recs[0]  # a 40-step model is further than real images
print("ok: npz (30, 28, 28, 1) uint8 with labels, 30 PNGs, records", recs[0]["fd"], recs[0]["bpd"])
import struct
gw, gh = struct.unpack(">II", open(f"{a}/grid.png", "rb").read()[16:24])
assert gh > 3 * gw, (gw, gh)  # one row per class: 10 rows of 3 (each class has 3 of the 30 samples)
print(f"ok: grid.png {gw}x{gh}: one row per class, as the training previews")
PY
capture "$fashion_mnist" --workdir="$w" --mode=eval --eval.n=20 --eval.likelihood_n=0 --sampling.nfe=2
expect_rc 0
expect_match "$out" "FD skipped: no eval.features; .*--eval.features="
ok "without eval.features the evaluation says FD was skipped and how to get it"
# Guidance on part of the time range (REPA's guidance_high) with CFG rescale: its own folder; low > high refused.
capture "$fashion_mnist" --workdir="$w" --mode=eval --eval.n=20 --eval.likelihood_n=0 --sampling.nfe=2 \
  --sampling.guidance_high=0.7 --sampling.guidance_rescale=0.5
expect_rc 0
expect_file "$w/eval/heun_nfe2_w2_in0-0.7_rescale0.5_step40/samples.npz"
capture "$fashion_mnist" --workdir="$w" --mode=eval --sampling.guidance_low=0.8 --sampling.guidance_high=0.7
expect_rc 2
expect_one_line
expect_match "$out" "sampling.guidance_low = 0.8 is above sampling.guidance_high = 0.7"
ok "a guidance interval and CFG rescale sample into their own folder; a reversed interval is refused"
capture "$fashion_mnist" --workdir="$w" --mode=eval --eval.features="$w/nothing.pt"
expect_rc 2
expect_one_line
expect_match "$out" "nothing.pt: no such file"
ok "a missing feature network is a one-line error"
