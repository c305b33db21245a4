# Post-hoc EMA (EDM2) through the experiment layer: training.phema tracks two power-function profiles and
# snapshots them; a run stopped and resumed writes byte-identical snapshots to an uninterrupted one (the
# profiles live in the checkpoints); --mode=eval --eval.phema rebuilds other profiles from the snapshots and
# scores them; a bad sigma_rel is a one-line error before anything is written.
. "$(dirname "$0")/lib.sh"
d=$(fresh phema); mkdir -p "$d"
args=(--config "$small" --training.phema=0.05,0.10 --training.phema_every=20 --training.checkpoint_every=30 --optim.horizon=90)
capture "$flow_2d" "${args[@]}" --training.steps=90 --workdir "$d/straight"
expect_rc 0
[ "$(ls "$d/straight/phema" | wc -l)" -eq 10 ] || fail "expected 10 snapshots (steps 20..80 and 90, 2 profiles): $(ls "$d/straight/phema")"
capture "$flow_2d" "${args[@]}" --training.steps=50 --workdir "$d/resumed"
expect_rc 0
capture "$flow_2d" "${args[@]}" --training.steps=90 --workdir "$d/resumed"
expect_rc 0
expect_match "$out" "resuming at step 50"
for f in "$d"/straight/phema/*; do
  cmp -s "$f" "$d/resumed/phema/$(basename "$f")" || fail "snapshot $(basename "$f") differs after the resume"
done
ok "post-hoc EMA snapshots of a resumed run are byte-identical to an uninterrupted run's"
capture "$flow_2d" --workdir "$d/straight" --mode=eval --eval.phema=0.03,0.2 --eval.n=500 --eval.likelihood_n=100
expect_rc 0
expect_match "$out" "post-hoc EMA sigma_rel 0.03 at step 90"
expect_file "$d/straight/eval/heun_nfe4_phema0.2_step90/samples.npy"
"$python" - "$d/straight/eval.json" <<'PY'
import json, math, sys
rows = json.load(open(sys.argv[1]))
assert [r["phema_sigma_rel"] for r in rows] == [0.03, 0.2], rows
assert all(math.isfinite(r["nll"]) and math.isfinite(r["fd"]) for r in rows), rows
assert rows[0]["nll"] != rows[1]["nll"], "two profiles scored the same"
PY
ok "eval.phema scores profiles rebuilt from the snapshots"
capture "$flow_2d" --config "$small" --training.phema=0.05,0.5 --workdir "$d/bad"
expect_rc 2
expect_one_line
expect_match "$out" "training.phema: post-hoc EMA sigma_rel 0.5.* is outside"
expect_absent "$d/bad"
capture "$flow_2d" --config "$small" --training.phema=0.05,x --workdir "$d/bad"
expect_rc 2
expect_match "$out" "training.phema: 'x' is not a number"
expect_absent "$d/bad"
ok "a bad sigma_rel is one line, nothing written"
