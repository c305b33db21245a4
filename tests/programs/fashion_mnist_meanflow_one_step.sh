# examples/fashion_mnist_meanflow trains the class-conditional UNet flow map by MeanFlow (a JVP through the
# UNet each step) and samples one grid row per class in one step, then two, then with Heun at r = t.
. "$(dirname "$0")/lib.sh"
need_fmnist
w=$(fresh fmnist_meanflow)
capture "$fashion_mnist_meanflow" "${fmnist_tiny[@]}" --workdir="$w" --training.steps=4 --training.log_every=2
expect_rc 0
expect_match "$out" "meanflow objective, 4 steps on cpu"
expect_match "$out" "sampled 20 in [0-9.]+ s with flow_map: 1 evaluations"
expect_file "$w/samples/step_4.png"
"$python" -c "import numpy as np, sys; x = np.load(sys.argv[1]); assert x.dtype == np.uint8 and x.shape == (20, 28, 28, 1), x.shape" \
  "$w/samples/step_4.npy" || fail "one-step samples should be uint8 [20, 28, 28, 1]"
ok "MeanFlow on Fashion-MNIST trains and samples a class grid in one step"
capture "$fashion_mnist_meanflow" --workdir="$w" --mode=sample --sampling.nfe=2
expect_rc 0
expect_match "$out" "with flow_map: 2 evaluations"
capture "$fashion_mnist_meanflow" --workdir="$w" --mode=sample --sampling.sampler=heun --sampling.nfe=6
expect_rc 0
expect_match "$out" "with heun: 5 evaluations"  # 3 steps, the last one Euler to sigma = 0 (EDM)
ok "two steps, and Heun at r = t"
