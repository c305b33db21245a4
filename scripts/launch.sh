#!/usr/bin/env bash
# Start N data-parallel processes of a gm binary on this machine under torchrun (torch.distributed's
# launcher, from Debian's python3-torch), which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
# MASTER_PORT for each; gm reads them (gm::dist::environment).
#
#   scripts/launch.sh --nproc 2 build/examples/flow_2d --config configs/flow_2d.toml
#
# Debian's torchrun 1.13 takes only underscore flags and, on Python 3.11, needs --redirects/--tee/--log_dir;
# this wraps them.  Per-rank logs go to $GM_LAUNCH_LOGS (default: a fresh temporary folder); every rank's
# output is also shown here, prefixed with its rank.
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
command -v torchrun > /dev/null || { echo "launch.sh: torchrun not found (apt-get install python3-torch)" >&2; exit 2; }
logs=${GM_LAUNCH_LOGS:-$(mktemp -d -t gm_launch.XXXXXX)}
mkdir -p "$logs"
exec torchrun --standalone --nproc_per_node "$nproc" --redirects 1 --tee 1 --log_dir "$logs" --no_python "$binary" "$@"
