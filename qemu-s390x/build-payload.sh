#!/bin/bash
# Builds what changes from run to run and packs it as an uncompressed cpio:
#   /init, /opt/pvteardown/{package.json,dist,hooks,node_modules,native/build/s390x}, /opt/pvtd-s390x/smoke
# Env: PVTD_S390X_NATIVE_BUILD=DIR  use s390x native binaries from DIR instead of building native/
#      PVTD_S390X_SKIP_TSC=1       use dist/ as it is
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd "$PVTD_ROOT"
if [ "${PVTD_S390X_SKIP_TSC:-}" != 1 ]; then
  [ -x node_modules/.bin/tsc ] || die "node_modules/.bin/tsc missing; run 'npm ci' first"
  say "tsc -p ."
  node_modules/.bin/tsc -p .
fi
[ -f dist/test/s390x/entry.js ] || die "dist/test/s390x/entry.js missing; tsc did not compile test/s390x/entry.ts"

native=${PVTD_S390X_NATIVE_BUILD:-}
if [ -z "$native" ]; then
  if [ -f native/Makefile ]; then
    say "cross-building native/ for s390x"
    nice make -s -C native CC=s390x-linux-gnu-gcc BUILD=build/s390x >&2
    native=native/build/s390x
  else
    say "WARNING: native/Makefile missing; the guest gets no native binaries"
  fi
fi

stage=$PVTD_S390X_BUILD/payload
rm -rf "$stage"
mkdir -p "$stage/opt/pvteardown/native/build/s390x" "$stage/opt/pvtd-s390x"
s390x-linux-gnu-gcc -O2 -Wall -Wextra -Werror -o "$stage/opt/pvtd-s390x/smoke" "$PVTD_S390X_DIR/smoke.c"
install -m 755 "$PVTD_S390X_DIR/init" "$stage/init"
app=$stage/opt/pvteardown
cp package.json "$app/"
cp -r dist hooks "$app/"
[ -n "$native" ] && cp -r "$native"/. "$app/native/build/s390x/"
# Production packages only, and no prebuilt native addons: ffi-rs has no s390x binary and the
# guest runs with PVTEARDOWN_SYS=helper.
mapfile -t prod < <(npm ls --omit=dev --all --parseable 2>/dev/null | grep /node_modules/ || true)
for dir in "${prod[@]}"; do
  rel=${dir#"$PVTD_ROOT"/}
  case $rel in node_modules/@yuuang/*) continue ;; esac
  mkdir -p "$app/$(dirname "$rel")"
  cp -r "$dir" "$app/$rel"
done
# Nested copies above duplicate inner node_modules; harmless, and keeps the walk simple.
(cd "$stage" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) >"$PVTD_S390X_BUILD/payload.cpio"
