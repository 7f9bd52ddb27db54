#!/bin/bash
# Installs the host tools the s390x stage needs, only those that are missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# command -> Debian package providing it
declare -A need=(
  [qemu-system-s390x]=qemu-system-misc
  [s390x-linux-gnu-gcc]=gcc-s390x-linux-gnu
  [cpio]=cpio
  [xz]=xz-utils
  [make]=make
  [timeout]=coreutils
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${need[$cmd]}")
done
# The cross libc headers are no command; dpkg knows whether they are there.
dpkg-query -W -f='${Status}' libc6-dev-s390x-cross 2>/dev/null | grep -q 'ok installed' \
  || missing+=(libc6-dev-s390x-cross)
[ ${#missing[@]} -eq 0 ] && exit 0

[ "$(id -u)" -eq 0 ] || die "host packages missing (${missing[*]}); run as root or install them"
say "installing host packages: ${missing[*]}"
# Other sessions may hold the dpkg lock; wait for it rather than fail.
apt_wait=(-o DPkg::Lock::Timeout=600)
# A stale list makes install fail with 404s; refresh only when install cannot find a package.
if ! DEBIAN_FRONTEND=noninteractive apt-get "${apt_wait[@]}" install -y --no-install-recommends "${missing[@]}" >&2; then
  apt-get "${apt_wait[@]}" update >&2
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_wait[@]}" install -y --no-install-recommends "${missing[@]}" >&2
fi
