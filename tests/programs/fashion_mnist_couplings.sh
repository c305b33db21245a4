# fashion_mnist pairs each batch's images with its noise by a minibatch coupling (training.coupling: OT-CFM on
# images, as torchcfm's CIFAR-10 example `--model otcfm`).  On the same images, noise and times, exact OT's
# losses are below the independent pairing's at every one of the first steps: an untrained network's loss is
# mostly the pairs' squared distance, which the assignment minimises (measured here, batch 64: 1.577 against
# 1.658 at step 1; Sinkhorn at reg 0.05 between, 1.635).  Within classes (the default for a class-conditional
# model) the assignment is solved per class, among fewer rows: its losses lie above the plan across classes.  sinkhorn and coupling_sample=plan train; a coupling
# the image experiment does not offer, or a 2-D key, is one line; guidance without label dropout warns.
. "$(dirname "$0")/lib.sh"
need_fmnist
args=("${fmnist_tiny[@]}" --training.batch_size=64 --training.steps=3 --training.log_every=1 --sampling.nfe=2
      --sampling.n=10 --optim.warmup=1)
runs=()
for run in independent exact_ot:across sinkhorn:across exact_ot:within; do
  coupling=${run%%:*} classes=${run#*:} extra=()
  [ "$coupling" = independent ] || extra=(--training.coupling_classes="$classes")
  w=$(fresh "fmnist_${run/:/_}")
  runs+=("$w")
  capture "$fashion_mnist" "${args[@]}" --workdir="$w" --training.coupling=$coupling "${extra[@]}"
  expect_rc 0
  if [ "$coupling" = independent ]; then grep -q "coupling, " <<<"$out" && fail "independent named a coupling: $out"
  elif [ "$classes" = within ]; then expect_match "$out" "attention at none, 10 classes\), $coupling coupling within classes, 3 steps"
  else expect_match "$out" "attention at none, 10 classes\), $coupling coupling, 3 steps on cpu"; fi
  expect_file "$w/samples/step_3.png"
done
"$python" - "${runs[@]}" <<'PY'
import csv, sys
def loss(w): return [float(r["loss"]) for r in csv.DictReader(open(f"{w}/history.csv"))]
ind, ot, sk, within = (loss(w) for w in sys.argv[1:5])
assert len(ind) == len(ot) == len(sk) == len(within) == 3, (ind, ot, sk, within)
assert all(o < i for o, i in zip(ot, ind)), ("exact OT pairs should lower every step's loss", ot, ind)
assert all(o < w for o, w in zip(ot, within)), ("OT within classes pairs among fewer rows: costlier than across", ot, within)
assert sk != ind and within != ind, "a coupling paired nothing"
show = lambda v: " ".join("%.4f" % x for x in v)
print("ok: losses over 3 steps, independent %s, exact_ot across classes %s, sinkhorn across %s, exact_ot within %s"
      % (show(ind), show(ot), show(sk), show(within)))
PY
w=$(fresh fmnist_plan)
capture "$fashion_mnist" "${args[@]}" --workdir="$w" --training.coupling=exact_ot --training.coupling_sample=plan \
  --training.label_dropout=0 --training.steps=1
expect_rc 0
expect_match "$out" "exact_ot coupling within classes, 1 steps on cpu"
expect_match "$out" "warning: sampling.guidance = 2 uses the unconditional model \(the null class\), which training.label_dropout = 0 never trains"
ok "coupling_sample=plan trains; guidance w = 2 without label dropout warns"
for bad in "--training.coupling=schrodinger_bridge" "--training.sigma_min=0.1"; do
  w=$(fresh fmnist_bad_coupling)
  capture "$fashion_mnist" "${args[@]}" --workdir="$w" "$bad"
  expect_refused "${bad%%=*}" "$w"
  ok "$bad: one line, exit code 2, nothing written"
done
