"""Checks a flow_2d run folder from Python with the readers people use: weights.safetensors through the
`safetensors` package (and its raw header by hand), samples with numpy, meta.json, state_dict.pt with torch,
and the TensorBoard event file with TensorBoard's own EventAccumulator.  Exit 0 on success; prints what it
checked.  Every reader is required (scripts/setup.sh installs them): a missing one is a failure."""
import glob
import json
import struct
import sys

import numpy as np
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = sys.argv[1]
raw = open(f"{run}/weights.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
assert header["__metadata__"] == {"format": "pt"}, header["__metadata__"]
end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
assert len(raw) == 8 + n + end, "data size does not match the header"
meta = json.load(open(f"{run}/meta.json"))
assert {"gm_version", "git_commit", "host", "start_time", "command_line"} <= set(meta)
print("safetensors header ok:", len(header) - 1, "tensors; meta.json ok")

w = load_file(f"{run}/weights.safetensors")
assert set(w) == set(k for k in header if k != "__metadata__"), sorted(w)
assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in w.values())
print("safetensors package ok:", len(w), "tensors")

x = np.load(f"{run}/samples/step_30.npy")
assert x.shape == (500, 2) and x.dtype == np.float32, (x.shape, x.dtype)
print("npy ok:", x.shape)

d = torch.load(f"{run}/state_dict.pt")
assert isinstance(d, dict) and set(d) == set(w), sorted(d)
assert all(torch.equal(d[k], w[k]) for k in w), "state_dict.pt and weights.safetensors differ"
print("state_dict.pt ok:", len(d), "tensors, equal to weights.safetensors")

events = glob.glob(f"{run}/events.out.tfevents.*")
assert len(events) == 1, events
acc = EventAccumulator(events[0], size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
assert "loss" in tags["scalars"], tags["scalars"]
loss = acc.Scalars("loss")
assert loss and all(np.isfinite(e.value) for e in loss) and loss[-1].step <= 30, loss[-3:]
print("EventAccumulator ok:", len(tags["scalars"]), "scalar tags,", len(loss), "loss points,",
      len(tags["images"]), "image tags")
