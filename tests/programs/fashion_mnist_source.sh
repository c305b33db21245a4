# data.source: fashion_mnist trains and samples an image-to-image flow from a second image set (here a folder
# of IDX files at Fashion-MNIST's shape, and Fashion-MNIST itself), refuses a stochastic sampler for it, and
# refuses a source of another shape or without its root in one line, writing nothing.
. "$(dirname "$0")/lib.sh"
[ -f "$fmnist_root/train-images-idx3-ubyte.gz" ] || { ok "skipped: no Fashion-MNIST at $fmnist_root"; exit 0; }
d=$(fresh fmnist_source_files)
mkdir -p "$d/small" "$d/same"
idx() {  # idx FOLDER N H W: N images of H x W (image i all i), labels 0
  "$python" - "$@" <<'PY'
import struct, sys
folder, n, h, w = sys.argv[1], *map(int, sys.argv[2:])
open(folder + "/train-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, h, w) + bytes(i % 256 for i in range(n) for _ in range(h * w)))
open(folder + "/train-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + bytes(n))
PY
}
idx "$d/small" 4 8 8
idx "$d/same" 16 28 28
w=$(fresh fmnist_source)
capture "$fashion_mnist" "${fmnist_tiny[@]}" --training.steps=4 --data.source=mnist --data.source_root="$d/same" --workdir "$w"
expect_rc 0
expect_file "$w/weights.safetensors"
ok "a flow from a second image set trains and samples"
w=$(fresh fmnist_source_sde)
capture "$fashion_mnist" "${fmnist_tiny[@]}" --training.steps=2 --data.source=fashion_mnist --data.source_root="$fmnist_root" \
  --sampling.sampler=euler_maruyama --workdir "$w"
expect_rc 2
expect_one_line
expect_match "$out" "euler_maruyama is stochastic.*data source"
expect_absent "$w"
ok "a stochastic sampler is refused for a data source at start"
check() {  # check REGEX ARGS...
  local expect=$1
  shift
  w=$(fresh fmnist_source_bad)
  capture "$fashion_mnist" "${fmnist_tiny[@]}" --workdir="$w" "$@"
  expect_refused "$expect" "$w"
  ok "$expect"
}
check "data.source_root is required when data.source is mnist" --data.source=mnist
check "data.source \(.*\) has samples of shape 1x8x8, the data's are 1x28x28" --data.source=mnist --data.source_root="$d/small"
check "data.source" --data.source=noise
