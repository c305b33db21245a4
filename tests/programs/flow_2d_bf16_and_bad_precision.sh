# training.precision = bf16 trains; auto logs its choice; fp16 on the CPU, or a precision gm does not have, is refused
# before anything is written.
. "$(dirname "$0")/lib.sh"
w=$(fresh bf16)
capture "$flow_2d" --config "$small" --training.precision=bf16 --workdir "$w"
expect_rc 0
expect_match "$out" "30 steps on cpu, bf16, [0-9]+ thread"
expect_match "$out" "support_fraction"
for bad in "fp16|--training.precision=fp16 needs a CUDA device" "fp64|--training.precision.*fp64"; do
  precision=${bad%%|*}
  w=$(fresh "$precision")
  capture "$flow_2d" --config "$small" --training.precision="$precision" --workdir "$w"
  expect_rc 2
  expect_one_line
  expect_match "$out" "${bad#*|}"
  expect_absent "$w"
done
w=$(fresh auto)
capture "$flow_2d" --config "$small" --training.precision=auto --workdir "$w"
expect_rc 0
expect_match "$out" "precision auto: (bf16|fp32), for (a CPU (with|without) |GM_AUTO_PRECISION=(bf16|fp32) in the environment)"
# GM_AUTO_PRECISION makes auto resolve to bf16 on any CPU (the suite's way to run where auto is bf16).
w=$(fresh auto_forced)
capture env GM_AUTO_PRECISION=bf16 "$flow_2d" --config "$small" --training.precision=auto --workdir "$w"
expect_rc 0
expect_match "$out" "precision auto: bf16, for GM_AUTO_PRECISION=bf16 in the environment"
expect_match "$out" "30 steps on cpu, bf16, [0-9]+ thread"
w=$(fresh auto_bad)
capture env GM_AUTO_PRECISION=fp64 "$flow_2d" --config "$small" --training.precision=auto --workdir "$w"
expect_rc 2
expect_one_line
expect_match "$out" "GM_AUTO_PRECISION must be bf16 or fp32"
ok "bf16 trains, auto says what it chose and why (GM_AUTO_PRECISION forces it), fp16 on the CPU and fp64 refused"
