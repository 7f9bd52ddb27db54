#!/bin/bash
# For an IBM Z operator on a host with Secure Execution: how long one SE guest takes from SIGKILL
# to QEMU's exit, and until its memory is back, with nothing, with QEMU's own async teardown, with
# pvteardown's helper holding the mm only, and with the helper holding the KVM VM as well. This
# project has no Secure Execution hardware: these numbers have never been measured by it.
#
#   bench/secure-execution.sh [--reps N] [--boot-seconds S] [--modes a,b,...] -- QEMU-COMMAND...
#
# QEMU-COMMAND starts the SE guest in the foreground (e.g. qemu-system-s390x -machine
# s390-ccw-virtio,confidential-guest-support=pv0 -object s390-pv-guest,id=pv0 -m 64G -nographic
# -kernel se-image ...; the image prepared with genprotimg). Run as root from a checkout where
# `npm ci` has built native/ (or with pvteardown installed). Modes:
#   plain      QEMU as given
#   qemu-async QEMU with -run-with async-teardown=on (QEMU >= 8.1)
#   mm-only    under the shim with PVTEARDOWN_SHIM_KVM=off: the helper holds the mm, not the VM
#   pvteardown under the shim: the helper holds the mm and the VM, and exits in the kernel's order
# Each run sits in a cgroup v2 group of its own; "memory back" is when that group's memory.current
# falls below 2% of its peak. Prints a table; writes bench/results/secure-execution-<time>.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
reps=3 boot=60 modes=plain,qemu-async,mm-only,pvteardown
while (($#)); do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --boot-seconds) boot=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "secure-execution.sh: unknown argument '$1' (valid: --reps N, --boot-seconds S, --modes LIST, -- QEMU-COMMAND...)" >&2; exit 2 ;;
  esac
done
(($#)) || { echo "secure-execution.sh: no QEMU command after -- (see the header of $0)" >&2; exit 2; }
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "secure-execution.sh: --reps '$reps': expected a whole number from 1" >&2; exit 2; }
[[ $boot =~ ^[0-9]+$ ]] || { echo "secure-execution.sh: --boot-seconds '$boot': expected whole seconds" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "secure-execution.sh: needs root (cgroups, SIGKILL of the guest)" >&2; exit 1; }
[ -f /sys/fs/cgroup/cgroup.controllers ] || { echo "secure-execution.sh: needs a pure cgroup v2 host (/sys/fs/cgroup/cgroup.controllers)" >&2; exit 1; }
helper=$root/native/build/pvteardown-helper
[ -x "$helper" ] || helper=/usr/local/lib/pvteardown/current/native/build/pvteardown-helper
[ -x "$helper" ] || { echo "secure-execution.sh: no pvteardown-helper (run npm ci in $root)" >&2; exit 1; }
cli=(node "$root/dist/src/cli/main.js")
[ -f "$root/dist/src/cli/main.js" ] || cli=(pvteardown)

group=/sys/fs/cgroup/pvteardown-se-bench.$$
grep -qw memory /sys/fs/cgroup/cgroup.subtree_control || echo +memory >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p "$group"
trap 'rmdir "$group" 2>/dev/null || true' EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# run MODE: one boot, kill and wait; prints "KILL_TO_EXIT_MS MEMORY_BACK_MS PEAK_BYTES"
run() {
  local mode=$1; shift
  local cmd=("$@")
  case $mode in
    plain) ;;
    qemu-async) cmd+=(-run-with async-teardown=on) ;;
    mm-only) cmd=(env PVTEARDOWN_SHIM_KVM=off "${cli[@]}" exec -- "${cmd[@]}") ;;
    pvteardown) cmd=("${cli[@]}" exec -- "${cmd[@]}") ;;
    *) echo "secure-execution.sh: unknown mode '$mode' (valid: plain, qemu-async, mm-only, pvteardown)" >&2; exit 2 ;;
  esac
  sh -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$group" "${cmd[@]}" </dev/null >/dev/null 2>&1 &
  local launcher=$!
  sleep "$boot"
  # The guest's process: the launcher itself (exec'd), or under `pvteardown exec` its only child.
  local qemu=$launcher
  case $mode in mm-only|pvteardown) qemu=$(pgrep -P "$launcher" | head -1 || true) ;; esac
  [ -n "$qemu" ] || { echo "secure-execution.sh: $mode: the guest did not start (or ended within $boot s)" >&2; exit 1; }
  local peak
  peak=$(cat "$group/memory.current")
  local timing kill_ns exit_ns
  timing=$("$helper" wait --pid "$qemu" --kill --timeout-ms 3600000)
  kill_ns=$(sed 's/.*"killedAtNs":\([0-9]*\).*/\1/' <<<"$timing")
  exit_ns=$(sed 's/.*"exitedAtNs":\([0-9]*\).*/\1/' <<<"$timing")
  local t0
  t0=$(( kill_ns / 1000000 ))
  while (( $(cat "$group/memory.current") * 50 > peak )); do sleep 0.05; done
  local back
  back=$(( $(now_ms) - t0 ))
  wait "$launcher" 2>/dev/null || true
  while [ -n "$(cat "$group/cgroup.procs")" ]; do sleep 0.05; done
  echo "$(( (exit_ns - kill_ns) / 1000000 )) $back $peak"
}

mkdir -p "$root/bench/results"
out=$root/bench/results/secure-execution-$(date -u +%Y%m%dT%H%M%SZ).json
printf '%-11s %4s %16s %16s %12s\n' mode rep 'kill->exit ms' 'memory back ms' 'peak MiB'
json=()
IFS=, read -ra mode_list <<<"$modes"
for ((r = 1; r <= reps; r++)); do
  for mode in "${mode_list[@]}"; do
    read -r exit_ms back_ms peak < <(run "$mode" "$@")
    printf '%-11s %4d %16d %16d %12d\n' "$mode" "$r" "$exit_ms" "$back_ms" $(( peak / 1048576 ))
    json+=("{\"mode\":\"$mode\",\"rep\":$r,\"killToExitMs\":$exit_ms,\"memoryBackMs\":$back_ms,\"peakBytes\":$peak}")
  done
done
(IFS=,; echo "{\"host\":\"$(uname -r)\",\"command\":\"$(printf '%q ' "$@" | sed 's/["\\]/\\&/g')\",\"runs\":[${json[*]}]}") >"$out"
echo "written: $out"
