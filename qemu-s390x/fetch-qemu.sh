#!/bin/bash
# Prints "BINARY DATADIR MODULEDIR" of the qemu-system-s390x to use (only BINARY for the host's own).
# QEMU 7.2 (Debian 12) runs the guest's Node 20 into SIGILL/SIGSEGV within minutes: V8 trips its
# own heap checks, with -smp 1, -smp 2 and thread=single alike; 10.0 does not. An older host QEMU
# is left alone: the files qemu.lock names (bookworm-backports) are unpacked into the cache (the
# host's dpkg database untouched) and run on the libraries qemu-system-misc brought in.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

min_major=10
host_major=$(qemu-system-s390x --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p')
if [ "${host_major:-0}" -ge "$min_major" ]; then
  echo "$(command -v qemu-system-s390x) "
  exit 0
fi

qdir=$PVTD_S390X_CACHE/qemu
bin=$qdir/root/usr/bin/qemu-system-s390x
data=$qdir/root/usr/share/qemu
. "$PVTD_ROOT/scripts/locked-debs.sh"
mapfile -t set < <(locked_fetch "$PVTD_S390X_DIR/qemu.lock" "$qdir/debs"; echo "rc $?")
[ "${set[-1]}" = "rc 0" ] || die "QEMU >= $min_major.0 could not be fetched (see above); or install it on the host"
unset 'set[-1]'
key=$(printf '%s\n' "${set[@]}" | sha256sum | cut -c1-16)
if [ ! -x "$bin" ] || [ "$(cat "$qdir/root.key" 2>/dev/null)" != "$key" ]; then
  say "host QEMU ${host_major:-?}.x is too old for Node under TCG; unpacking $(awk '{print $2 "=" $3}' <<<"${set[0]}") from qemu.lock"
  tmp=$(mktemp -d "$qdir/root.XXXXXX")
  for line in "${set[@]}"; do read -r _ _ _ file _ <<<"$line"; dpkg-deb -x "$qdir/debs/$file" "$tmp"; done
  rm -rf "$qdir/root" && mv "$tmp" "$qdir/root"
  echo "$key" >"$qdir/root.key"
fi
missing=$(ldd "$bin" | awk '/not found/{print $1}' | tr '\n' ' ')
[ -z "$missing" ] || die "$bin needs libraries the host lacks: $missing(install them, or QEMU >= $min_major.0)"
# Its own module dir: the host's 7.2 modules (audio, opengl) would be probed and fail noisily.
modules=$qdir/root/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/qemu
QEMU_MODULE_DIR=$modules "$bin" --version >/dev/null || die "$bin does not run on this host"
echo "$bin $data $modules"
