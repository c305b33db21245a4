# Re-running with the same --workdir resumes from the newest checkpoint (and may raise training.steps and
# change the logging cadence); --mode=sample samples it without training; the weights are exported.
. "$(dirname "$0")/lib.sh"
w=$(fresh resume)
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --workdir "$w"
expect_rc 0
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --training.steps=50 --training.log_every=25 --workdir "$w"
expect_rc 0
expect_match "$out" "resumed from .*step_30"
expect_match "$out" "resuming at step 30"
expect_match "$out" "step     50/50"
capture "$flow_2d" --workdir "$w" --mode=sample --sampling.sampler=dpmpp2m --sampling.nfe=6
expect_rc 0
expect_match "$out" "resumed from .*step_50"
expect_match "$out" "6 sampler evaluations"
for f in samples/step_50_dpmpp2m_nfe6.npy weights.safetensors state_dict.pt meta.json; do expect_file "$w/$f"; done
ok "resume to 50 steps, then sample with dpmpp2m"
