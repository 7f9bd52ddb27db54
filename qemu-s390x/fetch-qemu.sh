#!/bin/bash
# Prints "BINARY DATADIR MODULEDIR" of the qemu-system-s390x to use (only BINARY for the host's own).
# QEMU 7.2 (Debian 12) runs the guest's Node 20 into SIGILL/SIGSEGV within minutes: V8 trips its
# own heap checks, with -smp 1, -smp 2 and thread=single alike; 10.0 does not. An older host QEMU
# is left alone: 10.0 from <codename>-backports is unpacked into the cache (separate apt state,
# the host's dpkg database untouched) and runs on the libraries qemu-system-misc brought in.
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
if [ ! -x "$bin" ]; then
  . /etc/os-release
  suite=${PVTD_S390X_QEMU_SUITE:-${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}-backports}
  arch=$(dpkg --print-architecture)
  say "host QEMU ${host_major:-?}.x is too old for Node under TCG; fetching qemu-system-s390x from $suite"
  apt_dir=$qdir/apt
  mkdir -p "$apt_dir"/{lists/partial,cache/archives/partial,etc/sources.list.d,etc/preferences.d} "$qdir/debs"
  : >"$apt_dir/status"
  echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $PVTD_S390X_MIRROR $suite main" \
    >"$apt_dir/etc/sources.list"
  opts=(
    -o APT::Architecture="$arch" -o APT::Architectures="$arch"
    -o Dir::Etc::SourceList="$apt_dir/etc/sources.list"
    -o Dir::Etc::SourceParts="$apt_dir/etc/sources.list.d"
    -o Dir::Etc::Preferences="$apt_dir/etc/preferences"
    -o Dir::Etc::PreferencesParts="$apt_dir/etc/preferences.d"
    -o Dir::State="$apt_dir" -o Dir::State::Lists="$apt_dir/lists" -o Dir::State::status="$apt_dir/status"
    -o Dir::Cache="$apt_dir/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root
  )
  apt-get -qq "${opts[@]}" update >&2
  ver=$(apt-cache "${opts[@]}" policy qemu-system-s390x | awk '/Candidate:/{print $2}')
  case $ver in ''|'(none)') die "no qemu-system-s390x in $suite; install QEMU >= $min_major.0 on the host";; esac
  (cd "$qdir/debs" && rm -f ./*.deb && apt-get -qq "${opts[@]}" download \
    qemu-system-s390x="$ver" qemu-system-data="$ver" qemu-system-common="$ver" >&2)
  tmp=$(mktemp -d "$qdir/root.XXXXXX")
  for f in "$qdir"/debs/*.deb; do dpkg-deb -x "$f" "$tmp"; done
  rm -rf "$qdir/root" && mv "$tmp" "$qdir/root"
fi
missing=$(ldd "$bin" | awk '/not found/{print $1}' | tr '\n' ' ')
[ -z "$missing" ] || die "$bin needs libraries the host lacks: $missing(install them, or QEMU >= $min_major.0)"
"$bin" --version >/dev/null || die "$bin does not run on this host"
# Its own module dir: the host's 7.2 modules (audio, opengl) would be probed and fail noisily.
echo "$bin $data $qdir/root/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/qemu"
