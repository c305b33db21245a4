#!/usr/bin/env bash
# EDM2's magnitude-preserving UNet against ADM's UNet on Fashion-MNIST at equal parameters (1.20M) and steps,
# both in EDM's recipe (examples/edm and examples/edm2: EDM preconditioning, ln sigma ~ N(-1.2, 1.2^2), label
# dropout 0.1), each at its paper's learning rate, then scored by --mode=eval with gm's classifier as the
# feature network: FD-FMNIST, KID, precision/recall and class agreement of N samples at Heun 36 NFE.
#   scripts/compare_edm2.sh [steps=600] [samples=600] [out=runs/compare_edm2]
set -euo pipefail
steps=${1:-600} n=${2:-600} out=${3:-runs/compare_edm2}
cd "$(dirname "$0")/.."
build=${GM_BUILD_DIR:-build}
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE
[ -f "$out/classifier/classifier.safetensors" ] || "$build/examples/classifier" --workdir="$out/classifier" > "$out/classifier.log" 2>&1
common=(--data.name=fashion_mnist --data.root=/usr/share/datasets/fashion-mnist --model.channels=32
        --model.channel_mult=1,2,2 --model.res_blocks=1 --model.attention=7 --model.head_channels=32 --model.dropout=0.1
        --training.steps="$steps" --training.batch_size=128 --training.label_dropout=0.1 --training.p_mean=-1.2
        --training.p_std=1.2 --training.checkpoint_every="$steps" --training.log_every=50 --sampling.nfe=36
        --sampling.t_end=0 --sampling.class=rows)
"$build/examples/edm" "${common[@]}" --workdir="$out/adm" --training.lr=1e-3 > "$out/adm.log" 2>&1
"$build/examples/edm2" "${common[@]}" --workdir="$out/edm2" --training.lr=1e-2 > "$out/edm2.log" 2>&1
for arch in adm edm2; do
  bin=edm; [ "$arch" = edm2 ] && bin=edm2
  "$build/examples/$bin" --workdir="$out/$arch" --mode=eval --eval.n="$n" --eval.batch=200 --eval.likelihood_n=0 \
    --eval.png=false --eval.features="$out/classifier/classifier.safetensors" --eval.cache="$out/reference" \
    --sampling.guidance=1 > "$out/eval_$arch.log" 2>&1
done
grep -h "params" "$out/adm.log" "$out/edm2.log" | head -2
tail -n 3 "$out"/eval_*.log
