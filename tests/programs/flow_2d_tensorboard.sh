# A run's TensorBoard event file decodes with an independent reader: the framing and CRCs check, and the
# tags, steps and values are those of history.csv and log.txt (loss, lr, grad_norm, ms_per_step every
# step, eval/support_fraction and the samples image at the end).  protoc --decode_raw cross-checks.
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || fail "no Python at $python (scripts/setup.sh makes it)"
w=$(fresh tensorboard)
capture "$flow_2d" --config "$small" --workdir "$w"
expect_rc 0
capture "$python" "$GM_SOURCE/tests/programs/read_tfevents.py" "$w" --metric support_fraction
echo "$out"
expect_rc 0
expect_match "$out" "image .log_density. at step 30, 700x600 PNG"
expect_file "$w/log_density.png"
expect_match "$(cat "$w/log.txt")" "log-density map: log_density.png \(96 x 96 points over .*, max -?[0-9.]+ nats"
ok "the 2-D log-density map is written and sent to TensorBoard"
