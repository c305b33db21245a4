# examples/reflow_2d trains a flow on ring8, lets it generate pairs and retrains on them: the 2-rectified flow's
# paths are straighter than the flow's (measured on the same noise), and its one-step error against the exact
# flow map is lower.  A missing mixture file is one line and exit code 2.
. "$(dirname "$0")/lib.sh"
capture "$GM_BUILD/examples/reflow_2d" --mixture "$GM_SOURCE/configs/mixtures/ring8.toml" --steps 200 --pairs 2000 \
  --batch 256 --hidden 64 --layers 2
expect_rc 0
flow=($(grep '^flow (1-rectified)' <<<"$out" | awk '{print $3, $4}'))
reflow=($(grep '^reflow (2-rectified)' <<<"$out" | awk '{print $3, $4}'))
[ ${#flow[@]} -eq 2 ] && [ ${#reflow[@]} -eq 2 ] || fail "expected both rows:"$'\n'"$out"
awk -v a="${reflow[0]}" -v b="${flow[0]}" 'BEGIN { exit !(a < 0.5 * b) }' || fail "reflow straightness ${reflow[0]} not below half the flow's ${flow[0]}"
awk -v a="${reflow[1]}" -v b="${flow[1]}" 'BEGIN { exit !(a < b) }' || fail "reflow one-step error ${reflow[1]} not below the flow's ${flow[1]}"
ok "reflow: straightness ${flow[0]} -> ${reflow[0]}, one-step error ${flow[1]} -> ${reflow[1]}"
capture "$GM_BUILD/examples/reflow_2d" --mixture /nonexistent.toml
expect_rc 2
expect_one_line
expect_match "$out" "/nonexistent.toml: no such file"
ok "a missing mixture is one line, exit code 2"
