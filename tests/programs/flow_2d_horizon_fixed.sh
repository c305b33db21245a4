# The LR schedule's horizon is fixed when a run is created: raising training.steps on resume continues at
# the schedule's final LR instead of bending the cosine under the steps already taken; optim.horizon may
# not change on resume.
. "$(dirname "$0")/lib.sh"
w=$(fresh horizon)
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --optim.warmup=5 --workdir "$w"
expect_rc 0
grep -q '^horizon = 30$' "$w/config.toml" || fail "config.toml should record horizon = 30"
lr29=$(sed -n '30p' "$w/history.csv" | cut -d, -f3)
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --optim.warmup=5 --training.steps=60 --workdir "$w"
expect_rc 0
# Step 29's LR is unchanged (history kept), and steps after 30 run at cosine's end value, 0.
[ "$(sed -n '30p' "$w/history.csv" | cut -d, -f3)" = "$lr29" ] || fail "step 29's LR changed"
lr45=$(sed -n '46p' "$w/history.csv" | cut -d, -f3)
[ "$lr45" = "0" ] || fail "step 45 ran at lr $lr45, expected the schedule's end, 0"
capture "$flow_2d" --config "$small" --optim.warmup=5 --optim.horizon=100 --training.steps=60 --workdir "$w"
expect_rc 2
expect_match "$out" "holds a run with optim.horizon = 30, not 100"
ok "the LR horizon stays fixed when a run is extended"
