# A warmup as long as the run and a run past the LR horizon are each one warning line; an empty --key= is a
# one-line error that swallows nothing (`--workdir= --mode=check` used to train in a folder named --mode=check).
. "$(dirname "$0")/lib.sh"
w=$(fresh lr_warnings)
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --workdir "$w"
expect_rc 0
expect_match "$out" "warning: optim.warmup \(200\) >= training.steps \(30\): the LR never reaches training.lr"
w2=$(fresh lr_warnings_2)
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --optim.warmup=5 --workdir "$w2"
expect_rc 0
grep -q "warning:" <<<"$out" && fail "a warmup of 5 in 30 steps warned: $out"
capture "$flow_2d" --config "$small" --training.checkpoint_every=10 --optim.warmup=5 --training.steps=40 --workdir "$w2"
expect_rc 0
expect_match "$out" "warning: training.steps \(40\) runs past the LR horizon \(30, optim.horizon\): steps 30 to 40 train at lr 0"
scratch=$(fresh empty_value)
mkdir -p "$scratch"
(cd "$scratch" && capture "$flow_2d" --config "$small" --workdir= --mode=check
 expect_rc 2
 expect_one_line
 expect_match "$out" "gm: --workdir= has no value; write --workdir=VALUE"
 [ -z "$(ls -A .)" ] || fail "an empty --workdir= wrote: $(ls -A .)")
ok "warmup and horizon warnings; an empty value refused"
