# The exported files are what other tools expect: the safetensors package reads the weights, numpy the
# samples, torch state_dict.pt, and TensorBoard's own EventAccumulator the event file (tests/data/check_exports.py).
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || fail "no Python at $python (scripts/setup.sh makes it)"
w=$(fresh export)
capture "$flow_2d" --config "$small" --workdir "$w"
expect_rc 0
capture "$python" "$GM_SOURCE/tests/data/check_exports.py" "$w"
expect_rc 0
expect_match "$out" "safetensors header ok.*meta.json ok"
expect_match "$out" "safetensors package ok"
expect_match "$out" "EventAccumulator ok: [0-9]+ scalar tags"
echo "$out"
