"""The server loop shared by bench_train's Python baselines (train_mlp.py, train_image.py)."""
import sys
import time


def serve(step, ready):
    """Print `ready`, then answer each stdin line `run N` with `ms <milliseconds for N steps> loss <last loss>`
    (timed inside Python: start-up and the pipe excluded), until `quit` or end of input."""
    print(ready, flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        n = int(cmd[1])
        start = time.perf_counter()
        for _ in range(n):
            loss = step()
        ms = (time.perf_counter() - start) * 1e3
        print(f"ms {ms:.6f} loss {float(loss):.8g}", flush=True)
