# python/gm_nets.py, gm's UNet and DiT in PyTorch, gives gm's outputs from gm's exported weights: net_probe
# writes a network with random weights (config.toml, weights.safetensors) and its output on a fixed input;
# gm_nets.load_run builds the same network from those files and must agree to float32 rounding.  Covers
# attention at a level that is not a power of two (14 on 28 x 28), Fourier time features, classes with the
# null class, a 3-channel 32 x 32 UNet, a UNet of two times (a flow map, probed at (t, r)), and a conditional DiT.
. "$(dirname "$0")/lib.sh"
[ -x "$python" ] || fail "no Python at $python (scripts/setup.sh makes it)"
probe="$GM_BUILD/tests/programs/net_probe"
d=$(fresh python_nets); mkdir -p "$d"
capture "$probe" unet "$d/unet28" 1 28 10 --model.channels=16 --model.channel_mult=1,2,2 --model.attention=14,7 \
  --model.res_blocks=1 --model.head_channels=8 --model.time_embedding=fourier
expect_rc 0
capture "$probe" unet "$d/unet32" 3 32 0 --model.channels=8 --model.channel_mult=1,2 --model.attention=16 --model.res_blocks=2
expect_rc 0
capture "$probe" unet2 "$d/unet_flowmap" 1 28 10 --model.channels=8 --model.channel_mult=1,2 --model.attention=14 \
  --model.res_blocks=1 --model.head_channels=8
expect_rc 0
capture "$probe" dit "$d/dit" 1 28 10 --model.preset=tiny --model.hidden=32 --model.depth=2 --model.heads=4 --model.patch=4
expect_rc 0
capture "$python" - "$GM_SOURCE/python" "$d" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import torch, gm_nets
torch.set_num_threads(1)
for name, size in (("unet28", 28), ("unet32", 32), ("unet_flowmap", 28), ("dit", None)):
    run = f"{sys.argv[2]}/{name}"
    net = gm_nets.load_run(run, image_size=size)
    p = gm_nets.read_safetensors(f"{run}/probe.safetensors")
    with torch.no_grad():
        out = net(p["x"], p["t"], p.get("y"))
    err = (out - p["out"]).abs().max().item()
    scale = p["out"].abs().max().item()
    print(f"ok: {name}: {sum(t.numel() for t in net.state_dict().values())} weights loaded strictly; "
          f"max |python - gm| = {err:.2e} (outputs up to {scale:.2f})")
    assert out.shape == p["out"].shape and err <= 1e-5 * max(1.0, scale), (name, err)
try:
    gm_nets.load_run(f"{sys.argv[2]}/unet28")
    raise SystemExit("FAIL: a UNet with attention loaded without image_size")
except ValueError as e:
    assert "needs image_size" in str(e), e
PY
echo "$out"
expect_rc 0
ok "gm_nets.py reproduces gm's UNet and DiT from exported weights"
