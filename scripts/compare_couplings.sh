#!/usr/bin/env bash
# OT-CFM against I-CFM on Fashion-MNIST at equal training steps (Tong et al. 2023's comparison, as torchcfm's
# CIFAR-10 example `--model otcfm` / `icfm`): the UNet of configs/fashion_mnist.toml trained by
# examples/fashion_mnist with training.coupling = independent, = exact_ot across classes (one plan over the
# batch, as torchcfm) and = exact_ot within classes (gm's default for a class-conditional model) (the same seed:
# the same images, noise and times, paired differently), then scored by --mode=eval with gm's classifier as the
# feature network:
# FD-FMNIST, KID, precision/recall and class agreement of N samples at Euler 2, 4 and 8 steps and Heun 40 NFE;
# no guidance.  Prints one table row per model and sampler.
#   scripts/compare_couplings.sh [steps=600] [samples=600] [out=runs/compare_couplings] [--key=value ...]
# Keys after the third argument go to the three training runs (another seed: --seed=1).
set -euo pipefail
steps=${1:-600} n=${2:-600} out=${3:-runs/compare_couplings}
shift $(($# < 3 ? $# : 3))
extra=("$@")
cd "$(dirname "$0")/.."
build=${GM_BUILD_DIR:-build}
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE
[ -f "$out/classifier/classifier.safetensors" ] || "$build/examples/classifier" --workdir="$out/classifier" > "$out/classifier.log" 2>&1
echo "| coupling | sampler, NFE | FD-FMNIST | KID | precision | recall | class agreement |"
echo "|---|---|---:|---:|---:|---:|---:|"
for run in independent exact_ot:across exact_ot:within; do
  coupling=${run%%:*} name=${run/:/_} classes=()
  [ "$coupling" = independent ] || classes=(--training.coupling_classes="${run#*:}")
  [ -f "$out/$name/weights.safetensors" ] || "$build/examples/fashion_mnist" --config configs/fashion_mnist.toml \
    --training.steps="$steps" --training.checkpoint_every="$steps" --training.coupling="$coupling" "${classes[@]}" \
    --sampling.guidance=1 --workdir="$out/$name" "${extra[@]}" > "$out/$name.log" 2>&1
  for s in euler:2 euler:4 euler:8 heun:40; do
    log="$out/eval_${name}_${s%%:*}${s##*:}.log"
    "$build/examples/fashion_mnist" --workdir="$out/$name" --mode=eval --eval.n="$n" --eval.batch=200 \
      --eval.likelihood_n=0 --eval.png=false --eval.features="$out/classifier/classifier.safetensors" \
      --eval.cache="$out/reference" --sampling.guidance=1 --sampling.sampler="${s%%:*}" --sampling.nfe="${s##*:}" > "$log" 2>&1
    "${GM_PYTHON:-python3}" - "$log" "${run/:/ }" "${s/:/, }" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def num(key):
    m = re.search(r"\beval %s (-?[0-9.]+)" % key, text)
    return m.group(1) if m else "?"
print("| %s | %s | %s | %s | %s | %s | %s |" % (sys.argv[2], sys.argv[3], num("fd"), num("kid"), num("precision"),
                                             num("recall"), num("class_agreement")))
PY
  done
done
grep -H "mean training step" "$out"/independent.log "$out"/exact_ot_*.log
