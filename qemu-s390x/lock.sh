#!/bin/bash
# Rewrites the locks of every download the test stages make, from what the registries serve
# today: each file named is downloaded and hashed here, so a lock never names a file that was not
# served when it was written. Usage: qemu-s390x/lock.sh [guest|qemu|kernel-source]... (default: all)
#   qemu-s390x/guest.lock          the s390x guest: Debian debs and Node (npm's node-linux-s390x)
#   qemu-s390x/qemu.lock           qemu-system-s390x >= 10 for hosts whose own QEMU is older
#   mmput-async/kernel-source.lock Debian's linux-source-6.1 for the process_mmput_async kernel
# The guest is bookworm: its s390x pool is served whole, while trixie's lacks many point-release
# files its index lists. Node comes from npm (immutable, integrity-checked), so the guest needs no
# Debian Node and no newer libc. trixie is the fallback for a package bookworm stops serving.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$PVTD_ROOT/scripts/locked-debs.sh"

node_pkg=node-linux-s390x@20.11.0

# closure RELEASE ARCH PKG...: the Depends/Pre-Depends closure (no Recommends) of PKG... in RELEASE.
closure() {
  local release=$1 arch=$2; shift 2
  LOCK_APT_TOOL=apt-cache lock_apt "$release" "$arch" depends --recurse --no-recommends --no-suggests \
    --no-conflicts --no-breaks --no-replaces --no-enhances "$@" | grep -v '^ ' | grep -v '^<' | sort -u
}

# entry RELEASES ARCH DEST PKG [via:META]: one deb line for the newest served file of PKG.
entry() {
  local releases=$1 arch=$2 dest=$3 pkg=$4 via=${5:-} out
  if [ -n "$via" ]; then
    pkg=$(lock_metapackage_target "${releases%% *}" "$arch" "${via#via:}")
    [ -n "$pkg" ] || die "lock: no package behind ${via#via:} in ${releases%% *}"
  fi
  out=$(lock_resolve "$releases" "$arch" "$pkg" "${via#via:}" "$dest") \
    || die "lock: no served file for $pkg ($arch) in $releases; tried${out#none}"
  read -r _ suite p v f sha <<<"$out"
  echo "deb $suite $arch $p $v $f $sha${via:+ $via}"
}

header() {
  echo "# Written by qemu-s390x/lock.sh on $(date -u +%F) from what the registries served; do not edit by hand."
  echo "# $1"
  echo "releases $2"
}

lock_guest() {
  local out=$PVTD_S390X_DIR/guest.lock dest=$PVTD_S390X_CACHE/debs releases="bookworm trixie" p tgz
  mkdir -p "$dest"
  {
    header "The s390x test guest: busybox and shells with their closure, setpriv, the kernel, Node." "$releases"
    # dash and bash: tests drive real, dynamically linked shells. libstdc++6 for Node.
    for p in $(closure bookworm s390x busybox-static dash bash libstdc++6 libgcc-s1 libc6); do
      entry "$releases" s390x "$dest" "$p"
    done
    # util-linux's setpriv (busybox's has no --reuid), without util-linux's own closure (PAM, debconf).
    entry "$releases" s390x "$dest" util-linux
    entry "$releases" s390x "$dest" libcap-ng0
    entry "$releases" s390x "$dest" linux-image-s390x via:linux-image-s390x
    tgz=$(cd "$dest" && npm pack --silent "$node_pkg" | tail -1)
    [ -s "$dest/$tgz" ] || die "lock: npm pack $node_pkg gave no tarball"
    echo "npm - - ${node_pkg%@*} ${node_pkg#*@} $tgz $(lock_sha512_integrity "$dest/$tgz")"
  } >"$out.new"
  mv "$out.new" "$out"
  say "wrote $out ($(grep -c '^deb\|^npm' "$out") entries)"
}

lock_qemu() {
  local out=$PVTD_S390X_DIR/qemu.lock arch releases p
  arch=$(dpkg --print-architecture)
  releases="bookworm-backports"
  mkdir -p "$PVTD_S390X_CACHE/qemu/debs"
  {
    header "qemu-system-s390x 10 for a Debian 12 host (its own 7.2 crashes Node under TCG); libraries from the host's qemu-system-misc." "$releases"
    for p in qemu-system-s390x qemu-system-data qemu-system-common; do
      entry "$releases" "$arch" "$PVTD_S390X_CACHE/qemu/debs" "$p"
    done
  } >"$out.new"
  [ "$(awk '$1 == "deb" {print $5}' "$out.new" | sort -u | wc -l)" = 1 ] \
    || die "lock: the qemu packages resolved to different versions: $(awk '$1 == "deb" {print $4 "=" $5}' "$out.new" | tr '\n' ' ')"
  mv "$out.new" "$out"
  say "wrote $out"
}

lock_kernel_source() {
  local out=$PVTD_ROOT/mmput-async/kernel-source.lock dest=${PVTD_KERNEL_CACHE:-/var/cache/pvteardown/kernel}/debs
  mkdir -p "$dest"
  {
    header "Debian's linux-source-6.1 for the process_mmput_async test kernel (the patch must apply with --fuzz=0)." "bookworm"
    entry bookworm all "$dest" linux-source-6.1
  } >"$out.new"
  mv "$out.new" "$out"
  say "wrote $out"
}

(($#)) || set -- guest qemu kernel-source
for what in "$@"; do
  case $what in
    guest) lock_guest ;;
    qemu) lock_qemu ;;
    kernel-source) lock_kernel_source ;;
    *) die "lock.sh: unknown lock '$what' (valid: guest, qemu, kernel-source)" ;;
  esac
done
