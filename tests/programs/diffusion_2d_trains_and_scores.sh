# The second example on the same layer: VP + noise prediction on the ring mixture trains, previews samples
# during training, and scores them by the mixture's exact log-likelihood (in the log and TensorBoard).
. "$(dirname "$0")/lib.sh"
w=$(fresh diffusion)
capture "$diffusion_2d" --config "$GM_SOURCE/configs/diffusion_2d.toml" --data.path="$GM_SOURCE/configs/mixtures/ring8.toml" \
  --training.steps=40 --training.batch_size=128 --model.hidden=32 --model.layers=2 --sampling.n=500 \
  --sampling.every=20 --training.log_every=20 --workdir "$w"
expect_rc 0
expect_match "$out" "mixture .*ring8.toml, MLP 32x2, 40 steps on cpu"
expect_match "$out" "log_likelihood -?[0-9.]+ \(exact samples: -?[0-9.]+\)"
expect_match "$out" "10 sampler evaluations"
for f in samples/step_20.npy samples/step_20.png samples/step_40.npy history.csv loss.png weights.safetensors; do
  expect_file "$w/$f"
done
[ -x "$python" ] && { capture "$python" "$GM_SOURCE/tests/programs/read_tfevents.py" "$w" --metric log_likelihood; echo "$out"; expect_rc 0; }
ok "diffusion_2d trains, previews and scores"
