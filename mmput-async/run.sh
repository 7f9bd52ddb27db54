#!/bin/bash
# Proves process_mmput_async on a kernel that carries it: builds or reuses
# the test kernel, packs the built project and a Node runtime into an
# initramfs, boots it under qemu-system-x86_64 with KVM, runs one guest-side
# command and prints `mmput-async: N passed, N failed`.
#
#   mmput-async/run.sh [--timeout SECS] [--mem MIB] [-- CMD ARGS...]
#
# CMD runs in the VM from /project (the repository's dist/, node_modules/,
# native/build/, mmput-async/build/) with PVTEARDOWN_MMPUT_ASYNC_NR set;
# default: mmput-async/guest.sh (pma-test, then the same proof through
# native/build's pvteardown-helper when built). PVTD_KERNEL=path boots that
# bzImage instead of building. Exits non-zero on any failed
# check, a kernel panic, a timeout or a missing result marker.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
timeout=900
mem=3072
while (($#)); do
	case $1 in
	--timeout) timeout=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "run.sh: unknown argument '$1' (valid: --timeout SECS, --mem MIB, -- CMD...)" >&2; exit 2 ;;
	esac
done

# The number is the test kernel's: read it from the patch's syscall table line.
nr=$(sed -n 's/^+\([0-9]\+\)[[:space:]]\+64[[:space:]]\+process_mmput_async[[:space:]].*/\1/p' "$here/process_mmput_async.patch")
[[ $nr =~ ^[0-9]+$ ]] || { echo "run.sh: no process_mmput_async line in $here/process_mmput_async.patch" >&2; exit 1; }
export PVTEARDOWN_MMPUT_ASYNC_NR=$nr
if (($# == 0)); then
	set -- sh mmput-async/guest.sh
fi

for p in qemu-system-x86 busybox-static; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >&2 ||
		{ echo "run.sh: package $p is missing and could not be installed (apt-get install $p)" >&2; exit 1; }
done
# KVM when it can run a stock kernel. A /dev/kvm served by kvm_pvm (the
# Pagetable-based VM module of nested sandboxes such as this CI machine)
# runs a stock kernel by instruction emulation: this 6.1 kernel needed
# 2m45s to reach mm_init and then died with "KVM internal error.
# Suberror: 1 / emulation failure" on a lock cmpxchg16b. TCG boots it in
# ~2 s. PVTD_ACCEL=kvm|tcg overrides.
accel=${PVTD_ACCEL:-}
if [[ -z $accel ]]; then
	if [[ -w /dev/kvm && ! -d /sys/module/kvm_pvm ]]; then accel=kvm; else accel=tcg; fi
fi
case $accel in
kvm) accel_args=(-accel kvm -cpu host,-arch-capabilities) ;;
tcg) accel_args=(-accel tcg,thread=multi -cpu max) ;;
*) echo "run.sh: PVTD_ACCEL must be kvm or tcg, got '$accel'" >&2; exit 2 ;;
esac

build=$here/build
mkdir -p "$build"
gcc -static -O2 -Wall -Wextra -Werror -o "$build/pma-test" "$here/pma-test.c"

host_passed=0 host_failed=0
# On the stock host kernel the number must mean nothing.
if probe=$("$build/pma-test" probe --nr "$nr" --expect absent); then
	echo "ok - host $(uname -r) lacks the syscall: $probe"
	host_passed=1
else
	echo "not ok - host $(uname -r) lacks the syscall: $probe"
	host_failed=1
fi

t0=$(date +%s)
kernel=${PVTD_KERNEL:-$("$here/build-kernel.sh")}
t1=$(date +%s)

# initramfs: busybox, node with its libraries at their host paths, project
stage=$(mktemp -d /var/tmp/pvtd-initramfs.XXXXXX)
trap 'rm -rf "$stage"' EXIT
# mktemp makes it 0700 and it becomes the VM's /: tests that run as nobody must reach /bin.
chmod 755 "$stage"
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,etc,root,pvtd,project/mmput-async}
cp /bin/busybox "$stage/bin/busybox"
cp "$here/init" "$stage/init"
node=$(readlink -f "$(command -v node)")
mkdir -p "$stage/usr/bin"
cp "$node" "$stage/usr/bin/node"
ldd "$node" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
	cp --parents -L "$lib" "$stage/"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$stage/etc/passwd"
echo 'root:x:0:' >"$stage/etc/group"
for d in package.json dist node_modules native/build; do
	if [[ -e $root/$d ]]; then
		mkdir -p "$stage/project/$(dirname "$d")"
		cp -a "$root/$d" "$stage/project/$d"
	else
		echo "run.sh: note: $d is not built; not in the VM" >&2
	fi
done
mkdir -p "$stage/project/mmput-async/build"
cp "$build/pma-test" "$stage/project/mmput-async/build/"
cp "$here/guest.sh" "$stage/project/mmput-async/"
{
	echo "export PVTEARDOWN_MMPUT_ASYNC_NR=$nr"
	printf 'exec'
	printf ' %q' "$@"
	echo
} >"$stage/pvtd/cmd"
(cd "$stage" && find . | cpio -o -H newc --quiet) >"$build/initramfs.cpio"
t2=$(date +%s)

log=$build/console.log
set +e
timeout -k 10 "$timeout" qemu-system-x86_64 \
	"${accel_args[@]}" -smp 2 -m "$mem" \
	-nodefaults -display none -monitor none -serial stdio -no-reboot \
	-device virtio-rng-pci \
	-kernel "$kernel" -initrd "$build/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 oops=panic loglevel=4" \
	</dev/null 2>&1 | tr -d '\r' | tee "$log"
qemu_rc=${PIPESTATUS[0]}
set -e
t3=$(date +%s)

marker=$(grep -a '^PVTD-RESULT ' "$log" | tail -1 || true)
problem=
if ((qemu_rc == 124 || qemu_rc == 137)); then
	problem="timed out after ${timeout}s"
elif grep -aq 'Kernel panic' "$log"; then
	problem="kernel panic"
elif [[ -z $marker ]]; then
	problem="no PVTD-RESULT marker (qemu exit $qemu_rc)"
fi

# Counts: the sum of our own last count line and node --test's summary
# (a guest command may run both); with neither, the exit status.
passed=0 failed=0 counted=
counts=$(grep -a '^mmput-async: [0-9]* passed, [0-9]* failed$' "$log" | tail -1 || true)
if [[ -n $counts ]]; then
	passed=$(sed 's/.*: \([0-9]*\) passed.*/\1/' <<<"$counts")
	failed=$(sed 's/.* \([0-9]*\) failed/\1/' <<<"$counts")
	counted=1
fi
if grep -aqE '^(# |ℹ )pass [0-9]+$' "$log"; then
	passed=$((passed + $(grep -aE '^(# |ℹ )pass [0-9]+$' "$log" | tail -1 | grep -o '[0-9]*$')))
	failed=$((failed + $(grep -aE '^(# |ℹ )fail [0-9]+$' "$log" | tail -1 | grep -o '[0-9]*$')))
	counted=1
fi
if [[ -z $counted && -n $marker ]]; then
	[[ $marker == *' rc=0 '* ]] && passed=1 || failed=1
fi
[[ $marker == *' rc=0 '* ]] || [[ -n $problem ]] || ((failed > 0)) || problem="guest command failed: $marker"
[[ -n $problem ]] && failed=$((failed + 1))
passed=$((passed + host_passed))
failed=$((failed + host_failed))

echo "run.sh: accel $accel, kernel $((t1 - t0))s, initramfs $((t2 - t1))s ($(du -m "$build/initramfs.cpio" | cut -f1) MiB), VM $((t3 - t2))s; ${marker:-no marker}"
[[ -n $problem ]] && echo "run.sh: FAILED: $problem; console log: $log" >&2
echo "mmput-async: $passed passed, $failed failed"
((failed == 0))
