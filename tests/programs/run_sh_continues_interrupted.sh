# scripts/run.sh (README's main job) run again continues the newest interrupted run instead of starting
# another; a finished runs/flow_2d sends a new run to runs/flow_2d-<date>; extra --key=value arguments follow
# the defaults.  (--dry-run prints the command and runs nothing.)
. "$(dirname "$0")/lib.sh"
d=$(fresh run_sh); mkdir -p "$d"
run_sh() { GM_RUNS="$d" "$GM_SOURCE/scripts/run.sh" --dry-run "$@" 2>&1; }
out=$(run_sh)
expect_match "$out" "examples/flow_2d --config configs/flow_2d.toml --workdir $d/flow_2d\$"
mkdir -p "$d/flow_2d" && touch "$d/flow_2d/config.toml"  # interrupted: no weights.safetensors
out=$(run_sh --training.steps=300)
expect_match "$out" "continuing the interrupted run in $d/flow_2d"
expect_match "$out" "--workdir $d/flow_2d --training.steps=300\$"
touch "$d/flow_2d/weights.safetensors"  # finished
out=$(run_sh)
expect_match "$out" "--workdir $d/flow_2d-[0-9]{8}-[0-9]{6}\$"
mkdir -p "$d/flow_2d-20990101-000000" && touch "$d/flow_2d-20990101-000000/config.toml"
out=$(run_sh)
expect_match "$out" "continuing the interrupted run in $d/flow_2d-20990101-000000"
out=$(run_sh --workdir "$d/mine")
expect_match "$out" "examples/flow_2d --workdir $d/mine\$"
ok "run.sh continues the interrupted run, starts a dated one after a finished one, passes arguments on"
