#!/bin/bash
# Fetches the guest's Debian s390x packages with an apt state of its own (the host's dpkg
# database is never read nor written) and builds the cached parts of the guest:
#   $CACHE/vmlinuz            the s390x kernel
#   $CACHE/base.cpio.gz       busybox-static + nodejs with its Depends closure, /dev/console
# Prints nothing on stdout; both files are rebuilt only when the package set changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

apt_dir=$PVTD_S390X_CACHE/apt
debs=$PVTD_S390X_CACHE/debs
mkdir -p "$apt_dir"/{lists/partial,cache/archives/partial,etc/sources.list.d,etc/preferences.d} "$debs"
: >"$apt_dir/status"
cat >"$apt_dir/etc/sources.list" <<SRC
deb [arch=s390x signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $PVTD_S390X_MIRROR $PVTD_S390X_SUITE main
SRC
apt_opts=(
  -o APT::Architecture=s390x -o APT::Architectures=s390x
  -o Dir::Etc::SourceList="$apt_dir/etc/sources.list"
  -o Dir::Etc::SourceParts="$apt_dir/etc/sources.list.d"
  -o Dir::Etc::Preferences="$apt_dir/etc/preferences"
  -o Dir::Etc::PreferencesParts="$apt_dir/etc/preferences.d"
  -o Dir::State="$apt_dir" -o Dir::State::Lists="$apt_dir/lists"
  -o Dir::State::status="$apt_dir/status"
  -o Dir::Cache="$apt_dir/cache" -o Debug::NoLocking=1
  -o APT::Sandbox::User=root
)
aptq() { apt-get -qq "${apt_opts[@]}" "$@"; }
acache() { apt-cache "${apt_opts[@]}" "$@"; }

# Lists older than a week are refreshed: the mirror drops superseded .debs.
if [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*Packages*' -mtime -7 -print -quit)" ]; then
  say "apt update ($PVTD_S390X_SUITE s390x, separate state in $apt_dir)"
  aptq update >&2
fi

# Node's Depends/Pre-Depends closure; Recommends are not needed to run it.
closure() {
  acache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$@" | grep -v '^ ' | grep -v '^<' | sort -u
}
# dash and bash: tests drive real, dynamically linked shells (a distribution's kvm wrapper is a
# shell script, and LD_PRELOAD does nothing to the static busybox).
mapfile -t pkgs < <(closure nodejs busybox-static dash bash)
# util-linux's setpriv (busybox's has no --reuid), without util-linux's own closure (PAM, debconf).
pkgs+=(util-linux libcap-ng0)
# The metapackage's first dependency names the versioned image; its own Depends
# (initramfs-tools, kmod...) are for installed systems and are not wanted here.
kernel_pkg=$(acache depends linux-image-s390x | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$kernel_pkg" ] || die "no linux-image-*-s390x behind linux-image-s390x in $PVTD_S390X_SUITE"

node_ver=$(acache policy nodejs | awk '/Candidate:/{print $2}')
case $node_ver in 20.*|2[1-9].*) ;; *) die "nodejs in $PVTD_S390X_SUITE is '$node_ver'; need >= 20 (Debian 13 or newer)";; esac

# Download what is not cached yet; apt-get download verifies the hashes.
mapfile -t uris < <(aptq download --print-uris "${pkgs[@]}" "$kernel_pkg")
want=()
for line in "${uris[@]}"; do
  f=$(awk '{print $2}' <<<"$line")
  [ -s "$debs/$f" ] || want+=("$(awk '{print $2}' <<<"$line" | cut -d_ -f1)")
done
if [ ${#want[@]} -gt 0 ]; then
  say "downloading ${#want[@]} s390x packages"
  (cd "$debs" && aptq download "${want[@]}" >&2)
fi
files=()
for line in "${uris[@]}"; do files+=("$(awk '{print $2}' <<<"$line")"); done
key=$(printf '%s\n' "${files[@]}" | sort | sha256sum | cut -c1-16)

if [ "$(cat "$PVTD_S390X_CACHE/base.key" 2>/dev/null)" = "$key" ] \
   && [ -s "$PVTD_S390X_CACHE/base.cpio.gz" ] && [ -s "$PVTD_S390X_CACHE/vmlinuz" ]; then
  exit 0
fi

say "assembling base initramfs (${#files[@]} packages, key $key)"
tmp=$(mktemp -d "$PVTD_S390X_CACHE/rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root"/usr/{bin,sbin,lib} "$root"/{proc,sys,dev,tmp,run,root,etc}
# Debian 13 is merged-/usr: the top-level dirs are links, made before unpacking.
for d in bin sbin lib; do ln -s usr/$d "$root/$d"; done
for f in "${files[@]}"; do
  case $f in
    "$kernel_pkg"_*)
      dpkg-deb --fsys-tarfile "$debs/$f" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
      ;;
    util-linux_*) dpkg-deb --fsys-tarfile "$debs/$f" | tar -x -C "$root" ./usr/bin/setpriv ;;
    *) dpkg-deb -x "$debs/$f" "$root" ;;
  esac
done
# s390x's loader path is /lib/ld64.so.1; the link above must keep pointing into usr/.
[ -L "$root/lib" ] || die "a package replaced the /lib link; merged-/usr assumption broken"
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
echo "$node_ver $kernel_pkg" >"$PVTD_S390X_CACHE/versions"
echo "$key" >"$PVTD_S390X_CACHE/base.key"
