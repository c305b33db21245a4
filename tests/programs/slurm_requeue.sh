# A real one-node Slurm (Debian's slurm-wlm and munge, started by scripts/slurm/cluster.sh): a 2-task
# training job from scripts/slurm/train.sbatch gets the pre-emption signal (SIGUSR1 to the batch script, as
# --signal=B:USR1@120 sends it before the time limit), checkpoints, requeues itself, resumes and finishes
# with weights bit-identical to an uninterrupted 2-task job's; scripts/slurm/sweep.sh runs an array job
# with one folder per line of overrides.  Skipped, saying why, without root or Slurm.
#   run alone: cd build && ctest -R slurm_requeue --output-on-failure
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || { echo "skipped: slurmd must run as root to start jobs (run the suite as root)"; exit 0; }
for b in slurmctld slurmd munged sbatch; do
  command -v $b > /dev/null || { echo "skipped: no $b (apt-get install slurm-wlm munge)"; exit 0; }
done
d=$(fresh slurm); mkdir -p "$d"
cluster="$GM_SOURCE/scripts/slurm/cluster.sh"
trap '"$cluster" stop "$d/cluster" > /dev/null 2>&1 || true' EXIT
capture "$cluster" start "$d/cluster"
expect_rc 0
export SLURM_CONF="$d/cluster/slurm.conf"
cd "$d"
sbatch_args=(--ntasks=2 --ntasks-per-node=2 --cpus-per-task=1 --time=10)
args=(--config "$small" --training.steps=2000 --training.threads=1 --training.log_every=100 --training.checkpoint_every=500)
state() { scontrol show job "$1" | grep -oE 'JobState=[A-Z]+' | cut -d= -f2; }
wait_state() {  # wait_state JOB STATE...: until the job is in one of the states (120 s at most)
  for _ in $(seq 1200); do
    s=$(state "$1"); for want in "${@:2}"; do [ "$s" = "$want" ] && return 0; done; sleep 0.1
  done
  fail "job $1 is $s, never ${*:2}; log: $(cat "$d"/*.out 2>/dev/null)"
}

# The uninterrupted reference: 2 tasks, 2000 steps.  (The test polls the job itself: sbatch --wait polls
# at growing intervals and took seconds after each job ended.)
ref=$(sbatch --parsable -o "$d/ref.out" "${sbatch_args[@]}" "$GM_SOURCE/scripts/slurm/train.sbatch" "$flow_2d" "${args[@]}" --workdir="$d/ref")
wait_state "$ref" COMPLETED FAILED CANCELLED
[ "$(state "$ref")" = COMPLETED ] || fail "the reference job ended $(state "$ref"): $(cat "$d/ref.out")"
grep -q "rank 1 of 2 (slurm)" "$d/ref.out" || fail "the reference job did not run 2 ranks: $(cat "$d/ref.out")"
expect_file "$d/ref/weights.safetensors"

# The same job, pre-empted at step >= 300.
job=$(sbatch --parsable -o "$d/pre.out" "${sbatch_args[@]}" "$GM_SOURCE/scripts/slurm/train.sbatch" "$flow_2d" "${args[@]}" --workdir="$d/pre")
for _ in $(seq 600); do grep -qE "^step +([3-9][0-9]{2}|1[0-9]{3})/" "$d/pre/log.txt" 2>/dev/null && break; sleep 0.1; done
scancel --batch --signal=USR1 "$job"
wait_state "$job" PENDING  # requeued
restarts=$(scontrol show job "$job" | grep -oE 'Restarts=[0-9]+' | cut -d= -f2)
[ "$restarts" = 1 ] || fail "job $job: Restarts=$restarts after the signal, expected 1: $(cat "$d/pre.out")"
# Slurm holds a requeued job ~2 minutes (BeginTime); shorten that to 3 s (slurmd refuses a job's relaunch
# within the second its old credential was revoked).
scontrol update JobId="$job" StartTime=now+3
wait_state "$job" COMPLETED FAILED CANCELLED
out=$(cat "$d/pre.out")
[ "$(state "$job")" = COMPLETED ] || fail "job $job ended $(state "$job"): $out"
expect_match "$out" "gm: job $job got SIGUSR1"
stop=$(grep -oE "stopped by signal 10 at step [0-9]+" <<<"$out" | head -1 | grep -oE "[0-9]+$") \
  || fail "no rank stopped on the signal (did the job finish first?): $out"
expect_match "$out" "stopped \(another rank was signalled\) at step $stop; checkpoint saved|stopped by signal 10 at step $stop; checkpoint saved"
expect_match "$out" "gm: job $job: checkpoint saved; requeueing"
expect_match "$out" "gm: job $job start 2 on"
[ "$(grep -c "resuming at step $stop" <<<"$out")" -eq 2 ] || fail "both ranks should resume at step $stop: $out"
expect_file "$d/pre/weights.safetensors"
cmp -s "$d/ref/weights.safetensors" "$d/pre/weights.safetensors" || fail "weights after the requeue differ from the uninterrupted job's"
cmp -s <(cut -d, -f1-4 "$d/ref/history.csv") <(cut -d, -f1-4 "$d/pre/history.csv") || fail "the loss history differs"
ok "pre-empted at step $stop of 2000: checkpointed, requeued (Restarts=1), resumed on 2 ranks, weights bit-identical"

# A sweep: one array task per line, folders named after the overrides.
printf '# two runs\ntraining.lr=1e-3 model.hidden=16\n\ntraining.lr=3e-3 model.hidden=16  # the second\n' > "$d/sweep.txt"
capture env GM_BINARY="$flow_2d" GM_SWEEP_ROOT="$d/sweep" "$GM_SOURCE/scripts/slurm/sweep.sh" "$small" "$d/sweep.txt" \
  --ntasks=1 --time=10
expect_rc 0
expect_match "$out" "submitted array job [0-9]+ with 2 tasks"
array=$(grep -oE "submitted array job [0-9]+" <<<"$out" | grep -oE "[0-9]+$")
for _ in $(seq 1200); do [ -z "$(squeue -h -j "$array" 2>/dev/null)" ] && break; sleep 0.1; done
[ -z "$(squeue -h -j "$array" 2>/dev/null)" ] || fail "array job $array still queued after 120 s: $(squeue -j "$array")"
for run in "training.lr=1e-3,model.hidden=16" "training.lr=3e-3,model.hidden=16"; do
  expect_file "$d/sweep/$run/weights.safetensors"
done
grep -q "lr = 0.003" "$d/sweep/training.lr=3e-3,model.hidden=16/config.toml" || fail "the second run did not get its lr"
printf 'training.lrr=1\n' > "$d/bad.txt"
capture env GM_BINARY="$flow_2d" GM_SWEEP_ROOT="$d/bad" "$GM_SOURCE/scripts/slurm/sweep.sh" "$small" "$d/bad.txt"
expect_rc 2
expect_match "$out" "bad.txt:1: .*--training.lrr=1"
expect_absent "$d/bad"
ok "sweep.sh: an array job of 2 runs in folders named after their overrides; a bad line is refused before submitting"
