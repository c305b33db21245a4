# A run folder is locked while a process works in it: a second process on it (a requeued job whose old one is
# still alive) is refused in one line naming the first one's pid, and writes nothing; the lock dies with its
# process, even by SIGKILL.
. "$(dirname "$0")/lib.sh"
w=$(fresh locked)
"$flow_2d" --config "$small" --training.steps=100000 --optim.warmup=5 --workdir "$w" >/dev/null 2>&1 &
first=$!
for _ in $(seq 1 300); do [ -s "$w/history.csv" ] && break; sleep 0.1; done
[ -s "$w/history.csv" ] || { kill -9 "$first"; fail "the first run did not start"; }
capture "$flow_2d" --config "$small" --training.steps=100000 --optim.warmup=5 --workdir "$w"
expect_rc 2
expect_one_line
expect_match "$out" "run folder $w in use by pid $first"
[ "$(grep -c "steps on cpu" "$w/log.txt")" -eq 1 ] || fail "the refused process logged into log.txt"
capture "$flow_2d" --workdir "$w" --mode=sample
expect_rc 2
expect_match "$out" "in use by pid $first"
kill -9 "$first"
wait "$first" 2>/dev/null || true
capture "$flow_2d" --workdir "$w" --training.steps=5
expect_rc 0
ok "a second process on a run folder refused with the first one's pid; the lock dies with it"
