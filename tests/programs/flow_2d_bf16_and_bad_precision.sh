# training.precision = bf16 trains; auto logs its choice; fp16 on the CPU, or a precision gm does not have, is refused
# before anything is written.
. "$(dirname "$0")/lib.sh"
w=$(fresh bf16)
capture "$flow_2d" --config "$small" --training.precision=bf16 --workdir "$w"
expect_rc 0
expect_match "$out" "30 steps on cpu, bf16, [0-9]+ thread"
expect_match "$out" "support_fraction"
w=$(fresh fp16)
capture "$flow_2d" --config "$small" --training.precision=fp16 --workdir "$w"
expect_rc 2
expect_one_line
expect_match "$out" "--training.precision=fp16 needs a CUDA device"
expect_absent "$w"
w=$(fresh fp64)
capture "$flow_2d" --config "$small" --training.precision=fp64 --workdir "$w"
expect_rc 2
expect_one_line
expect_match "$out" "--training.precision.*fp64"
expect_absent "$w"
w=$(fresh auto)
capture "$flow_2d" --config "$small" --training.precision=auto --workdir "$w"
expect_rc 0
expect_match "$out" "precision auto: (bf16|fp32), for a CPU (with|without) "
ok "bf16 trains, auto says what it chose and why, fp16 on the CPU and fp64 refused"
