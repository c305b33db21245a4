# A run that goes non-finite (lr 1e30, no warmup, no clipping) stops at once with exit code 3 and a
# failure.json saying where; it exports nothing, writes no checkpoint with non-finite weights, and keeps
# the good checkpoints it had.  Skipping non-finite steps is opt-in and bounded.
. "$(dirname "$0")/lib.sh"
w=$(fresh nonfinite)
capture "$flow_2d" --config "$small" --training.lr=1e30 --optim.warmup=0 --training.clip_norm=0 \
  --training.checkpoint_every=1 --training.keep_checkpoints=2 --workdir "$w"
expect_rc 3
expect_match "$out" "gm: step [0-9]+: the loss \(.*\) or the gradient norm \(.*\) is not finite"
expect_file "$w/failure.json"
grep -q '"reason": "non-finite"' "$w/failure.json" || fail "failure.json lacks the reason: $(cat "$w/failure.json")"
grep -qE '"step": [0-9]+' "$w/failure.json" || fail "failure.json lacks the step"
grep -q '"last_good_checkpoint"' "$w/failure.json" || fail "failure.json lacks the last good checkpoint"
expect_absent "$w/weights.safetensors"
expect_absent "$w/state_dict.pt"
step=$(sed -nE 's/.*"step": ([0-9]+).*/\1/p' "$w/failure.json")
for d in "$w"/checkpoints/step_*; do
  [ -e "$d" ] || continue
  n=${d##*step_}
  [ "$n" -lt "$step" ] || fail "checkpoint $d is not older than the failing step $step"
  [ -f "$d/COMMIT" ] || fail "checkpoint $d has no COMMIT"
done
if [ -x "$python" ]; then  # every kept checkpoint's weights are finite (read with the standard library)
  "$python" - "$w" <<'PY' || fail "a kept checkpoint holds non-finite weights"
import array, glob, json, math, struct, sys
for f in glob.glob(sys.argv[1] + "/checkpoints/step_*/model.safetensors"):
    raw = open(f, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    for name, v in json.loads(raw[8:8 + n]).items():
        if name == "__metadata__" or v["dtype"] != "F32":
            continue
        a = array.array("f", raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
        assert all(math.isfinite(x) for x in a), (f, name)
PY
fi
w=$(fresh nonfinite_skip)
capture "$flow_2d" --config "$small" --training.lr=1e30 --optim.warmup=0 --training.clip_norm=0 \
  --training.max_nonfinite_skips=3 --workdir "$w"
expect_rc 3
expect_file "$w/failure.json"
ok "non-finite training stops with exit 3 and failure.json; nothing non-finite is written"
