# A real SIGTERM to the running program saves a checkpoint at the end of the step and exits with 75
# (gm::exit_code::requeue); the same command resumes from there, and SIGINT (Ctrl-C) and SIGUSR1 (Slurm's
# pre-emption warning) do the same.  A run that reaches its last step exits with 0.
. "$(dirname "$0")/lib.sh"
w=$(fresh term)
wait_for() {  # wait_for PATTERN [N]: until log.txt has N (default 1) lines matching it (30 s at most)
  for _ in $(seq 300); do [ "$(grep -cE "$1" "$w/log.txt" 2>/dev/null)" -ge "${2:-1}" ] && return 0; sleep 0.1; done
  fail "log.txt never showed /$1/"
}
runs=0
for sig in TERM INT USR1; do
  "$flow_2d" --config "$small" --training.steps=1000000 --workdir "$w" >"$GM_RUNS/term_$sig.out" 2>&1 &
  pid=$!
  if [ $runs -eq 0 ]; then wait_for '^step '; else wait_for 'resuming at step [1-9]' $runs; sleep 0.5; fi
  kill -$sig $pid
  set +e; wait $pid; rc=$?; set -e
  out=$(cat "$GM_RUNS/term_$sig.out")
  expect_rc 75
  expect_match "$out" "stopped by signal $(kill -l $sig) at step [0-9]+; checkpoint saved"
  [ $runs -eq 0 ] || expect_match "$out" "resuming at step [1-9][0-9]*"
  runs=$((runs + 1))
done
last=$(ls "$w/checkpoints" | sed 's/step_//' | sort -n | tail -1)
capture "$flow_2d" --config "$small" --training.steps=$((last + 5)) --workdir "$w"
expect_rc 0
expect_match "$out" "resuming at step $last"
ok "SIGTERM, SIGINT and SIGUSR1 save and stop with exit code 75; the run resumes and finishes with 0"
