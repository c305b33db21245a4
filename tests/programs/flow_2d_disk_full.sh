# A full disk is one line and exit code 4, never an abort: on a 400 KB tmpfs the run fails while writing,
# leaves no partial temporary folder, and every checkpoint it committed is intact: the same run, copied to a
# roomy disk, resumes from the newest.  Needs a tmpfs mount: as root, or in a user namespace (unshare).
. "$(dirname "$0")/lib.sh"
w=$(fresh disk_full)
rm -rf "$w.copy" "$w.out" "$w.rc" "$w.mount_err"
mkdir -p "$w"
if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(unshare -rm); fi
script='mount -t tmpfs -o size=400k gmfull "$1" || exit 77
  "$2" --config "$3" --training.steps=100000 --training.checkpoint_every=50 --training.keep_checkpoints=1000 \
       --training.log_every=1000 --workdir "$1/run" >"$1.out" 2>&1
  echo $? >"$1.rc"
  cp -r "$1/run" "$1.copy"
  umount "$1"'
set +e
"${as_root[@]}" sh -c "$script" sh "$w" "$flow_2d" "$small" 2>"$w.mount_err"
mrc=$?
set -e
if [ "$mrc" -eq 77 ] || { [ "$mrc" -ne 0 ] && [ ! -f "$w.rc" ]; }; then
  echo "skipped: cannot mount a tmpfs here ($(cat "$w.mount_err"))"
  exit 0
fi
rc=$(cat "$w.rc")
out=$(cat "$w.out")
expect_rc 4
expect_match "$out" "gm: .*: no space left on device while (writing|appending)"
[ "$(grep -c '^gm: ' <<<"$out")" -eq 1 ] || fail "expected one error line"
grep -q 'terminate called\|Aborted\|c10::Error' <<<"$out" && fail "the failure reached the user as a crash: $out"
copy="$w.copy"
[ -z "$(ls -d "$copy"/checkpoints/.tmp_* 2>/dev/null)" ] || fail "a partial temporary folder was left: $(ls -a "$copy/checkpoints")"
n=$(ls -d "$copy"/checkpoints/step_* 2>/dev/null | wc -l)
[ "$n" -ge 1 ] || fail "no checkpoint was committed before the disk filled"
newest=$(ls -d "$copy"/checkpoints/step_* | sed 's/.*step_//' | sort -n | tail -1)
capture "$flow_2d" --config "$small" --training.steps=$((newest + 10)) --training.checkpoint_every=50 \
  --training.keep_checkpoints=1000 --training.log_every=1000 --workdir "$copy"
expect_rc 0
expect_match "$out" "resuming at step $newest"
echo "$(grep '^gm: ' "$w.out")"
ok "disk full: exit 4, one line, $n checkpoint(s) intact, resumed at step $newest"
