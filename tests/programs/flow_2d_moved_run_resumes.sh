# A run folder copied or moved elsewhere resumes there (workdir is not part of a run's identity), as does
# one given with a trailing slash, and a failed --device=cuda writes nothing that would block the cpu run.
. "$(dirname "$0")/lib.sh"
a=$(fresh moved_a)
b=$(fresh moved_b)
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --workdir "$a"
expect_rc 0
cp -r "$a" "$b"
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --training.steps=40 --workdir "$b/"
expect_rc 0
expect_match "$out" "resuming at step 30"
expect_match "$out" "step     40/40"
c=$(fresh moved_c)
capture "$flow_2d" --config "$small" --device=cuda --workdir "$c"
expect_rc 2
expect_absent "$c"
capture "$flow_2d" --config "$small" --device=cpu --workdir "$c"
expect_rc 0
ok "a copied run resumes; a failed device leaves nothing behind"
