#!/bin/sh
# Default guest-side command of run.sh (busybox sh, cwd /project): the
# syscall's own tests (pma-test), then the same proof through the project's
# native tools when they are built. Prints one combined count line last.
nr=${PVTEARDOWN_MMPUT_ASYNC_NR:?PVTEARDOWN_MMPUT_ASYNC_NR is not set}
mib=${PMA_MIB:-1024}
passed=0 failed=0

ok() { echo "ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }

mmput-async/build/pma-test test --nr "$nr" --mib "$mib" | tee /tmp/pma.out
p=$(sed -n 's/^mmput-async: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' /tmp/pma.out)
f=$(sed -n 's/^mmput-async: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' /tmp/pma.out)
passed=$((passed + ${p:-0}))
failed=$((failed + ${f:-1}))

helper=native/build/pvteardown-helper
fakeguest=native/build/pvteardown-fakeguest
if [ ! -x "$helper" ] || [ ! -x "$fakeguest" ]; then
	echo "# SKIPPED: native/build/pvteardown-helper or pvteardown-fakeguest is not built; only pma-test ran" >&2
	echo "mmput-async: $passed passed, $failed failed"
	exit 0
fi

probe=$($helper probe --mmput-async-nr "$nr")
echo "# $probe"
case $probe in
*'"mmputAsync":{"nr":'$nr',"present":true'*) ok "pvteardown-helper probe finds process_mmput_async at $nr" ;;
*) notok "pvteardown-helper probe finds process_mmput_async at $nr" ;;
esac

cg=/sys/fs/cgroup/pvtd-native
mkdir -p $cg
echo "+cpu +memory" >$cg/cgroup.subtree_control
mkdir -p $cg/helper

# prints the guest's pid once every page is touched
start_guest() {
	out=$(mktemp)
	$fakeguest --mib "$mib" >"$out" &
	i=0
	while ! grep -q '^READY [0-9]*$' "$out" && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	sed -n 's/^READY \([0-9]*\)$/\1/p' "$out"
}
# The waiter is a SCHED_FIFO observer, as in pma-test test: on a 2-vCPU
# TCG VM a CFS waiter can sit behind the helper's in-kernel teardown until
# the next tick, which would measure the scheduler instead of the exit.
kill_to_exit_us() {
	mmput-async/build/pma-test fifo -- $helper wait --pid "$1" --kill |
		sed -n 's/.*"killToExitNs":\([0-9]*\).*/\1/p' | awk '{printf "%d", $1 / 1000}'
}
usage_usec() { sed -n 's/^usage_usec //p' $cg/helper/cpu.stat; }
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

bases= armeds= cpus= hrcs=0
for round in 1 2 3; do
	g=$(start_guest)
	bases="$bases $(kill_to_exit_us "$g")"

	g=$(start_guest)
	sh -c "echo \$\$ >$cg/helper/cgroup.procs && exec $helper mmput-async --pid $g --nr $nr" >/tmp/helper.out 2>&1 &
	hpid=$!
	i=0
	while [ "$(cut -d' ' -f1 /proc/$hpid/syscall 2>/dev/null)" != "$nr" ] && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	u0=$(usage_usec)
	armeds="$armeds $(kill_to_exit_us "$g")"
	wait $hpid || hrcs=$((hrcs + 1))
	cpus="$cpus $(($(usage_usec) - u0))"
	echo "# round $round: unarmed/armed kill->exit us:$bases /$armeds; helper cgroup usage_usec:$cpus; helper: $(cat /tmp/helper.out)"
done
base_us=$(median3 $bases)
armed_us=$(median3 $armeds)
cpu_us=$(median3 $cpus)
ratio=$(awk "BEGIN{printf \"%d\", $base_us / ($armed_us > 0 ? $armed_us : 1)}")
line="pvteardown-fakeguest --mib $mib without shim, median of 3: unarmed kill->exit ${base_us} us, armed (pvteardown-helper mmput-async) ${armed_us} us, ratio ${ratio}x"
if [ "$hrcs" = 0 ] && [ "$ratio" -ge 10 ]; then ok "$line"; else notok "$line ($hrcs helper failures)"; fi
line="pvteardown-helper's cgroup cpu.stat usage_usec +$cpu_us per teardown (median)"
if [ "$cpu_us" -ge $((base_us / 2)) ]; then ok "$line"; else notok "$line (expected >= $((base_us / 2)))"; fi

echo "mmput-async: $passed passed, $failed failed"
