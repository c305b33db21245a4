# A resume takes every key it is not given from the run's own config.toml (a shorter command once resumed at
# the binary's defaults, with training.steps 8000 past a horizon of 3000); what it changes is logged.
. "$(dirname "$0")/lib.sh"
w=$(fresh resume_config)
capture "$flow_2d" --config "$small" --training.steps=20 --training.checkpoint_every=10 --optim.warmup=5 --workdir "$w"
expect_rc 0
# Only --workdir: the run's model (hidden 32, not the binary's 256), steps (20) and the rest.
capture "$flow_2d" --workdir "$w"
expect_rc 0
grep -q "changed" <<<"$out" && fail "a resume with only --workdir changed something: $out"
grep -q '^steps = 20$' "$w/config.toml" || fail "training.steps should stay 20: $(grep steps "$w/config.toml")"
[ "$(($(wc -l <"$w/history.csv") - 1))" -eq 20 ] || fail "history.csv should hold 20 steps"
# A flag changes its key, and the log says so.
capture "$flow_2d" --workdir "$w" --training.steps=30
expect_rc 0
expect_match "$out" "changed training.steps from 20 to 30 \(--training.steps\)"
expect_match "$(cat "$w/log.txt")" "changed training.steps from 20 to 30"
[ "$(($(wc -l <"$w/history.csv") - 1))" -eq 30 ] || fail "history.csv should hold 30 steps"
# A key that defines the run, given as a flag, is still refused.
capture "$flow_2d" --workdir "$w" --model.hidden=64
expect_rc 2
expect_match "$out" "holds a run with model.hidden = 32, not 64"
ok "a resume takes the run's own config; flags change it, and say so"
