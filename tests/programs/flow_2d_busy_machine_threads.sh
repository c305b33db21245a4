# On a busy machine a new run with training.threads = 0 (auto) takes the cores other work leaves (here two
# busy loops on every core: 1), says so, and saves the count so its resume runs as it did.
. "$(dirname "$0")/lib.sh"
loops=()
for _ in $(seq "$(nproc)"); do (while :; do :; done) & loops+=($!); done
trap 'kill "${loops[@]}" 2>/dev/null || true' EXIT
sleep 0.5
w=$(fresh busy_threads)
capture "$flow_2d" --config "$small" --training.threads=0 --workdir "$w"
expect_rc 0
expect_match "$out" "the machine is busy \(other work keeps [0-9.]+ of [0-9]+ cores busy\): training.threads = 1 for this run"
expect_match "$out" "on cpu, [a-z0-9]+, 1 thread\(s\)"
grep -qE '^threads = 1$' "$w/config.toml" || fail "config.toml does not keep threads = 1: $(grep threads "$w/config.toml")"
kill "${loops[@]}" 2>/dev/null || true
capture "$flow_2d" --workdir "$w" --training.steps=40
expect_rc 0
expect_match "$out" "resuming at step 30"
expect_match "$out" "on cpu, [a-z0-9]+, 1 thread\(s\)"
ok "a busy machine's new run takes 1 thread, says so, and keeps it on resume"
