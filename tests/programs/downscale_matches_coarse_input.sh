# Conditional generation from a coarse input: a tiny UNet trained for 200 steps on the 7x7 average pooling of
# 512 Fashion-MNIST images generates 28x28 samples whose own pooling matches their (test-image) input far
# better than an unrelated image does.  Measured here: pool_rmse 0.058 against 0.323 (300 steps), on the
# [0, 1] pixel scale.  --mode=eval scores the same way and reports the conditional bits/dim.
. "$(dirname "$0")/lib.sh"
need_fmnist
w=$(fresh downscale)
capture "$downscale" "${fmnist_tiny[@]}" --workdir="$w" --training.steps=200 --training.ema_decay=0.9 --sampling.nfe=10
expect_rc 0
expect_file "$w/samples/step_200_condition.png"
pool=$(sed -nE 's/^pool_rmse ([0-9.]+).*/\1/p' <<<"$out")
unrelated=$(sed -nE 's/^pool_rmse_unrelated ([0-9.]+).*/\1/p' <<<"$out")
[ -n "$pool" ] && [ -n "$unrelated" ] || fail "no pool_rmse lines in:"$'\n'"$out"
awk -v p="$pool" -v u="$unrelated" 'BEGIN { exit !(p < 0.4 * u) }' || fail "pool_rmse $pool is not well below $unrelated"
ok "samples' 7x7 pooling vs the input: RMSE $pool (an unrelated image: $unrelated)"
capture "$downscale" --workdir="$w" --mode=eval --eval.n=16 --eval.batch=8 --eval.likelihood_n=4 --eval.likelihood_steps=3 \
  --sampling.nfe=4 --eval.png=false
expect_rc 0
expect_match "$out" "eval pool_rmse [0-9.]+"
expect_match "$out" "eval bpd [0-9.]+"
ok "eval mode scores the coarse-to-fine model"
