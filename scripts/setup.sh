#!/usr/bin/env bash
# Makes a fresh Debian machine ready to build and run pvteardown: the C toolchain from Debian,
# the npm dependencies from the lock file, then the build (native/ with make, src/ with tsc), and
# promtool for the metrics test (scripts/fetch-promtool.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v make >/dev/null || missing+=(make)
# The man page test renders pvteardown(1) with groff -ww.
command -v groff >/dev/null || missing+=(groff-base)
# apparmor_parser: the tests compile install's AppArmor rules against libvirt's profiles.
command -v apparmor_parser >/dev/null || missing+=(apparmor)
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || { echo "setup: need ${missing[*]}: run as root or install them" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm ci runs the prepare script, which builds.
npm ci --no-audit --no-fund --loglevel=error
# promtool, the Prometheus parser the metrics test checks the daemon's output with.
bash scripts/fetch-promtool.sh
