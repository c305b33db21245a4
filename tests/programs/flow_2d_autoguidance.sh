# Autoguidance through the experiment layer: --sampling.autoguide names an earlier checkpoint of the run
# (or a run folder, or a weights file) whose EMA weights guide the sampler; the samples differ from the
# unguided ones and are written under their own name in eval/; a path that is not a checkpoint or weights of
# another network is a one-line error before anything is written.
. "$(dirname "$0")/lib.sh"
d=$(fresh autoguide); mkdir -p "$d"
capture "$flow_2d" --config "$small" --training.steps=60 --training.checkpoint_every=20 --training.keep_checkpoints=5 --workdir "$d/run"
expect_rc 0
expect_file "$d/run/checkpoints/step_20/state.safetensors"
capture "$flow_2d" --workdir "$d/run" --mode=eval --eval.n=200 --eval.likelihood_n=0
expect_rc 0
capture "$flow_2d" --workdir "$d/run" --mode=eval --eval.n=200 --eval.likelihood_n=0 --sampling.autoguide="$d/run/checkpoints/step_20" --sampling.autoguidance=2
expect_rc 0
plain="$d/run/eval/heun_nfe4_step60/samples.npy"
guided="$d/run/eval/heun_nfe4_autoguide2_step60/samples.npy"
expect_file "$plain"
expect_file "$guided"
cmp -s "$plain" "$guided" && fail "autoguided samples equal the unguided ones"
grep -q '"autoguide": ' "$d/run/eval.json" || fail "eval.json does not record the guiding checkpoint"
capture "$flow_2d" --workdir "$d/run" --mode=eval --eval.n=200 --eval.likelihood_n=0 --sampling.autoguide="$d/run" --sampling.autoguidance=1
expect_rc 0
cmp -s "$plain" "$d/run/eval/heun_nfe4_autoguide1_step60/samples.npy" || fail "autoguidance at scale 1 changed the samples"
ok "autoguided by its step-20 checkpoint: other samples; at scale 1 the same"
capture "$flow_2d" --workdir "$d/run" --mode=sample --sampling.autoguide="$d/nope"
expect_rc 2
expect_one_line
expect_match "$out" "sampling.autoguide: .*nope: not a checkpoint folder"
capture "$flow_2d" --config "$small" --model.hidden=16 --workdir "$d/other" --sampling.autoguide="$d/run/checkpoints/step_20"
expect_rc 2
expect_one_line
expect_match "$out" "sampling.autoguide: .*do not fit this network"
expect_absent "$d/other"
ok "a bad autoguide path or another network's weights: one line, nothing written"
