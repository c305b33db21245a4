# gm's library API around an experiment (tests/programs/library_api.cpp): Experiment::ema(), gm::load_weights
# of a run folder and a checkpoint folder, and Trainer::sample with gm::SampleOptions.
. "$(dirname "$0")/lib.sh"
d=$(fresh library_api)
capture "$GM_BUILD/tests/programs/library_api" --config "$small" --workdir "$d"
printf '%s\n' "$out" | grep -E "^(ok|FAIL):" || true
expect_rc 0
[ "$(grep -c '^ok:' <<<"$out")" -eq 11 ] || fail "expected 11 ok lines:"$'\n'"$out"
ok "the library API around an experiment"
