# training.precision = bf16 trains; a precision gm does not have is refused before anything is written.
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
expect_match "$out" "--training.precision.*fp16"
expect_absent "$w"
ok "bf16 trains, fp16 refused"
