#!/usr/bin/env bash
# Submit a sweep as one Slurm array job: one array task per line of overrides.
#
#   scripts/slurm/sweep.sh configs/flow_2d.toml sweeps/flow_2d.txt [SBATCH OPTIONS...]
#
# Each non-blank, non-# line of the sweep file is one run's overrides, `key=value` pairs separated by
# spaces (the command line's --key=value without the dashes).  The run's folder is named after them,
# Hydra-style: <root>/training.lr=1e-3,model.hidden=128/, with root runs/sweeps/<sweep file name> (or
# $GM_SWEEP_ROOT).  The binary is build/examples/<config name> (or $GM_BINARY).  Every line is checked
# first (`--mode=check`: keys, values, data, model; nothing written), so a typo fails here, not in the
# queue.  Each task is scripts/slurm/train.sbatch: it checkpoints and requeues itself on pre-emption.  The
# same sweep submitted again resumes its runs' folders.  SBATCH OPTIONS go to sbatch (e.g. --ntasks-per-node=1,
# --array=0-7%2 to run at most 2 at a time; sbatch's own --array wins over the one given here).
set -euo pipefail
usage() { echo "usage: scripts/slurm/sweep.sh CONFIG SWEEP_FILE [SBATCH OPTIONS...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
config=$1 sweep=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$config" ] || { echo "sweep.sh: config $config: no such file" >&2; exit 2; }
[ -f "$sweep" ] || { echo "sweep.sh: sweep file $sweep: no such file" >&2; exit 2; }
name=$(basename "$config" .toml)
binary=${GM_BINARY:-build/examples/$name}
[ -x "$binary" ] && [ -f "$binary" ] || { echo "sweep.sh: $binary: not an executable file (build it, or set GM_BINARY)" >&2; exit 2; }
root=${GM_SWEEP_ROOT:-runs/sweeps/$(basename "$sweep" | sed 's/\.[^.]*$//')}
command -v sbatch > /dev/null || { echo "sweep.sh: sbatch not found (is this a Slurm login node?)" >&2; exit 2; }

tasks="$root/tasks.txt"
lines=()
names=()
n=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1))
  line=$(sed 's/#.*//; s/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$line")
  [ -n "$line" ] || continue
  args=()
  parts=()
  for kv in $line; do
    [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_.]*=.+$ ]] || { echo "sweep.sh: $sweep:$n: '$kv' is not key=value" >&2; exit 2; }
    case "${kv%%=*}" in workdir|mode|config) echo "sweep.sh: $sweep:$n: ${kv%%=*} is set by the sweep" >&2; exit 2 ;; esac
    args+=("--$kv")
    parts+=("$(tr -c 'A-Za-z0-9._=+-' '_' <<<"$kv" | sed 's/_$//')")
  done
  dir=$(IFS=,; echo "${parts[*]}")
  for other in "${names[@]+"${names[@]}"}"; do
    [ "$other" != "$dir" ] || { echo "sweep.sh: $sweep:$n: the same overrides as an earlier line ($dir)" >&2; exit 2; }
  done
  if ! check=$("$binary" --config "$config" "${args[@]}" --mode=check --workdir "$root/$dir" 2>&1); then
    echo "sweep.sh: $sweep:$n: $(tail -1 <<<"$check")" >&2
    exit 2
  fi
  names+=("$dir")
  lines+=("$(printf '%q ' "$binary" --config "$config" "${args[@]}" --workdir="$root/$dir")")
done < "$sweep"
count=${#lines[@]}
[ "$count" -gt 0 ] || { echo "sweep.sh: $sweep has no runs" >&2; exit 2; }
# Submitted again, the same sweep resumes its runs; another sweep in the same folder is refused.
if [ -e "$tasks" ] && ! cmp -s "$tasks" <(printf '%s\n' "${lines[@]}"); then
  echo "sweep.sh: $tasks holds another sweep; set GM_SWEEP_ROOT to a new folder" >&2
  exit 2
fi
mkdir -p "$root"
printf '%s\n' "${lines[@]}" > "$tasks.tmp" && mv "$tasks.tmp" "$tasks"
job=$(sbatch --parsable --array="0-$((count - 1))" --job-name="gm-$name" --output="$root/slurm-%A_%a.out" \
  --export=ALL,GM_TASKS="$(realpath "$tasks")" "$@" "$here/train.sbatch")
echo "sweep.sh: submitted array job ${job%%;*} with $count tasks; runs in $root/:"
printf '  %s\n' "${names[@]}"
