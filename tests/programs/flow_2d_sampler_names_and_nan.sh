# Sampler names as k-diffusion, the web UIs and diffusers write them are accepted (dpmpp_2m is gm's dpmpp2m),
# a misspelt one gets a "did you mean"; --help shows each key's type; and samples that are not finite are a
# one-line error with exit code 3 naming the sampler, the first non-finite step and its time, with nothing
# written (no .npy, no PNG, no metric).
. "$(dirname "$0")/lib.sh"
capture "$flow_2d" --help
expect_rc 0
expect_match "$out" "--training.steps INT"
expect_match "$out" "--training.lr FLOAT"
expect_match "$out" "--training.debug BOOL"
expect_match "$out" "--data.name TEXT"
w=$(fresh sampler_names)
capture "$flow_2d" --config "$small" --sampling.sampler=dpmpp_2m --workdir "$w"
expect_rc 0
expect_match "$out" "with dpmpp2m: "
capture "$flow_2d" --config "$small" --workdir "$w" --mode=sample "--sampling.sampler=DPM++ 2M SDE"
expect_rc 0
expect_match "$out" "with dpmpp_2m_sde: "
w2=$(fresh sampler_typo)
capture "$flow_2d" --config "$small" --sampling.sampler=dpmpp2n --workdir "$w2"
expect_rc 2
expect_one_line
expect_match "$out" "unknown sampling.sampler 'dpmpp2n'; did you mean 'dpmpp2m'\?"
expect_absent "$w2"
# Poison the last checkpoint's EMA weights (the ones sampled) with NaN, its COMMIT marker kept consistent.
"$python" - "$w/checkpoints/step_30" <<'PY'
import json, struct, sys, zlib
d = sys.argv[1]
raw = bytearray(open(f"{d}/state.safetensors", "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
for name, v in json.loads(raw[8:8 + n]).items():
    if name.startswith("ema_") and v["dtype"] == "F32":
        a, b = v["data_offsets"]
        raw[8 + n + a:8 + n + b] = struct.pack("<f", float("nan")) * ((b - a) // 4)
open(f"{d}/state.safetensors", "wb").write(raw)
lines = []
for line in open(f"{d}/COMMIT").read().split("\n"):
    if line.startswith("state.safetensors "):
        line = f"state.safetensors {len(raw)} {zlib.crc32(raw)}"
    lines.append(line)
open(f"{d}/COMMIT", "w").write("\n".join(lines))
PY
before=$(ls "$w/samples" | sort)
capture "$flow_2d" --config "$small" --workdir "$w" --mode=sample
expect_rc 3
expect_match "$out" "gm: sampler dpmpp2m gave samples that are not finite, first at step 1 of [0-9]+ \(t = [0-9.e-]+\); nothing written"
[ "$(ls "$w/samples" | sort)" = "$before" ] || fail "a failed draw wrote samples: $(ls "$w/samples")"
ok "sampler aliases and did-you-mean, typed --help, non-finite samples refused in one line with exit code 3"
