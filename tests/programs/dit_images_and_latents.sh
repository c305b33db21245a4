# examples/dit trains and samples on CIFAR-10 binary files, on an image folder, and in the latents of a
# TorchScript autoencoder written by the venv's torch; samples come back as uint8 images in pixel space.
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || fail "no Python at $python (scripts/setup.sh makes it)"
d=$(fresh dit_data)
mkdir -p "$d/cifar"
cat > "$d/make.py" <<'PY'
import sys, os, struct, zlib
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    recs = []
    for k in range(8):
        recs.append(bytes([k % 10]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes())
    open(f"{d}/cifar/{name}", "wb").write(b"".join(recs))
def png(path, w, h, rgb):
    raw = b"".join(b"\0" + bytes(rgb) * w for _ in range(h))
    chunk = lambda t, data: struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                           chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for c, rgb in [("red", (255, 0, 0)), ("blue", (0, 0, 255))]:
    os.makedirs(f"{d}/folder/{c}", exist_ok=True)
    for i in range(4):
        png(f"{d}/folder/{c}/{i}.png", 20 + i, 16, rgb)
import torch
class AE(torch.nn.Module):
    @torch.jit.export
    def encode(self, x):
        return torch.nn.functional.avg_pool2d(x, 2)
    @torch.jit.export
    def decode(self, z):
        return torch.nn.functional.interpolate(z, scale_factor=2.0)
torch.jit.script(AE()).save(f"{d}/ae.pt")
PY
"$python" "$d/make.py" "$d"  # from a file: torch.jit.script reads the class's source
tiny=(--model.hidden=32 --model.depth=1 --model.heads=2 --training.steps=4 --training.batch_size=8 --sampling.n=4
      --sampling.nfe=2 --training.precision=fp32)
shape() {  # shape RUN EXPECTED: the samples' shape and dtype
  "$python" -c "import numpy as np, sys; x = np.load(sys.argv[1]); assert x.dtype == np.uint8 and str(x.shape) == sys.argv[2], (x.dtype, x.shape)" \
    "$1/samples/step_4.npy" "$2" || fail "samples of $1"
  expect_file "$1/samples/step_4.png"
}
w=$(fresh dit_cifar)
capture "$dit" "${tiny[@]}" --workdir="$w" --data.name=cifar10 --data.root="$d/cifar" --data.hflip=true
expect_rc 0
expect_match "$out" "40 images 3x32x32, 10 classes, DiT"
shape "$w" "(10, 32, 32, 3)"
ok "CIFAR-10 binary: 10 samples, one per class"
w=$(fresh dit_folder)
capture "$dit" "${tiny[@]}" --workdir="$w" --data.name=folder --data.root="$d/folder" --data.resolution=16
expect_rc 0
expect_match "$out" "8 images 3x16x16, 2 classes"
shape "$w" "(4, 16, 16, 3)"
ok "image folder: 2 classes at 16x16"
w=$(fresh dit_latent)
capture "$dit" "${tiny[@]}" --workdir="$w" --data.name=folder --data.root="$d/folder" --data.resolution=16 \
  --data.encoder="$d/ae.pt" --model.patch=2
expect_rc 0
expect_match "$out" "latents 3x8x8 from .*ae.pt"
shape "$w" "(4, 16, 16, 3)"
ok "latent DiT: trained on 3x8x8 latents, samples decoded to 16x16 pixels"
