#!/bin/bash
# Boots the s390x kernel under TCG with the given initrd, streams the console, and turns the
# guest's markers into the stage's verdict. Usage: boot.sh INITRD
# Env: PVTD_S390X_TIMEOUT (s, host side, default 1200: the guest needs ~10-13 minutes), PVTD_S390X_MEM (MiB, default 2048),
#      PVTD_S390X_SMP (default 2: with one vCPU the process timing a kill competes with the
#      helper tearing down, and the shim's kill-to-exit ratio collapses), PVTD_S390X_APPEND (extra)
set -uo pipefail
. "$(dirname "$0")/lib.sh"

initrd=${1:?usage: boot.sh INITRD}
host_timeout=${PVTD_S390X_TIMEOUT:-1200}
# The guest stops node earlier so the summary still reaches the console.
guest_timeout=$(( host_timeout > 120 ? host_timeout - 60 : host_timeout ))
log=$PVTD_S390X_BUILD/console.log
mkdir -p "$PVTD_S390X_BUILD"

say "booting qemu-system-s390x (TCG, timeout ${host_timeout}s, log $log)"
start=$(date +%s)
# QEMU exits 0 on power-off and, without -action panic=exit-failure, on a guest panic too.
timeout -k 10 "$host_timeout" "${PVTD_S390X_QEMU:-qemu-system-s390x}" ${PVTD_S390X_QEMU_DATA:+-L "$PVTD_S390X_QEMU_DATA"} -M s390-ccw-virtio -accel "tcg${PVTD_S390X_TCG:+,$PVTD_S390X_TCG}" -cpu "${PVTD_S390X_CPU:-max}" \
  -smp "${PVTD_S390X_SMP:-2}" -m "${PVTD_S390X_MEM:-2048}" -nographic -no-reboot \
  -action panic=exit-failure -kernel "$PVTD_S390X_CACHE/vmlinuz" -initrd "$initrd" \
  -append "console=ttysclp0 quiet nokaslr panic=-1 pvtd.timeout=$guest_timeout ${PVTD_S390X_APPEND:-}" \
  </dev/null 2>&1 | tr -d '\r' | tee "$log"
qemu_rc=${PIPESTATUS[0]}
secs=$(( $(date +%s) - start ))

result=$(sed -n 's/^PVTD-S390X-RESULT rc=\([0-9]*\).*/\1/p' "$log" | tail -1)
# node:test's closing summary: spec prints "ℹ pass 3", tap "# pass 3", both at column 0.
count() { sed -n "s/^\(ℹ\|#\) $1 \([0-9][0-9]*\)\$/\2/p" "$log" | tail -1; }
tests=$(count tests); pass=$(count pass); fail=$(count fail)
skipped=$(count skipped); cancelled=$(count cancelled); todo=$(count todo)

echo
echo "s390x: tests ${tests:-?}, pass ${pass:-?}, fail ${fail:-?}, cancelled ${cancelled:-?}, skipped ${skipped:-?}, todo ${todo:-?} (guest ${secs}s)"
echo "s390x: ${pass:-0} passed, ${fail:-?} failed"
why=
if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then why="host timeout after ${host_timeout}s"
elif [ "$qemu_rc" -ne 0 ]; then why="qemu exited $qemu_rc (guest panic or emulator failure)"
elif [ -z "$result" ]; then why="no PVTD-S390X-RESULT marker on the console"
elif [ -z "$tests" ]; then why="no test counts (node:test summary missing)"
elif [ "$result" -ne 0 ]; then why="guest test process exited $result"
elif [ "$fail" != 0 ] || [ "$cancelled" != 0 ]; then why="$fail failed, $cancelled cancelled"
elif [ "$tests" -eq 0 ]; then why="no tests ran"
fi
if [ -n "$why" ]; then
  echo "s390x: FAILED: $why"
  exit 1
fi
echo "s390x: OK"
