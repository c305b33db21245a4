"""Checks a flow_2d run folder from Python: weights.safetensors has a valid header with {"format": "pt"},
samples load with numpy, meta.json parses, and, where torch is installed, state_dict.pt loads as a dict.
Exit 0 on success; prints what it checked."""
import json
import struct
import sys

run = sys.argv[1]
raw = open(f"{run}/weights.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
assert header["__metadata__"] == {"format": "pt"}, header["__metadata__"]
end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
assert len(raw) == 8 + n + end, "data size does not match the header"
meta = json.load(open(f"{run}/meta.json"))
assert {"gm_version", "git_commit", "host", "start_time", "command_line"} <= set(meta)
print("safetensors ok:", len(header) - 1, "tensors; meta.json ok")
try:
    import numpy as np
    x = np.load(f"{run}/samples/step_30.npy")
    assert x.shape == (500, 2) and x.dtype == np.float32, (x.shape, x.dtype)
    print("npy ok:", x.shape)
except ImportError:
    print("npy not checked: no numpy")
try:
    import torch
    d = torch.load(f"{run}/state_dict.pt")
    assert isinstance(d, dict) and set(d) == set(k for k in header if k != "__metadata__"), sorted(d)
    print("state_dict.pt ok:", len(d), "tensors")
except ImportError:
    print("state_dict.pt not checked: no torch")
