#!/usr/bin/env bash
# Rebuilds vendor/wasmtime from the published wasmtime crate on crates.io and
# the patch series in vendor/patches, applied in order. See vendor/README.md.
#
#   vendor/rebuild-wasmtime.sh            replace vendor/wasmtime with the result
#   vendor/rebuild-wasmtime.sh --check    compare the result with vendor/wasmtime
#                                         and fail if they differ (CI runs this)
#   vendor/rebuild-wasmtime.sh --out DIR  write the result to DIR (must not exist)
#
# It needs cargo, tar, patch and diff, and nothing a build of wedge left: the
# crate comes from a scratch project's `cargo fetch`, and is unpacked here from
# the downloaded .crate file, checked against the checksum crates.io gave.
# CARGO_HOME is honoured. WEDGE_VENDOR_DIR and WEDGE_PATCH_DIR replace
# vendor/wasmtime and vendor/patches (to try a change without touching them).
set -euo pipefail

WASMTIME_VERSION=48.0.8

export LC_ALL=C
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vendor_dir=${WEDGE_VENDOR_DIR:-$here/wasmtime}
patch_dir=${WEDGE_PATCH_DIR:-$here/patches}
if [ -z "${WEDGE_VENDOR_DIR:-}" ]; then
    vendor_name=vendor/wasmtime
else
    vendor_name=$vendor_dir
fi

die() {
    echo "rebuild-wasmtime: $*" >&2
    exit 1
}

mode=replace
out=""
while [ $# -gt 0 ]; do
    case $1 in
    --check) mode=check ;;
    --out)
        [ $# -ge 2 ] || die "--out needs a directory"
        mode=out
        out=$2
        shift
        ;;
    -h | --help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
if [ "$mode" = out ] && [ -e "$out" ]; then
    die "$out already exists"
fi
if [ "$mode" = replace ] && [ -e "$vendor_dir" ] &&
    ! grep -q '^name = "wasmtime"$' "$vendor_dir/Cargo.toml" 2>/dev/null; then
    die "$vendor_dir is not a wasmtime crate; not replacing it"
fi

# cargo resolves a relative CARGO_HOME against its working directory, which is
# about to change: pin it, so cargo and this script look in the same place.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
case $cargo_home in
/*) ;;
*) cargo_home=$PWD/$cargo_home ;;
esac
export CARGO_HOME=$cargo_home

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rebuild-wasmtime.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# 1. The published crate. A scratch project, its own workspace, outside the
# wedge tree (so no [patch] and no .cargo/config of wedge's applies), that
# depends on exactly this version; `cargo fetch` downloads the .crate file.
mkdir -p "$tmp/fetch/src"
cat >"$tmp/fetch/Cargo.toml" <<EOF
[package]
name = "wedge-fetch-wasmtime"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wasmtime = { version = "=$WASMTIME_VERSION", default-features = false }

[workspace]
EOF
: >"$tmp/fetch/src/lib.rs"
echo "rebuild-wasmtime: fetching wasmtime $WASMTIME_VERSION from crates.io" >&2
(cd "$tmp/fetch" && cargo fetch --quiet) || die "cargo fetch failed"

checksum=$(awk -v want="\"$WASMTIME_VERSION\"" '
    /^\[\[package\]\]/ { name = ""; version = "" }
    /^name = /         { name = $3 }
    /^version = /      { version = $3 }
    /^checksum = / && name == "\"wasmtime\"" && version == want {
        gsub(/"/, "", $3); print $3
    }' "$tmp/fetch/Cargo.lock")
[ -n "$checksum" ] || die "no checksum for wasmtime $WASMTIME_VERSION in the scratch Cargo.lock"

sha256() {
    if command -v sha256sum >/dev/null; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}
crate=""
for candidate in "$CARGO_HOME"/registry/cache/*/"wasmtime-$WASMTIME_VERSION.crate"; do
    if [ -f "$candidate" ] && [ "$(sha256 "$candidate")" = "$checksum" ]; then
        crate=$candidate
        break
    fi
done
[ -n "$crate" ] ||
    die "no wasmtime-$WASMTIME_VERSION.crate with sha256 $checksum under $CARGO_HOME/registry/cache"

mkdir "$tmp/crate"
tar -xzf "$crate" -C "$tmp/crate"
tree=$tmp/crate/wasmtime-$WASMTIME_VERSION
[ -f "$tree/Cargo.toml" ] || die "$crate did not unpack to wasmtime-$WASMTIME_VERSION/"

# 2. The patches, in order. No fuzz: a hunk whose context has changed is
# rejected, and a patch that does not apply exactly fails the run.
patches=()
for p in "$patch_dir"/*.patch; do
    [ -f "$p" ] && patches+=("$p")
done
for p in ${patches[@]+"${patches[@]}"}; do
    if ! log=$(cd "$tree" && patch -p1 --forward --batch --fuzz=0 \
        --no-backup-if-mismatch -i "$p" 2>&1); then
        echo "$log" >&2
        (cd "$tree" && find . -name '*.rej' -exec sh -c 'echo "--- rejected, $1:"; cat "$1"' _ {} \;) >&2
        die "$(basename "$p") does not apply to wasmtime $WASMTIME_VERSION (with the patches before it); fix the patch by hand"
    fi
    # Say so if hunks landed away from their line numbers.
    if notes=$(printf '%s\n' "$log" | grep -v '^patching file '); then
        printf '%s: %s\n' "$(basename "$p")" "$notes" >&2
    fi
done
n=${#patches[@]}

# 3. Compare, or install.
case $mode in
check)
    [ -d "$vendor_dir" ] || die "$vendor_dir does not exist"
    status=0
    # Every file, byte for byte, and which are executable or symbolic links
    # (what git keeps of a file's mode). Nothing is ignored: the .crate holds
    # no .cargo-ok, and vendor/wasmtime keeps the .cargo_vcs_info.json it has.
    diff -ru "$tree" "$vendor_dir" || status=1
    kinds() { (cd "$1" && find . \( -type l -o -type f -perm -u+x \) -print | sort); }
    if ! diff <(kinds "$tree") <(kinds "$vendor_dir") >"$tmp/kinds.diff"; then
        echo "executable files and symbolic links differ (< rebuilt, > $vendor_name):"
        cat "$tmp/kinds.diff"
        status=1
    fi
    if [ "$status" -ne 0 ]; then
        die "$vendor_name differs from wasmtime $WASMTIME_VERSION + $n patches; run vendor/rebuild-wasmtime.sh, or put the change in vendor/patches"
    fi
    echo "$vendor_name matches wasmtime $WASMTIME_VERSION + $n patches"
    ;;
out)
    cp -R "$tree" "$out"
    echo "wrote wasmtime $WASMTIME_VERSION + $n patches to $out"
    ;;
replace)
    rm -rf "$vendor_dir"
    cp -R "$tree" "$vendor_dir"
    echo "replaced $vendor_name with wasmtime $WASMTIME_VERSION + $n patches"
    ;;
esac
