# The exported files are what other tools expect: Python reads the safetensors header, meta.json, and
# (where /usr/bin/python3 has them) the samples with numpy and state_dict.pt with torch.
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || { echo "skipped: no $python"; exit 0; }
w=$(fresh export)
capture "$flow_2d" --config "$small" --workdir "$w"
expect_rc 0
capture "$python" "$GM_SOURCE/tests/data/check_exports.py" "$w"
expect_rc 0
expect_match "$out" "safetensors ok.*meta.json ok"
echo "$out"
