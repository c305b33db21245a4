# What a killed run logged after its last checkpoint is cut on resume: history.csv and the TensorBoard
# events hold every step exactly once, a torn last line is dropped, and loss.png and the mean step time
# cover the whole run; re-running the finished run does nothing but say so.
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
resumed=$out
[ -x "$python" ] && { capture "$python" "$GM_SOURCE/tests/programs/read_tfevents.py" "$w" --metric support_fraction; echo "$out"; expect_rc 0; }
[ "$(cut -d, -f1 "$w/history.csv" | tail -n +2 | tr '\n' ' ')" = "$(seq -s ' ' 1 30) " ] || fail "history.csv steps are not 1..30"
expect_match "$resumed" "mean training step [0-9.]*[1-9][0-9.]* ms"
expect_file "$w/loss.png"
ok "history and events cut back to the checkpoint; whole-run report"
# Re-running the finished run says so and writes nothing new (no samples/step_30_2.npy); --mode=sample asks.
before=$(ls "$w/samples" | tr '\n' ' ')
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --workdir "$w"
expect_rc 0
expect_match "$out" "the run is finished \(step 30 of training.steps = 30\).*nothing to do"
[ "$(ls "$w/samples" | tr '\n' ' ')" = "$before" ] || fail "a finished run sampled again: $(ls "$w/samples")"
capture "$flow_2d" --workdir "$w" --mode=sample --sampling.n=20
expect_rc 0
expect_file "$w/samples/step_30_heun_nfe4.npy"
ok "a finished run is not re-sampled unless asked"
