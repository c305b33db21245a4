# A real SIGTERM to the running program saves a checkpoint at the end of the step and exits with 0; the
# same command resumes from there, and SIGINT (Ctrl-C) does the same.
. "$(dirname "$0")/lib.sh"
w=$(fresh term)
wait_for() {  # wait_for PATTERN: until log.txt has a line matching it (30 s at most)
  for _ in $(seq 300); do grep -qE "$1" "$w/log.txt" 2>/dev/null && return 0; sleep 0.1; done
  fail "log.txt never showed /$1/"
}
"$flow_2d" --config "$small" --training.steps=1000000 --workdir "$w" >"$GM_RUNS/term1.out" 2>&1 &
pid=$!
wait_for '^step '
kill -TERM $pid
set +e; wait $pid; rc=$?; set -e
out=$(cat "$GM_RUNS/term1.out")
expect_rc 0
expect_match "$out" "stopped by signal 15 at step [0-9]+; checkpoint saved"
"$flow_2d" --config "$small" --training.steps=1000000 --workdir "$w" >"$GM_RUNS/term2.out" 2>&1 &
pid=$!
wait_for 'resuming at step [1-9]'
sleep 0.5
kill -INT $pid
set +e; wait $pid; rc=$?; set -e
out=$(cat "$GM_RUNS/term2.out")
expect_rc 0
expect_match "$out" "resuming at step [1-9][0-9]*"
expect_match "$out" "stopped by signal 2 at step [0-9]+; checkpoint saved"
ok "SIGTERM and SIGINT save and stop; the run resumes"
