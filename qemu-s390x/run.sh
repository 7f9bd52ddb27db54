#!/bin/bash
# The s390x stage (npm run test:s390x): host tools, cached Debian s390x guest, this checkout
# cross-built, one boot of a real s390x kernel under QEMU TCG running the tests on pure cgroup v2.
# Exits non-zero on any test failure, guest panic, missing result marker or timeout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

t0=$(date +%s)
step() { say "$1 done in $(( $(date +%s) - t0 ))s"; }
"$PVTD_S390X_DIR/host-packages.sh"; step "host packages"
"$PVTD_S390X_DIR/fetch-guest.sh"; step "guest packages"
if [ -z "${PVTD_S390X_QEMU:-}" ]; then
  read -r PVTD_S390X_QEMU PVTD_S390X_QEMU_DATA modules < <("$PVTD_S390X_DIR/fetch-qemu.sh")
  export PVTD_S390X_QEMU PVTD_S390X_QEMU_DATA
  [ -z "$modules" ] || export QEMU_MODULE_DIR=$modules
fi
step "qemu ($("$PVTD_S390X_QEMU" --version | head -1))"
mkdir -p "$PVTD_S390X_BUILD"
"$PVTD_S390X_DIR/build-payload.sh"; step "payload"
# The uncompressed payload goes first: the kernel wants each cpio header 4-byte aligned, and
# GNU cpio pads to 512 while a gzip member ends anywhere.
cat "$PVTD_S390X_BUILD/payload.cpio" "$PVTD_S390X_CACHE/base.cpio.gz" >"$PVTD_S390X_BUILD/initrd"
rc=0
"$PVTD_S390X_DIR/boot.sh" "$PVTD_S390X_BUILD/initrd" || rc=$?
say "stage total $(( $(date +%s) - t0 ))s (guest: $(cat "$PVTD_S390X_CACHE/versions"))"
exit "$rc"
