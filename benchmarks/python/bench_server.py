"""The server loop shared by bench_train's Python baselines (train_mlp.py, train_image.py)."""
import sys
import time


def serve(step, ready, sync=lambda: None):
    """Print `ready`, then answer each stdin line `run N` with `ms <milliseconds for N steps> loss <last loss>`
    (timed inside Python: start-up and the pipe excluded; `sync` waits for the device's queued work), until
    `quit` or end of input."""
    print(ready, flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        n = int(cmd[1])
        start = time.perf_counter()
        for _ in range(n):
            loss = step()
        sync()
        ms = (time.perf_counter() - start) * 1e3
        print(f"ms {ms:.6f} loss {float(loss.detach()):.8g}", flush=True)


def device_settings(args):
    """The device, its autocast type and the sync of a baseline's --device; --compile wraps a module in
    torch.compile (inductor), whose compilation happens in the warm-up that bench_train runs first."""
    import torch
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    return device, device.type, sync


def add_device_args(ap):
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (inductor)")
