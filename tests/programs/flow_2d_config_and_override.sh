# File values take effect (hidden 32, layers 2 from the file), a flag overrides one (steps 20), and the run
# folder holds every output a run promises.
. "$(dirname "$0")/lib.sh"
w=$(fresh config_override)
capture "$flow_2d" --config "$small" --training.steps=20 --workdir "$w"
expect_rc 0
expect_match "$out" "MLP 32x2, 20 steps on cpu"
expect_match "$out" "support_fraction 0\.[0-9]+ \(noise: 0\.5\)"
grep -q 'steps = 20' "$w/config.toml" || fail "config.toml lacks steps = 20"
grep -q 'hidden = 32' "$w/config.toml" || fail "config.toml lacks hidden = 32"
for f in samples/step_20.npy samples/step_20.png loss.png history.csv log.txt meta.json weights.safetensors state_dict.pt; do
  expect_file "$w/$f"
done
ls "$w"/events.out.tfevents.* >/dev/null 2>&1 || fail "no TensorBoard event file in $w"
[ "$(wc -l <"$w/history.csv")" -eq 21 ] || fail "history.csv should have a header and 20 rows"
ok "file values, flag override, and every output"
# From a folder without configs/: the relative --config file and data.path are gm's own (its source tree),
# and the log says which file was read; a path in none of gm's folders is still a one-line error.
elsewhere=$(fresh config_elsewhere); mkdir -p "$elsewhere"
capture bash -c "cd '$elsewhere' && '$diffusion_2d' --config configs/diffusion_2d.toml --workdir '$elsewhere/run' \
  --training.steps=5 --sampling.n=50 --eval.density_map=false"
expect_rc 0
expect_match "$out" "config file configs/diffusion_2d.toml: not in the working folder; read .*/configs/diffusion_2d.toml"
expect_match "$out" "mixture /.*configs/mixtures/ring8.toml"
expect_absent "$elsewhere/run/log_density.png"
capture bash -c "cd '$elsewhere' && '$diffusion_2d' --config configs/nope.toml --mode=check"
expect_rc 2
expect_one_line
expect_match "$out" "configs/nope.toml"
ok "gm's configs and mixtures are found from any folder"
