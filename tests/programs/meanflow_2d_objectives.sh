# examples/meanflow_2d trains each few-step objective (MeanFlow, shortcut, consistency) on ring8 and samples
# it in one step with its own sampler; a MeanFlow run resumed from its checkpoint ends with the same weights,
# bit for bit, as one uninterrupted run (the pair of times and the JVP draw from the checkpointed generator);
# the same model samples with Heun at r = t; a bad objective is one line, exit code 2, nothing written.
. "$(dirname "$0")/lib.sh"
# Two threads pinned, so the uninterrupted and the resumed run are created with the same count whatever the load.
tiny=(--config "$GM_SOURCE/configs/meanflow_2d.toml" --model.hidden=32 --model.layers=2 --training.batch_size=64
      --training.log_every=10 --sampling.n=200 --training.threads=2)
for objective in meanflow shortcut consistency; do
  w=$(fresh "mf_$objective")
  sampler=flow_map; [ "$objective" = consistency ] && sampler=consistency
  capture "$meanflow_2d" "${tiny[@]}" --workdir="$w" --training.steps=20 --training.objective=$objective \
    --training.ect_every=5 --sampling.sampler=$sampler
  expect_rc 0
  expect_match "$out" "MLP 32x2, $objective objective, 20 steps on cpu"
  expect_match "$out" "sampled 200 in [0-9.]+ s with $sampler: 1 evaluations"
  expect_match "$out" "log_likelihood -?[0-9.]+ \\(exact samples"
  expect_file "$w/samples/step_20.npy"
  ok "$objective trains 20 steps and samples in one step with $sampler"
done
a=$(fresh mf_straight)
b=$(fresh mf_resumed)
args=("${tiny[@]}" --training.checkpoint_every=5 --optim.horizon=10)
capture "$meanflow_2d" "${args[@]}" --workdir="$a" --training.steps=10
expect_rc 0
capture "$meanflow_2d" "${args[@]}" --workdir="$b" --training.steps=5
expect_rc 0
capture "$meanflow_2d" "${args[@]}" --workdir="$b" --training.steps=10
expect_rc 0
expect_match "$out" "resuming at step 5"
cmp "$a/weights.safetensors" "$b/weights.safetensors" || fail "resumed MeanFlow weights differ from the uninterrupted run"
ok "a resumed MeanFlow run equals the uninterrupted one, bit for bit"
capture "$meanflow_2d" --workdir="$a" --mode=sample --sampling.sampler=heun --sampling.nfe=8
expect_rc 0
expect_match "$out" "with heun: 7 evaluations"  # 4 steps, the last one Euler to sigma = 0 (EDM)
expect_file "$a/samples/step_10_heun_nfe8_tend0.npy"
ok "the MeanFlow model samples with Heun at r = t"
w=$(fresh mf_bad)
capture "$meanflow_2d" "${tiny[@]}" --workdir="$w" --training.objective=sct
expect_rc 2
expect_one_line
expect_match "$out" "training.objective"
expect_absent "$w"
ok "a bad objective is one line, exit code 2, nothing written"
