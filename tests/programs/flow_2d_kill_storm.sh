# SIGKILL at random points, again and again: each re-run resumes from the newest valid checkpoint, and the
# final weights are bit-identical to an uninterrupted run's, history.csv holds each step exactly once and the
# TensorBoard events decode.  The cosine schedule's LR depends on its horizon, so a wrong horizon on
# resume would show.
. "$(dirname "$0")/lib.sh"
# Slower builds (scripts/test.sh --sanitize sets GM_TEST_SLOWDOWN) train fewer steps in the same time.
steps=$((12000 / ${GM_TEST_SLOWDOWN:-1}))
args=(--config "$small" --model.hidden=16 --training.steps=$steps --training.batch_size=32 --training.checkpoint_every=500
      --training.keep_checkpoints=2 --optim.warmup=20 --training.log_every=10000 --sampling.n=200)
ref=$(fresh storm_ref)
capture "$flow_2d" "${args[@]}" --workdir "$ref"
expect_rc 0
w=$(fresh storm)
kills=0
RANDOM=7
for i in $(seq 1 40); do
  "$flow_2d" "${args[@]}" --workdir "$w" >>"$GM_RUNS/storm.out" 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
  if kill -KILL $pid 2>/dev/null; then kills=$((kills + 1)); fi
  wait $pid 2>/dev/null || true
  [ -f "$w/weights.safetensors" ] && break
  [ "$kills" -ge 12 ] && break
done
capture "$flow_2d" "${args[@]}" --workdir "$w"
expect_rc 0
[ "$kills" -ge 10 ] || fail "only $kills kills landed before the run finished; expected at least 10"
cmp -s "$ref/weights.safetensors" "$w/weights.safetensors" || fail "weights differ from the uninterrupted run's"
cmp -s "$ref/state_dict.pt" "$w/state_dict.pt" || fail "state_dict.pt differs from the uninterrupted run's"
[ "$(cut -d, -f1 "$w/history.csv" | tail -n +2 | tr '\n' ' ')" = "$(seq -s ' ' 1 $steps) " ] || fail "history.csv steps are not 1..$steps once each"
cmp -s <(cut -d, -f1-4 "$ref/history.csv") <(cut -d, -f1-4 "$w/history.csv") || fail "history.csv losses differ from the uninterrupted run's"
if [ -x "$python" ]; then
  capture "$python" "$GM_SOURCE/tests/programs/read_tfevents.py" "$w" --metric support_fraction
  expect_rc 0
fi
ok "$kills SIGKILLs: weights bit-identical, history and events once per step"
