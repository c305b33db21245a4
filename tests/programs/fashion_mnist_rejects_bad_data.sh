# Bad image data and bad conditioning settings: one line naming the file or key, exit code 2, nothing written.
. "$(dirname "$0")/lib.sh"
d=$(fresh fmnist_bad_files)
mkdir -p "$d/gz" "$d/cifar" "$d/folder/cls"
printf 'not gzip at all' > "$d/gz/train-images-idx3-ubyte"
printf '\x1f\x8b\x08\x00garbage' > "$d/gz/train-labels-idx1-ubyte.gz"
head -c 3073 /dev/zero > "$d/cifar/data_batch_1.bin"
printf 'this is not an image' > "$d/folder/cls/x.png"
check() {  # check REGEX ARGS...
  local expect=$1
  shift
  w=$(fresh fmnist_bad_run)
  capture "$fashion_mnist" --workdir="$w" "$@"
  expect_refused "$expect" "$w"
  ok "$expect"
}
check "/nonexistent/train-images-idx3-ubyte.gz: no such file" --data.root=/nonexistent
check "train-labels-idx1-ubyte.gz: corrupt gzip data|train-images-idx3-ubyte: not an IDX file" --data.root="$d/gz"
check "data_batch_1.bin: record 0 has label 0|data_batch_2.bin: no such file" --data.name=cifar10 --data.root="$d/cifar"
check "x.png: cannot decode image" --data.name=folder --data.root="$d/folder" --data.resolution=16
check "data.encoder|/nope.pt: no such file" --data.encoder=/nope.pt
check "sampling.class" --sampling.class=two
if [ -f "$fmnist_root/train-images-idx3-ubyte.gz" ]; then
  check "sampling.class = 12 is not a class" --sampling.class=12 --data.limit=64
  check "model.channel_mult" --model.channel_mult=1,,2
  check "training.label_dropout" --training.label_dropout=1.5
fi
