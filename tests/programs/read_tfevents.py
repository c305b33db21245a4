"""An independent reader of TensorBoard event files, for gm's tests: checks the TFRecord framing and both
masked CRC-32C checksums of every record, decodes the Event protobufs (wall_time, step, file_version,
summary values with simple_value or image), and checks a gm run folder's file against its history.csv and
log.txt.  Standard library only.

    python3 read_tfevents.py RUN_DIR [--metric NAME]     exit 0 and 'ok' lines, or a message and exit 1
"""
import glob
import math
import re
import shutil
import struct
import subprocess
import sys


def _table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = _table()


def crc32c(data):
    """CRC-32C (Castagnoli), table-driven; crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def fields(buf):
    """Yield (field, wire, value) of a protobuf message; value is int, bytes, or raw fixed bytes."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated field")
        yield field, wire, v


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def read(path):
    data = open(path, "rb").read()
    records, at = [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[at + 8:at + 12])
        assert crc == masked(header), f"{path}: byte {at}: length CRC mismatch"
        body = data[at + 12:at + 12 + length]
        (crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        assert len(body) == length and crc == masked(body), f"{path}: byte {at}: data CRC mismatch"
        records.append(body)
        at += 16 + length
    events = []
    for body in records:
        e = {"step": 0, "values": []}
        for f, w, v in fields(body):
            if f == 1 and w == 1:
                e["wall_time"] = struct.unpack("<d", v)[0]
            elif f == 2 and w == 0:
                e["step"] = v
            elif f == 3 and w == 2:
                e["file_version"] = v.decode()
            elif f == 5 and w == 2:
                for f2, w2, value in fields(v):
                    if f2 != 1:
                        continue
                    val = {}
                    for f3, w3, x in fields(value):
                        if f3 == 1:
                            val["tag"] = x.decode()
                        elif f3 == 2 and w3 == 5:
                            val["scalar"] = struct.unpack("<f", x)[0]
                        elif f3 == 4:
                            val["image"] = {g: y for g, _, y in fields(x)}
                    e["values"].append(val)
        events.append(e)
    return records, events


def main():
    assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value"
    run = sys.argv[1]
    metric = sys.argv[sys.argv.index("--metric") + 1] if "--metric" in sys.argv else None
    files = glob.glob(f"{run}/events.out.tfevents.*")
    assert len(files) == 1, f"expected one event file in {run}, found {files}"
    records, events = read(files[0])
    print(f"ok: framing and CRCs of {len(records)} records")
    assert events[0].get("file_version") == "brain.Event:2", events[0]
    scalars = {}
    images = []
    for e in events[1:]:
        assert e["wall_time"] > 1.6e9, e
        for v in e["values"]:
            if "scalar" in v:
                scalars.setdefault(v["tag"], []).append((e["step"], v["scalar"]))
            if "image" in v:
                images.append((v["tag"], e["step"], v["image"]))
    rows = [r.split(",") for r in open(f"{run}/history.csv").read().splitlines()[1:]]
    steps = [int(r[0]) for r in rows]
    assert steps == list(range(1, len(rows) + 1)), "history.csv steps are not 1..N once each"
    for col, tag in enumerate(["loss", "lr", "grad_norm", "ms_per_step"], start=1):
        got = scalars.get(tag, [])
        assert [s for s, _ in got] == steps, f"tag {tag}: steps {[s for s, _ in got][:5]}... != history.csv's"
        for (s, x), r in zip(got, rows):
            want = float(r[col])
            tol = 1e-5 if tag == "ms_per_step" else 2e-6  # history.csv keeps 6 digits of ms, 9 of the rest
            assert math.isclose(x, want, rel_tol=tol, abs_tol=1e-30), f"tag {tag} step {s}: {x} != {want}"
    print(f"ok: loss, lr, grad_norm, ms_per_step at steps 1..{len(steps)} equal history.csv")
    if metric:
        tag = "eval/" + metric
        assert tag in scalars, f"no {tag} in {sorted(scalars)}"
        step, value = scalars[tag][-1]
        assert step == steps[-1], f"{tag} at step {step}, expected {steps[-1]}"
        logged = re.findall(metric + r" (-?[0-9.]+)", open(f"{run}/log.txt").read())
        assert logged and abs(float(logged[-1]) - value) < 6e-5, f"{tag} = {value}, log.txt says {logged}"
        print(f"ok: {tag} = {value:.4f} at step {step}, as in log.txt")
    assert images, "no image summary"
    tag, step, image = images[-1]
    assert image[4].startswith(b"\x89PNG\r\n\x1a\n") and image[1] > 0 and image[2] > 0, "image is not a PNG"
    print(f"ok: image '{tag}' at step {step}, {image[2]}x{image[1]} PNG")
    protoc = shutil.which("protoc")
    if protoc:  # a second opinion on the protobuf encoding
        for body, want in ((records[0], 'file_version'), (records[1], '"loss"')):
            out = subprocess.run([protoc, "--decode_raw"], input=body, capture_output=True, check=True).stdout.decode()
            assert ("3: \"brain.Event:2\"" in out) if want == "file_version" else (want in out), out
        print("ok: protoc --decode_raw agrees")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
