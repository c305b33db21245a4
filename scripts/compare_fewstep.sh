#!/usr/bin/env bash
# One- and two-step MeanFlow against multi-step rectified flow on Fashion-MNIST at equal training steps: the
# UNet of configs/fashion_mnist.toml trained as a flow (examples/fashion_mnist) and as a MeanFlow flow map
# (examples/fashion_mnist_meanflow, the same UNet with a second time), then scored by --mode=eval with gm's
# classifier as the feature network: FD-FMNIST, KID, precision/recall and class agreement of N samples,
# MeanFlow at 1 and 2 steps and at Heun 40 NFE (r = t), the flow at Heun 40 NFE; no guidance.
#   scripts/compare_fewstep.sh [steps=600] [samples=600] [out=runs/compare_fewstep]
set -euo pipefail
steps=${1:-600} n=${2:-600} out=${3:-runs/compare_fewstep}
cd "$(dirname "$0")/.."
build=${GM_BUILD_DIR:-build}
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE
[ -f "$out/classifier/classifier.safetensors" ] || "$build/examples/classifier" --workdir="$out/classifier" > "$out/classifier.log" 2>&1
common=(--data.name=fashion_mnist --data.root=/usr/share/datasets/fashion-mnist --training.steps="$steps"
        --training.batch_size=128 --training.lr=1e-3 --training.label_dropout=0.1 --training.precision=fp32
        --training.checkpoint_every="$steps" --training.log_every=50 --sampling.guidance=1 --sampling.class=rows)
eval=(--mode=eval --eval.n="$n" --eval.batch=200 --eval.likelihood_n=0 --eval.png=false
      --eval.features="$out/classifier/classifier.safetensors" --eval.cache="$out/reference")
[ -d "$out/flow" ] || "$build/examples/fashion_mnist" "${common[@]}" --workdir="$out/flow" > "$out/flow.log" 2>&1
[ -d "$out/meanflow" ] || "$build/examples/fashion_mnist_meanflow" --config configs/fashion_mnist_meanflow.toml \
  "${common[@]}" --workdir="$out/meanflow" > "$out/meanflow.log" 2>&1
"$build/examples/fashion_mnist" --workdir="$out/flow" "${eval[@]}" --sampling.sampler=heun --sampling.nfe=40 \
  > "$out/eval_flow_heun40.log" 2>&1
for s in flow_map:1 flow_map:2 heun:40; do
  "$build/examples/fashion_mnist_meanflow" --workdir="$out/meanflow" "${eval[@]}" --sampling.sampler="${s%%:*}" \
    --sampling.nfe="${s##*:}" > "$out/eval_meanflow_${s%%:*}${s##*:}.log" 2>&1
done
grep -h "mean training step" "$out/flow.log" "$out/meanflow.log"
tail -n 3 "$out"/eval_*.log
