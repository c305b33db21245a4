# VDM end to end on a tiny model: the learned schedule trains with the UNet (its weights are in the
# checkpoint and the export), the loss is the ELBO in bits/dim, --mode=eval records the test ELBO beside the
# probability-flow bpd and the learned endpoints, schedule.png is drawn; dequantised data is refused.
. "$(dirname "$0")/lib.sh"
need_fmnist
w=$(fresh vdm)
capture "$vdm" "${fmnist_tiny[@]}" --workdir="$w" --training.steps=20 --training.log_every=10 --sampling.nfe=4
expect_rc 0
expect_match "$out" "step +20/20 +loss [0-9.]+"
expect_file "$w/schedule.png"
capture "$vdm" --workdir="$w" --mode=eval --eval.n=8 --eval.batch=16 --eval.elbo_n=64 --eval.likelihood_n=4 \
  --eval.likelihood_steps=4 --sampling.nfe=4
expect_rc 0
expect_match "$out" "eval elbo_bpd [0-9.]+"
expect_match "$out" "eval bpd [0-9.]+"
"$python" - "$w" <<'PY'
import sys, json, struct
w = sys.argv[1]
r = json.load(open(f"{w}/eval.json"))[-1]
assert r["elbo_n"] == 64 and 0 < r["elbo_bpd"] < 20 and r["elbo_bpd_stderr"] > 0, r
assert r["bpd"] > 0 and r["gamma_0"] < r["gamma_1"], r
with open(f"{w}/weights.safetensors", "rb") as f:
    header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
assert {"vdm_gamma.gamma_0", "vdm_gamma.gap", "vdm_gamma.w3"} <= header.keys(), sorted(header)[:8]
print("ok: test ELBO", r["elbo_bpd"], "bpd, probability-flow", r["bpd"], "bpd, gamma", r["gamma_0"], r["gamma_1"])
PY
ok "the schedule trains with the network and eval reports the ELBO beside the probability-flow bpd"
d=$(fresh vdm_dequantized)
capture "$vdm" "${fmnist_tiny[@]}" --workdir="$d" --data.dequantize=true
expect_rc 2
expect_one_line
expect_match "$out" "data.dequantize must be false"
[ ! -e "$d" ] || fail "a refused run wrote $d"
ok "dequantised data is refused in one line, nothing written"
