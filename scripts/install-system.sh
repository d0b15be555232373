#!/usr/bin/env bash
# Installs the Debian packages ensemble_synth needs (FluidSynth, soundfonts, jemalloc, ffmpeg),
# and npm when there is none (scripts/install-samples.sh fetches the sample packages with it).
set -euo pipefail
PACKAGES="libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont csound-soundfont libjemalloc2 ffmpeg"
missing=""
for p in $PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing system packages:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
