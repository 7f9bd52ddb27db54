#!/usr/bin/env bash
# The Prometheus project's own parser for the metrics test: promtool, taken from Debian's
# prometheus package without installing it (that would start a Prometheus service). The deb is
# downloaded with the host's apt, which checks it against the signed indexes, and only
# usr/bin/promtool is kept, in $PVTD_PROMTOOL_CACHE (default /var/cache/pvteardown/promtool).
# Idempotent: a promtool already there that runs is kept. Run by scripts/setup.sh; without it the
# metrics test skips its promtool check, loudly.
set -euo pipefail
cache=${PVTD_PROMTOOL_CACHE:-/var/cache/pvteardown/promtool}
say() { printf 'fetch-promtool: %s\n' "$*" >&2; }

if [ -x "$cache/promtool" ] && "$cache/promtool" --version >/dev/null 2>&1; then exit 0; fi
mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ] || { say "note: cannot write $cache (run as root or set PVTD_PROMTOOL_CACHE); the metrics test will skip its promtool check"; exit 0; }
tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
download() { (cd "$tmp" && apt-get -qq -o APT::Sandbox::User=root download prometheus >/dev/null 2>&1); }
if ! download; then
  # A fresh machine may have no package indexes yet.
  [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 || true
  download || { say "error: apt-get download prometheus failed (is Debian's main archive in the apt sources?)"; exit 1; }
fi
deb=$(ls "$tmp"/prometheus_*.deb)
dpkg-deb --fsys-tarfile "$deb" | tar -x -O ./usr/bin/promtool >"$tmp/promtool"
chmod 0755 "$tmp/promtool"
"$tmp/promtool" --version >/dev/null
mv "$tmp/promtool" "$cache/promtool"
say "promtool from ${deb##*/} in $cache"
