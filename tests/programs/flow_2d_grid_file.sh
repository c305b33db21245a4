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
# The named grids and t_end (sampling.grid, sampling.t_end): their own sample files; a grid file beside a
# named grid, and a log-SNR grid to t = 0 on a process whose log-SNR is infinite there, are refused before
# anything is written; an NFE that is not whole steps is said in the log.
capture "$flow_2d" --workdir "$d/run" --mode=sample --sampling.n=50 --sampling.sampler=heun --sampling.nfe=5 \
  --sampling.grid=edm --sampling.t_end=0.01
expect_rc 0
expect_file "$d/run/samples/step_30_heun_nfe5_edm_tend0.01.npy"
expect_match "$(cat "$d/run/log.txt")" "sampling.nfe = 5 is not a whole number of heun steps \(2 evaluations each\): it runs 2 steps, 4 evaluations"
ok "sampling.grid and sampling.t_end sample on their grid; a rounded NFE is logged"
for bad in "--sampling.grid=cosine" "--sampling.t_end=0.9"; do
  capture "$flow_2d" --workdir "$d/run" --mode=sample "$bad"
  expect_rc 2
  expect_one_line
  expect_match "$out" "${bad%%=*}"
done
capture "$flow_2d" --workdir "$d/run" --mode=sample --sampling.grid=logsnr --sampling.t_end=0
expect_rc 2
expect_one_line
expect_match "$out" "logsnr grid needs a finite log-SNR at t_end"
capture "$flow_2d" --workdir "$d/run" --mode=sample --sampling.grid=edm --sampling.sampler=heun --sampling.nfe=4 \
  --sampling.grid_file="$grid"
expect_rc 2
expect_one_line
expect_match "$out" "sampling.grid = edm, sampling.shift = 1 and sampling.grid_file = .* are all set"
[ "$(ls "$d/run/samples" | grep -c _edm_tend0.01.npy)" -eq 1 ] || fail "a refused command wrote samples"
ok "bad grids and t_end are refused in one line, nothing written"
# Sampler options from the config: eta for k-diffusion's ancestral samplers, sit_sde's diffusion coefficient;
# each its own file name; a bad value is one line.
capture "$flow_2d" --workdir "$d/run" --mode=sample --sampling.n=50 --sampling.sampler=dpmpp_2m_sde --sampling.nfe=8 --sampling.eta=0
expect_rc 0
expect_file "$d/run/samples/step_30_dpmpp_2m_sde_nfe8_eta0.npy"
capture "$flow_2d" --workdir "$d/run" --mode=sample --sampling.n=50 --sampling.sampler=sit_sde --sampling.nfe=8 \
  --sampling.sde_diffusion=decreasing --sampling.sde_last_step=tweedie
expect_rc 0
expect_file "$d/run/samples/step_30_sit_sde_nfe8_decreasing_last-tweedie.npy"
capture "$flow_2d" --workdir "$d/run" --mode=sample --sampling.sampler=sit_sde --sampling.sde_diffusion=cosine
expect_rc 2
expect_one_line
expect_match "$out" "sampling.sde_diffusion"
ok "sampler options from the config: eta, sit_sde's diffusion and last step"
