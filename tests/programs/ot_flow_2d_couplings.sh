# examples/ot_flow_2d trains flow matching with each minibatch coupling (independent, exact OT, Sinkhorn, and
# SB-CFM's Schrödinger bridge) and
# samples with Euler at 4 steps; a bad coupling name is one line, exit code 2, nothing written.
. "$(dirname "$0")/lib.sh"
tiny=(--config "$GM_SOURCE/configs/ot_flow_2d.toml" --model.hidden=32 --model.layers=2 --training.batch_size=64
      --training.steps=20 --training.log_every=10 --sampling.n=200)
for coupling in independent exact_ot sinkhorn schrodinger_bridge; do
  w=$(fresh "ot_$coupling")
  capture "$ot_flow_2d" "${tiny[@]}" --workdir="$w" --training.coupling=$coupling
  expect_rc 0
  if [ "$coupling" = independent ]; then
    expect_match "$out" "MLP 32x2, 20 steps on cpu"
  elif [ "$coupling" = schrodinger_bridge ]; then
    expect_match "$out" "MLP 32x2, sb_cfm objective, sinkhorn coupling, 20 steps on cpu"
  else
    expect_match "$out" "MLP 32x2, $coupling coupling, 20 steps on cpu"
  fi
  expect_match "$out" "sampled 200 in [0-9.]+ s with euler: 4 evaluations"
  expect_file "$w/samples/step_20.npy"
  ok "$coupling: trains and samples"
done
w=$(fresh ot_bad)
capture "$ot_flow_2d" "${tiny[@]}" --workdir="$w" --training.coupling=hungarian
expect_rc 2
expect_one_line
expect_match "$out" "training.coupling"
expect_absent "$w"
ok "a bad coupling is one line, exit code 2, nothing written"
