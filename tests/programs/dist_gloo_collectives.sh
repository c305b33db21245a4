# Data-parallel groups on c10d's Gloo backend: 2 ranks join through rank 0's TCPStore from torchrun-style
# variables, from Slurm's, and under torchrun itself; all-reduce, broadcast and the any-flag agree;
# a rank that dies or hangs makes the other fail with a one-line error within the timeout; a malformed variable
# is a one-line error.
. "$(dirname "$0")/lib.sh"
check="$GM_BUILD/tests/programs/dist_check"
port=$((29600 + $$ % 300))
d=$(fresh dist_gloo); mkdir -p "$d"
expect_ranks() {  # FILE...: every rank printed every check
  for f in "$@"; do
    for what in "all-reduce ok" "broadcast ok" "any ok" "done"; do grep -q "$what" "$f" || fail "$f lacks '$what':"$'\n'"$(cat "$f")"; done
  done
}
for r in 0 1; do RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$check" > "$d/env$r.txt" 2>&1 & done
wait
expect_ranks "$d/env0.txt" "$d/env1.txt"
grep -q "rank 1 of 2 (torchrun, local 1)" "$d/env1.txt" || fail "rank 1 did not see its place: $(cat "$d/env1.txt")"
ok "2 ranks from RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT"
for r in 0 1; do SLURM_PROCID=$r SLURM_NTASKS=2 SLURM_LOCALID=$r SLURM_LAUNCH_NODE_IPADDR=127.0.0.1 SLURM_JOB_ID=$((port + 1)) \
  "$check" > "$d/slurm$r.txt" 2>&1 & done
wait
expect_ranks "$d/slurm0.txt" "$d/slurm1.txt"
grep -q "(slurm, local 0)" "$d/slurm0.txt" || fail "rank 0 did not see Slurm: $(cat "$d/slurm0.txt")"
ok "2 ranks from SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID"
[ -x "$torchrun" ] || fail "no torchrun at $torchrun (scripts/setup.sh installs it with torch)"
capture "$torchrun" --standalone --nproc_per_node 2 --redirects 1 --tee 1 --log_dir "$d/torchrun_logs" --no_python "$check"
expect_rc 0
[ "$(grep -c "all-reduce ok" <<<"$out")" -eq 2 ] || fail "torchrun: expected 2 ranks' all-reduce:"$'\n'"$out"
ok "2 ranks under torchrun --standalone"
start=$(date +%s)
for r in 0 1; do RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((port + 2)) \
  "$check" --die-at-step 3 --timeout-ms 5000 > "$d/die$r.txt" 2>&1 & pids[$r]=$!; done
set +e; wait "${pids[0]}"; rc0=$?; wait "${pids[1]}"; set -e
elapsed=$(( $(date +%s) - start ))
[ "$rc0" -eq 1 ] || fail "rank 0 exited $rc0 after rank 1 died, expected 1: $(cat "$d/die0.txt")"
grep -qE "^gm: rank 0: all-reduce failed \(another rank died or timed out\)" "$d/die0.txt" || fail "no clear error: $(cat "$d/die0.txt")"
[ "$(grep -c '^gm:' "$d/die0.txt")" -eq 1 ] || fail "expected one error line: $(cat "$d/die0.txt")"
[ "$elapsed" -lt 30 ] || fail "took $elapsed s to notice the dead rank"
ok "a dead rank ends the other with one line in $elapsed s"
start=$(date +%s)
for r in 0 1; do RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$((port + 3)) \
  "$check" --hang-at-step 3 --timeout-ms 3000 > "$d/hang$r.txt" 2>&1 & pids[$r]=$!; done
set +e; wait "${pids[0]}"; rc0=$?; set -e
elapsed=$(( $(date +%s) - start ))
kill "${pids[1]}" 2>/dev/null || true; wait "${pids[1]}" 2>/dev/null || true
[ "$rc0" -eq 1 ] || fail "rank 0 exited $rc0 beside a hung rank, expected 1: $(cat "$d/hang0.txt")"
grep -qE "^gm: rank 0: all-reduce failed" "$d/hang0.txt" || fail "no clear error: $(cat "$d/hang0.txt")"
[ "$elapsed" -lt 20 ] || fail "took $elapsed s to give up on a hung rank (timeout 3 s)"
ok "a hung rank ends the other with one line in $elapsed s (timeout 3 s)"
capture env RANK=x WORLD_SIZE=2 "$check"
expect_rc 2
expect_one_line
expect_match "$out" "environment variable RANK='x' is not an integer"
ok "a malformed RANK is a one-line error"
