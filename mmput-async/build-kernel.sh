#!/bin/bash
# Builds (or reuses) the x86_64 test kernel carrying process_mmput_async and
# prints the path of its bzImage on stdout; progress goes to stderr.
#
# Source: the linux-source-6.1 .deb that kernel-source.lock names (verified
# against its sha256; replaced from Debian's indexes, with one line saying
# so, when the registry no longer serves it). Cache: one directory per hash
# of patch + config fragment + this script + source .deb + compiler
# version, under $PVTD_KERNEL_CACHE (default /var/cache/pvteardown/kernel),
# outside the clone so fresh clones reuse it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${PVTD_KERNEL_CACHE:-/var/cache/pvteardown/kernel}
jobs=${PVTD_KERNEL_JOBS:-2}
patch_file=$here/process_mmput_async.patch
config=$here/kernel.config
need_pkgs="bc flex bison libelf-dev libssl-dev make gcc cpio xz-utils"

log() { echo "build-kernel: $*" >&2; }

missing=()
for p in $need_pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } ||
		{ log "cannot install ${missing[*]} (needs root and Debian bookworm's apt sources)"; exit 1; }
fi

. "$here/../scripts/locked-debs.sh"
src=$(locked_fetch "$here/kernel-source.lock" "$cache/debs") ||
	{ log "the kernel source could not be fetched (see above)"; exit 1; }
read -r _ _ src_version src_deb src_sha <<<"$src"
key=$( { cat "$patch_file" "$config" "$0"; echo "$src_version $src_sha"; gcc --version | head -1; } | sha256sum | cut -c1-16)
out=$cache/$key
if [[ -f $out/bzImage ]]; then
	log "cached: $out/bzImage"
	echo "$out/bzImage"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock-$key"
flock 9
if [[ -f $out/bzImage ]]; then	# another run built it while we waited
	echo "$out/bzImage"
	exit 0
fi

work=$cache/$key.build
rm -rf "$work"
mkdir -p "$work"
start=$(date +%s)
log "cold build $key (linux-source-6.1 $src_version, make -j$jobs, nice); log: $work/build.log"
dpkg-deb --fsys-tarfile "$cache/debs/$src_deb" | tar -xO ./usr/src/linux-source-6.1.tar.xz | tar -C "$work" -xJ
tree=$work/linux-source-6.1
patch -d "$tree" -p1 --fuzz=0 -s <"$patch_file"
(cd "$tree" && KCONFIG_ALLCONFIG="$config" make -s ARCH=x86_64 allnoconfig >&2)
lost=$(grep '^CONFIG_' "$config" | while read -r line; do grep -qxF "$line" "$tree/.config" || echo "$line"; done)
if [[ -n $lost ]]; then
	log "config lines dropped by kconfig (missing dependency?): $lost"
	exit 1
fi
if ! (cd "$tree" && nice -n 10 make -j"$jobs" ARCH=x86_64 bzImage) >"$work/build.log" 2>&1; then
	tail -30 "$work/build.log" >&2
	log "kernel build failed; full log: $work/build.log"
	exit 1
fi
secs=$(($(date +%s) - start))
mkdir -p "$out.tmp"
cp "$tree/arch/x86/boot/bzImage" "$tree/.config" "$out.tmp/"
printf 'source linux-source-6.1 %s\nbuild_seconds %s\njobs %s\nbuilt %s\n' \
	"$src_version" "$secs" "$jobs" "$(date -u +%FT%TZ)" >"$out.tmp/info"
rm -rf "$out"
mv "$out.tmp" "$out"
rm -rf "$work"
log "built in ${secs}s: $out/bzImage"
echo "$out/bzImage"
