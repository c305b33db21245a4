#!/usr/bin/env bash
# Start N data-parallel processes of a gm binary on this machine under torchrun (torch.distributed's
# launcher, from the torch in scripts/setup.sh's environment, .venv), which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
# MASTER_PORT for each; gm reads them (gm::dist::environment).
#
#   scripts/launch.sh --nproc 2 build/examples/flow_2d --config configs/flow_2d.toml
#
# torchrun's per-rank logs (--redirects/--tee/--log_dir) let this wrapper report each rank's exit; it passes
# underscore flags, which torchrun 1.13 needs and 2.x still takes.  Per-rank logs go to $GM_LAUNCH_LOGS (default: a fresh temporary folder); every rank's
# output is also shown here, prefixed with its rank.  The exit code is the ranks': 0, 75 when a signal
# stopped them with a checkpoint saved (gm::exit_code::requeue), else the first failing rank's code, with
# one line instead of torchrun's traceback.
set -euo pipefail
usage() { echo "usage: scripts/launch.sh --nproc N BINARY [ARGS...]" >&2; exit 2; }
nproc=""
case "${1:-}" in
  --nproc) [ $# -ge 2 ] || usage; nproc=$2; shift 2 ;;
  --nproc=*) nproc=${1#--nproc=}; shift ;;
  *) usage ;;
esac
[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || { echo "launch.sh: --nproc '$nproc' is not a positive number" >&2; exit 2; }
[ $# -ge 1 ] || usage
binary=$1; shift
[ -x "$binary" ] && [ -f "$binary" ] || { echo "launch.sh: $binary: not an executable file" >&2; exit 2; }
# torchrun: GM_TORCHRUN, else the one beside scripts/setup.sh's Python (.venv), else the PATH's.
torchrun=${GM_TORCHRUN:-$(dirname "$0")/../.venv/bin/torchrun}
[ -x "$torchrun" ] || torchrun=$(command -v torchrun || true)
[ -n "$torchrun" ] || { echo "launch.sh: torchrun not found (scripts/setup.sh installs it into .venv)" >&2; exit 2; }
logs=${GM_LAUNCH_LOGS:-$(mktemp -d -t gm_launch.XXXXXX)}
mkdir -p "$logs"
# torchrun would set OMP_NUM_THREADS=1 itself, with a banner; gm sets its own threads (training.threads).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# torchrun reports a rank's non-zero exit with a Python traceback and a table on stderr.  Keep the ranks'
# own lines, drop the launcher's traceback, and keep "rank code" pairs from its table in $logs/exit_codes.
codes="$logs/exit_codes"
: > "$codes"
filter() {
  trap '' INT TERM  # Ctrl-C reaches torchrun and the ranks; this filter lives on to report them
  awk -v codes="$codes" '
    /^W[0-9][0-9][0-9][0-9] [0-9:.]+ +[0-9]+ .*torch\/distributed\// { next }  # 2.x: glog-style launcher warnings
    /^ERROR:torch\.distributed\.elastic/ || /^E[0-9][0-9][0-9][0-9] [0-9:.]+ +[0-9]+ .*torch\/distributed\/elastic/ ||
    /^Traceback \(most recent call last\):/ { quiet = 1 }
    quiet && $1 == "rank" && $2 == ":" { rank = $3 }
    quiet && $1 == "exitcode" && $2 == ":" { print rank, $3 >> codes }
    quiet { if (NF) last = $0; next }
    { print; fflush() }
    END { if (quiet) print "last", last >> codes }'
}
set +e
{ "$torchrun" --standalone --nproc_per_node "$nproc" --redirects 1 --tee 1 --log_dir "$logs" --no_python "$binary" "$@" \
    2>&1 1>&3 3>&- | filter >&2; } 3>&1
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] && exit 0
# Every rank stopped by a signal (on a rank, or torchrun's SIGTERM to them all) with its checkpoint saved.
stopped=$( (grep -lsE '^stopped .* checkpoint saved$' "$logs"/*/attempt_*/*/stdout.log || true) | wc -l)
if [ "$stopped" -eq "$nproc" ]; then
  echo "launch.sh: stopped by a signal with a checkpoint saved (exit code 75): run the same command again to continue" >&2
  exit 75
fi
if read -r rank code < <(awk '$1 != "last" && $2 != 75 { print; exit }' "$codes") && [ -n "$code" ]; then
  [ "$code" -lt 0 ] && code=$((128 - code))  # killed by signal -code
  echo "launch.sh: rank $rank exited with code $code (per-rank logs in $logs)" >&2
  exit "$code"
fi
echo "launch.sh: torchrun failed (exit code $rc): $(awk '$1 == "last" { $1 = ""; print substr($0, 2) }' "$codes")" >&2
exit "$rc"
