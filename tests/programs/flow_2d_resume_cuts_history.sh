# What a killed run logged after its last checkpoint is cut on resume: history.csv and the TensorBoard
# events hold every step exactly once, a torn last line is dropped, and loss.png and the mean step time
# cover the whole run (also when resuming a finished run).
. "$(dirname "$0")/lib.sh"
w=$(fresh cut)
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --workdir "$w"
expect_rc 0
# As if killed after step 30 was logged but before its checkpoint committed, mid-way through a row:
rm -rf "$w/checkpoints/step_30"
printf '31,4.1,0.001,1.' >>"$w/history.csv"
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --workdir "$w"
expect_rc 0
expect_match "$out" "resuming at step 20"
[ -x "$python" ] && { capture "$python" "$GM_SOURCE/tests/programs/read_tfevents.py" "$w" --metric support_fraction; echo "$out"; expect_rc 0; }
[ "$(cut -d, -f1 "$w/history.csv" | tail -n +2 | tr '\n' ' ')" = "$(seq -s ' ' 1 30) " ] || fail "history.csv steps are not 1..30"
# Resuming a finished run trains nothing, but still reports the whole run.
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --workdir "$w"
expect_rc 0
expect_match "$out" "mean training step [0-9.]*[1-9][0-9.]* ms"
expect_file "$w/loss.png"
ok "history and events cut back to the checkpoint; whole-run report"
