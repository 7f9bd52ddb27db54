# Shared settings for the s390x TCG stage; sourced, never run.
# Caches live outside the clone so fresh clones on the same machine stay warm.
PVTD_S390X_CACHE=${PVTD_S390X_CACHE:-/var/cache/pvteardown/s390x}
PVTD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PVTD_S390X_DIR=$PVTD_ROOT/qemu-s390x
# Per-run artefacts (project cpio, console log) stay in the ignored build folder.
PVTD_S390X_BUILD=${PVTD_S390X_BUILD:-$PVTD_S390X_DIR/build}
# Debian 13 is the first release with Node 20 on s390x; one suite keeps the guest's libc coherent.
PVTD_S390X_SUITE=${PVTD_S390X_SUITE:-trixie}
PVTD_S390X_MIRROR=${PVTD_S390X_MIRROR:-http://deb.debian.org/debian}

say() { printf '[s390x %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[s390x] error: %s\n' "$*" >&2; exit 1; }
