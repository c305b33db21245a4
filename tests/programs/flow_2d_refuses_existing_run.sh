# A folder that holds another run (a different seed, given as a flag) is refused, naming the key, and left
# untouched.  (Keys not given are the run's own: see flow_2d_resume_takes_run_config.)
. "$(dirname "$0")/lib.sh"
w=$(fresh taken)
mkdir -p "$w" && echo 'seed = 1' >"$w/config.toml"
capture "$flow_2d" --workdir "$w" --training.steps=5 --seed=0
expect_rc 2
expect_one_line
expect_match "$out" "holds a run with seed = 1, not 0; a resumed run may change only mode, workdir, device, training.steps"
[ "$(cat "$w/config.toml")" = "seed = 1" ] || fail "config.toml was changed"
[ "$(ls "$w")" = "config.toml" ] || fail "something was written into $w: $(ls "$w")"
ok "another run's folder refused and untouched"
