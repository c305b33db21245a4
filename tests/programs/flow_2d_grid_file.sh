# An optimised grid carried to a trained network: bench_samplers --fit fits a mixture to the checkerboard
# by EM and searches a Heun grid on it (--grid optimized); flow_2d samples on that grid with
# --sampling.grid_file; a grid whose step count does not match the sampler's is one line, nothing written.
. "$(dirname "$0")/lib.sh"
d=$(fresh grid_file); mkdir -p "$d"
capture "$GM_BUILD/benchmarks/bench_samplers" --fit checkerboard:8 --grid optimized --nfe 4 --samplers heun --n 100 \
  --train-n 50 --search-evals 30 --out "$d/bench"
expect_rc 0
expect_file "$d/bench/fitted_checkerboard_k8.toml"
grid="$d/bench/grids/linear_heun_nfe4.toml"
expect_file "$grid"
capture "$flow_2d" --config "$small" --workdir "$d/run"
expect_rc 0
capture "$flow_2d" --workdir "$d/run" --mode=eval --eval.n=200 --eval.likelihood_n=0 --sampling.sampler=heun --sampling.nfe=4 \
  --sampling.grid_file="$grid"
expect_rc 0
expect_file "$d/run/eval/heun_nfe4_grid-linear_heun_nfe4_step30/samples.npy"
ok "a grid optimised on a fitted mixture samples the trained network"
capture "$flow_2d" --workdir "$d/run" --mode=sample --sampling.sampler=heun --sampling.nfe=10 --sampling.grid_file="$grid"
expect_rc 2
expect_one_line
expect_match "$out" "sampling.grid_file: .* has 2 steps .*heun at NFE 10 takes 5 steps"
ok "a grid of the wrong length is refused in one line"
