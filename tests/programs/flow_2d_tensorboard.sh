# A run's TensorBoard event file decodes with an independent reader: the framing and CRCs check, and the
# tags, steps and values are those of history.csv and log.txt (loss, lr, grad_norm, ms_per_step every
# step, eval/support_fraction and the samples image at the end).  protoc --decode_raw cross-checks.
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || { echo "skipped: no $python"; exit 0; }
w=$(fresh tensorboard)
capture "$flow_2d" --config "$small" --workdir "$w"
expect_rc 0
capture "$python" "$GM_SOURCE/tests/programs/read_tfevents.py" "$w" --metric support_fraction
echo "$out"
expect_rc 0
