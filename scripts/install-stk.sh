#!/usr/bin/env bash
# Builds the STK renderer (native/stk_render.cpp, linked against Debian's libstk) that plays the
# `stk` timbre source, as <dir>/stk-render-<first 16 hex of the source's sha256>, where <dir> is
# $ENSEMBLE_SYNTH_STK or ~/.cache/ensemble_synth/stk. Installs libstk-dev and g++ when missing.
# Quick when the binary is there; a failed build leaves nothing behind.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SOURCE="$ROOT/native/stk_render.cpp"
DEST="${ENSEMBLE_SYNTH_STK:-$HOME/.cache/ensemble_synth/stk}"
DEST="${DEST%%:*}"
HASH="$(sha256sum "$SOURCE" | cut -c1-16)"
BINARY="$DEST/stk-render-$HASH"
[ -x "$BINARY" ] && exit 0

missing=""
for p in libstk-dev g++; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing system packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
mkdir -p "$DEST"
tmp="$(mktemp "$DEST/.build.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
g++ -O2 -o "$tmp" "$SOURCE" -lstk
chmod 755 "$tmp"
mv "$tmp" "$BINARY"
trap - EXIT
echo "built $BINARY (STK $(dpkg-query -W -f='${Version}' libstk-dev))"
