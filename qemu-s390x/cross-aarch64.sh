#!/bin/bash
# CI check that native/ cross-compiles cleanly (-Werror is in native/Makefile) for aarch64.
# Installs gcc-aarch64-linux-gnu if missing; exits non-zero on any warning or error, or when the
# shim lacks the BTI property note.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if ! command -v aarch64-linux-gnu-gcc >/dev/null \
   || ! dpkg-query -W -f='${Status}' libc6-dev-arm64-cross 2>/dev/null | grep -q 'ok installed'; then
  [ "$(id -u)" -eq 0 ] || die "aarch64-linux-gnu-gcc missing; run as root or install gcc-aarch64-linux-gnu"
  say "installing gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross >&2
fi
# A fresh build every time: a stale object would hide a new warning.
make -s -C "$PVTD_ROOT/native" BUILD=build/aarch64 clean
make -C "$PVTD_ROOT/native" CC=aarch64-linux-gnu-gcc BUILD=build/aarch64
for f in libpvteardown-shim.so pvteardown-helper pvteardown-fakeguest; do
  aarch64-linux-gnu-readelf -h "$PVTD_ROOT/native/build/aarch64/$f" | grep -q 'Machine:.*AArch64' \
    || die "native/build/aarch64/$f is not an aarch64 ELF"
done
# One object without BTI's property note turns BTI off for the whole process that loads the shim.
notes="$(aarch64-linux-gnu-readelf -n "$PVTD_ROOT/native/build/aarch64/libpvteardown-shim.so")"
grep -q 'AArch64 feature:.*BTI' <<<"$notes" \
  || die "native/build/aarch64/libpvteardown-shim.so lacks the BTI property note; readelf -n says: $notes"
say "native/ cross-compiles cleanly for aarch64; the shim keeps BTI"
