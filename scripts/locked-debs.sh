# Fetches exactly the files a lock names, each verified against the lock's hash, and survives a
# registry that drops files its own indexes still list. Sourced by the stages that download
# (qemu-s390x/fetch-guest.sh, qemu-s390x/fetch-qemu.sh, mmput-async/build-kernel.sh) and by
# qemu-s390x/lock.sh, which writes the locks. Never run.
#
# A lock is text, one entry a line, '#' starts a comment:
#   releases bookworm trixie          where a replacement is looked for, in this order
#   deb SUITE ARCH PACKAGE VERSION PATH SHA256 [via:METAPACKAGE]
#   npm - - PACKAGE VERSION FILE INTEGRITY
# A release is a codename with its -updates and -security suites (bookworm), or one suite
# (bookworm-backports). An entry with via: is replaced by what METAPACKAGE depends on (a new
# kernel ABI renames the image package). The fetch prints one line per replaced entry and fails
# with one line naming the package, every version tried and the command that refreshes the lock.
#
# The apt state used for the indexes is separate from the host's (the host's dpkg database is
# never read nor written). Caches are the caller's: PVTD_LOCK_APT (apt states) and the DEST
# directory given to locked_fetch.

PVTD_DEBIAN_MIRROR=${PVTD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PVTD_DEBIAN_SECURITY_MIRROR=${PVTD_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PVTD_LOCK_APT=${PVTD_LOCK_APT:-/var/cache/pvteardown/apt}

lock_say() { printf '[lock %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

lock_mirror() { case $1 in *-security) echo "$PVTD_DEBIAN_SECURITY_MIRROR" ;; *) echo "$PVTD_DEBIAN_MIRROR" ;; esac; }

lock_suites() { case $1 in *-*) echo "$1" ;; *) echo "$1 $1-updates $1-security" ;; esac; }

# lock_apt_opts RELEASE ARCH: sets lock_opts to the apt options of an index state of its own for
# that release and architecture.
lock_apt_opts() {
  local release=$1 arch=$2
  # Architecture-independent packages are listed in every architecture's index.
  [ "$arch" != all ] || arch=$(dpkg --print-architecture)
  lock_dir=$PVTD_LOCK_APT/$release-$arch
  lock_opts=(
    -o APT::Architecture="$arch" -o APT::Architectures="$arch"
    -o Dir::Etc::SourceList="$lock_dir/sources.list" -o Dir::Etc::SourceParts="$lock_dir/sources.list.d"
    -o Dir::Etc::Preferences="$lock_dir/preferences" -o Dir::Etc::PreferencesParts="$lock_dir/preferences.d"
    -o Dir::State="$lock_dir" -o Dir::State::Lists="$lock_dir/lists" -o Dir::State::status="$lock_dir/status"
    -o Dir::Cache="$lock_dir/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root
  )
  lock_arch=$arch
}

# lock_index RELEASE ARCH: that state's indexes, refreshed when older than a day.
lock_index() {
  local suite
  lock_apt_opts "$1" "$2"
  [ -z "$(find "$lock_dir/lists" -maxdepth 1 -name '*_Packages*' -mtime -1 -print -quit 2>/dev/null)" ] || return 0
  mkdir -p "$lock_dir"/{lists/partial,cache/archives/partial,sources.list.d,preferences.d}
  : >"$lock_dir/status"
  : >"$lock_dir/sources.list"
  for suite in $(lock_suites "$1"); do
    echo "deb [arch=$lock_arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(lock_mirror "$suite") $suite main" >>"$lock_dir/sources.list"
  done
  lock_say "apt update: $1 $lock_arch (index state in $lock_dir)"
  # The registry can serve an index that does not match its Release file ("mirror sync in
  # progress"): apt keeps the others, and so do we, as long as one index was read.
  if ! apt-get -qq "${lock_opts[@]}" update >"$lock_dir/update.log" 2>&1; then
    if [ -z "$(find "$lock_dir/lists" -maxdepth 1 -name '*_Packages*' -print -quit)" ]; then
      lock_say "error: no index of $1 ($lock_arch) could be read: $(grep -m1 '^E:' "$lock_dir/update.log")"
      return 1
    fi
    lock_say "note: some indexes of $1 ($lock_arch) could not be read; using the others (details: $lock_dir/update.log)"
  fi
}

# lock_apt RELEASE ARCH APT-ARGS...: apt-get (apt-cache with LOCK_APT_TOOL=apt-cache) on that state.
lock_apt() {
  lock_index "$1" "$2" || return 1
  shift 2
  "${LOCK_APT_TOOL:-apt-get}" "${lock_opts[@]}" "$@"
}

lock_sha256() { sha256sum "$1" | cut -d' ' -f1; }
lock_sha512_integrity() { echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }

# lock_download URL FILE SHA256: FILE holds exactly that content afterwards, or it fails and
# leaves nothing behind. A file already there with the right hash is not downloaded again.
lock_download() {
  local url=$1 file=$2 sha=$3
  [ -s "$file" ] && [ "$(lock_sha256 "$file")" = "$sha" ] && return 0
  rm -f "$file" "$file.part"
  /usr/lib/apt/apt-helper -qq download-file "$url" "$file.part" >/dev/null 2>&1 || { rm -f "$file.part"; return 1; }
  if [ "$(lock_sha256 "$file.part")" != "$sha" ]; then
    lock_say "WARNING: $url does not match its sha256 $sha; not used"
    rm -f "$file.part"
    return 1
  fi
  mv "$file.part" "$file"
}

# lock_candidates RELEASE ARCH PACKAGE: "PACKAGE VERSION SUITE PATH SHA256" for every version that
# release's indexes list, newest first.
lock_candidates() {
  local release=$1 arch=$2 pkg=$3 ver
  LOCK_APT_TOOL=apt-cache lock_apt "$release" "$arch" madison "$pkg" 2>/dev/null |
    awk -F'|' '{gsub(/ /,"",$2); print $2}' | sort -u | sort -rV |
    while read -r ver; do
      LOCK_APT_TOOL=apt-cache lock_apt "$release" "$arch" show "$pkg=$ver" 2>/dev/null | awk -v p="$pkg" -v v="$ver" '
        /^Filename: /{f=$2} /^SHA256: /{s=$2}
        /^$/{ if (f && s) { print p, v, f, s; exit } }
        END{ if (f && s) print p, v, f, s }' | head -1 |
        while read -r p v f s; do
          # The suite is only needed for the mirror: security files live under pool/updates.
          case $f in pool/updates/*) echo "$p $v $release-security $f $s" ;; *) echo "$p $v $release $f $s" ;; esac
        done
    done
}

# lock_metapackage_target RELEASE ARCH METAPACKAGE: the versioned package it depends on.
lock_metapackage_target() {
  LOCK_APT_TOOL=apt-cache lock_apt "$1" "$2" depends "$3" 2>/dev/null |
    awk -v m="${3%-*}" '/^  Depends: /{ if (index($2, "linux-image-") == 1 || index($2, m) == 1) { print $2; exit } }'
}

# lock_resolve RELEASES ARCH PACKAGE VIA DEST: downloads the newest served file of PACKAGE (or of
# what VIA depends on) from the first release that has one. Prints "ok SUITE PACKAGE VERSION PATH
# SHA256", or "none TRIED..." naming every version tried, and fails.
lock_resolve() {
  local releases=$1 arch=$2 pkg=$3 via=$4 dest=$5 release name p v s f sha tried=
  for release in $releases; do
    lock_index "$release" "$arch" || continue
    name=$pkg
    if [ -n "$via" ]; then name=$(lock_metapackage_target "$release" "$arch" "$via"); [ -n "$name" ] || continue; fi
    while read -r p v s f sha; do
      [ -n "$p" ] || continue
      tried+=" $p=$v($s)"
      if lock_download "$(lock_mirror "$s")/$f" "$dest/${f##*/}" "$sha"; then
        echo "ok $s $p $v $f $sha"
        return 0
      fi
    done < <(lock_candidates "$release" "$arch" "$name")
  done
  echo "none${tried:- nothing in the indexes of: $releases}"
  return 1
}

# locked_fetch LOCK DEST: every entry of LOCK verified in DEST (replacements resolved as above).
# Prints the effective set, one "KIND PACKAGE VERSION FILE HASH" line per entry, in lock order.
locked_fetch() {
  local lock=$1 dest=$2 kind suite arch pkg ver path hash via releases= out
  mkdir -p "$dest"
  [ -r "$lock" ] || { lock_say "error: no lock file $lock"; return 1; }
  releases=$(awk '$1 == "releases" { $1 = ""; print; exit }' "$lock")
  while read -r kind suite arch pkg ver path hash via; do
    case $kind in
      ''|'#'*|releases) continue ;;
      npm)
        if [ -s "$dest/$path" ] && [ "$(lock_sha512_integrity "$dest/$path")" = "$hash" ]; then
          echo "npm $pkg $ver $path $hash"; continue
        fi
        # npm pack checks the registry's integrity; ours is checked again below.
        (cd "$dest" && rm -f "$path" && npm pack --silent "$pkg@$ver" >/dev/null 2>&1) || true
        if [ -s "$dest/$path" ] && [ "$(lock_sha512_integrity "$dest/$path")" = "$hash" ]; then
          echo "npm $pkg $ver $path $hash"; continue
        fi
        rm -f "$dest/$path"
        lock_say "error: npm package $pkg@$ver ($hash) cannot be had from the registry; refresh the lock with qemu-s390x/lock.sh"
        return 1
        ;;
      deb)
        if lock_download "$(lock_mirror "$suite")/$path" "$dest/${path##*/}" "$hash"; then
          echo "deb $pkg $ver ${path##*/} $hash"; continue
        fi
        if out=$(lock_resolve "$releases" "$arch" "$pkg" "${via#via:}" "$dest"); then
          read -r _ suite pkg2 ver2 path hash <<<"$out"
          lock_say "lock drift: $pkg $ver ($arch) is no longer served; using $pkg2 $ver2 from $suite instead (qemu-s390x/lock.sh pins it)"
          echo "deb $pkg2 $ver2 ${path##*/} $hash"
        else
          lock_say "error: no served file for $pkg ($arch); tried $pkg=$ver($suite, locked)${out#none}; refresh the lock with qemu-s390x/lock.sh (or set PVTD_DEBIAN_MIRROR)"
          return 1
        fi
        ;;
      *) lock_say "error: $lock: unknown entry kind '$kind' (valid: releases, deb, npm)"; return 1 ;;
    esac
  done <"$lock"
}
