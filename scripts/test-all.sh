#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root: installs what it needs, then runs
# unit, system (real processes and cgroups) and libvirt (real libvirtd + KVM) tests on x86_64,
# the aarch64 cross-build, and the s390x stage (a real s390x kernel under QEMU TCG).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
stage() { printf '\n=== %s (at %ss)\n' "$1" "$(( $(date +%s) - started ))"; }

stage setup
bash scripts/setup.sh
stage "x86_64: unit, system and libvirt tests"
node scripts/run-tests.js unit system libvirt
stage "aarch64 cross-build"
bash qemu-s390x/cross-aarch64.sh
stage "s390x under QEMU TCG"
bash qemu-s390x/run.sh
stage "all stages passed"
