#!/bin/bash
# Fetches exactly the files qemu-s390x/guest.lock names, each verified against its hash (a file
# the registry no longer serves is replaced from the suite indexes, with one line saying so), and
# builds the cached parts of the guest:
#   $CACHE/vmlinuz            the s390x kernel
#   $CACHE/base.cpio.gz       busybox-static, shells, setpriv, Node with its libraries, /dev/console
# Prints nothing on stdout; both files are rebuilt only when the effective set of files changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$PVTD_ROOT/scripts/locked-debs.sh"

debs=$PVTD_S390X_CACHE/debs
mapfile -t set < <(locked_fetch "$PVTD_S390X_DIR/guest.lock" "$debs"; echo "rc $?")
[ "${set[-1]}" = "rc 0" ] || die "the guest's inputs could not be fetched (see above)"
unset 'set[-1]'
# The key is the effective set: a changed lock (or a replacement) rebuilds, an unchanged one is reused.
key=$(printf '%s\n' "${set[@]}" "$(sha256sum "$0" | cut -c1-16)" | sha256sum | cut -c1-16)
if [ "$(cat "$PVTD_S390X_CACHE/base.key" 2>/dev/null)" = "$key" ] \
   && [ -s "$PVTD_S390X_CACHE/base.cpio.gz" ] && [ -s "$PVTD_S390X_CACHE/vmlinuz" ]; then
  exit 0
fi

say "assembling base initramfs (${#set[@]} files, key $key)"
tmp=$(mktemp -d "$PVTD_S390X_CACHE/rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root"/usr/{bin,sbin,lib} "$root"/{proc,sys,dev,tmp,run,root,etc}
# Merged /usr, as a Debian installation has it: bookworm's packages still ship /bin and /lib, and
# s390x's loader is /lib/ld64.so.1. tar must keep these links (--keep-directory-symlink).
for d in bin sbin lib; do ln -s usr/$d "$root/$d"; done
node_ver= kernel=
for line in "${set[@]}"; do
  read -r kind pkg ver file _ <<<"$line"
  case $kind:$pkg in
    npm:node-linux-s390x)
      tar -xzf "$debs/$file" -C "$tmp" package/bin/node
      # The official build carries its debug info (~100 MB); the guest loads it from a RAM disk.
      s390x-linux-gnu-strip -o "$root/usr/bin/node" "$tmp/package/bin/node"
      node_ver=$ver
      ;;
    deb:linux-image-*)
      dpkg-deb --fsys-tarfile "$debs/$file" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
      kernel="$pkg $ver"
      ;;
    deb:util-linux) dpkg-deb --fsys-tarfile "$debs/$file" | tar -x -C "$root" --keep-directory-symlink ./usr/bin/setpriv ;;
    deb:*) dpkg-deb --fsys-tarfile "$debs/$file" | tar -x -C "$root" --keep-directory-symlink ;;
    *) die "guest.lock: no use for $kind $pkg" ;;
  esac
done
[ -n "$node_ver" ] || die "guest.lock names no node-linux-s390x"
[ -n "$kernel" ] || die "guest.lock names no linux-image"
for d in bin sbin lib; do [ -L "$root/$d" ] || die "a package replaced the /$d link; merged-/usr assumption broken"; done
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,bug} "$root"/usr/include
# Debian's /bin/sh; dash's postinst would make this link.
ln -sf dash "$root/usr/bin/sh"
# The kernel opens /dev/console before init runs, so the node must be in the archive.
mknod -m 600 "$root/dev/console" c 5 1
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
(cd "$root" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$tmp/base.cpio.gz"
mv "$tmp/base.cpio.gz" "$PVTD_S390X_CACHE/base.cpio.gz"
mv "$tmp"/boot/vmlinuz-* "$PVTD_S390X_CACHE/vmlinuz"
echo "node $node_ver, $kernel" >"$PVTD_S390X_CACHE/versions"
echo "$key" >"$PVTD_S390X_CACHE/base.key"
