#!/bin/bash
# Checks scripts/locked-debs.sh against the real registry: a locked file the registry does not
# serve is replaced and named in one line; a file whose content differs from its lock is never
# used; a package nothing can be had for fails in one line naming what was tried and the command
# that refreshes the lock. Prints "ok -"/"not ok -" lines and "locks: N passed, N failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$PVTD_ROOT/scripts/locked-debs.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() { if eval "$2"; then echo "ok - $1"; passed=$((passed + 1)); else echo "not ok - $1"; sed 's/^/#   /' "$work/err"; failed=$((failed + 1)); fi; }
# The guest's own dash entry, the file every test below starts from.
read -r _ suite arch pkg ver path sha _ < <(awk '$1 == "deb" && $4 == "dash"' "$PVTD_S390X_DIR/guest.lock")
[ -n "${sha:-}" ] || die "lock-test: guest.lock has no dash entry"
zero=$(printf '0%.0s' {1..64})
fetch() { locked_fetch "$work/lock" "$work/debs" >"$work/out" 2>"$work/err"; }

printf 'releases bookworm trixie\ndeb %s %s %s %s %s %s\n' "$suite" "$arch" "$pkg" "$ver" "$path" "$sha" >"$work/lock"
fetch; rc=$?
check "a served locked file is fetched and verified" \
  '[ $rc = 0 ] && [ "$(lock_sha256 "$work/debs/${path##*/}")" = "$sha" ] && grep -q "^deb dash $ver ${path##*/} $sha\$" "$work/out"'

printf 'releases bookworm trixie\ndeb %s %s dash 0.5.12-99 pool/main/d/dash/dash_0.5.12-99_%s.deb %s\n' "$suite" "$arch" "$arch" "$zero" >"$work/lock"
rm -rf "$work/debs"; fetch; rc=$?
check "a locked file the registry does not serve is replaced from the indexes, in one line naming it" \
  '[ $rc = 0 ] && grep -q "^deb dash " "$work/out" && [ "$(grep -c "lock drift: dash 0.5.12-99" "$work/err")" = 1 ]'

printf 'releases bookworm trixie\ndeb %s %s %s %s %s %s\n' "$suite" "$arch" "$pkg" "$ver" "$path" "$zero" >"$work/lock"
rm -rf "$work/debs"; fetch; rc=$?
check "a served file that does not match the lock's hash is refused, then replaced by one the index vouches for" \
  '[ $rc = 0 ] && grep -q "does not match its sha256 $zero" "$work/err" && ! grep -q " $zero\$" "$work/out" && grep -q "lock drift: dash" "$work/err"'

printf 'releases bookworm\ndeb bookworm %s pvtd-no-such-package 1.0 pool/main/p/pvtd/pvtd-no-such-package_1.0_%s.deb %s\n' "$arch" "$arch" "$zero" >"$work/lock"
fetch; rc=$?
check "a package nothing can be had for fails in one line: package, versions tried, the refresh command" \
  '[ $rc != 0 ] && [ "$(grep -c "error:" "$work/err")" = 1 ] && grep -q "pvtd-no-such-package.*tried pvtd-no-such-package=1.0.*qemu-s390x/lock.sh" "$work/err"'

printf 'releases bookworm\nrpm bookworm %s x 1 x %s\n' "$arch" "$zero" >"$work/lock"
fetch; rc=$?
check "an entry of an unknown kind is refused in one line" '[ $rc != 0 ] && grep -q "unknown entry kind .rpm." "$work/err"'

echo "locks: $passed passed, $failed failed"
((failed == 0))
