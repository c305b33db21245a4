# training.sync_every: steps that keep their loss and gradient norm on the device between host reads train
# exactly as steps read every time: history.csv's steps, losses, learning rates and gradient norms and the
# exported weights are the same bit for bit, and TensorBoard gets every step.  A non-finite step found at a
# read stops the run with exit code 3 and names the step where it happened.
. "$(dirname "$0")/lib.sh"
each=$(fresh sync_each)
capture "$flow_2d" --config "$small" --training.sync_every=1 --training.threads=1 --workdir "$each"
expect_rc 0
late=$(fresh sync_late)
capture "$flow_2d" --config "$small" --training.sync_every=7 --training.threads=1 --workdir "$late"
expect_rc 0
cut -d, -f1-4 "$each/history.csv" > "$each/h4"
cut -d, -f1-4 "$late/history.csv" > "$late/h4"
cmp -s "$each/h4" "$late/h4" || fail "history.csv differs between sync_every 1 and 7:"$'\n'"$(diff "$each/h4" "$late/h4" | head)"
[ "$(wc -l < "$late/h4")" -eq 31 ] || fail "history.csv should hold a header and 30 steps, has $(wc -l < "$late/h4") lines"
cmp -s "$each/weights.safetensors" "$late/weights.safetensors" || fail "the exported weights differ"
if [ -x "$python" ]; then
  capture "$python" "$GM_SOURCE/tests/programs/read_tfevents.py" "$late" --metric support_fraction
  expect_rc 0
fi
w=$(fresh sync_nonfinite)
capture "$flow_2d" --config "$small" --training.lr=1e30 --optim.warmup=0 --training.clip_norm=0 \
  --training.sync_every=5 --workdir "$w"
expect_rc 3
expect_match "$out" "gm: step [0-9]+: the loss \(.*\) or the gradient norm \(.*\) is not finite"
expect_file "$w/failure.json"
expect_absent "$w/weights.safetensors"
ok "sync_every 7 trains bit for bit as 1 (history, weights, TensorBoard); a non-finite step stops the run at the next read"
