#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Shoebox needs, only those missing.
# Usage: packaging/system-deps.sh run|test|screenshots|bundle
set -euo pipefail

want=(tesseract-ocr tesseract-ocr-eng
      # Qt's runtime libraries (offscreen and xcb platforms)
      libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
      libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-randr0 libxcb-render-util0
      libxcb-image0 libxcb-xinerama0 libxcb-xkb1)
case "${1:-run}" in
  test) want+=(redis-server desktop-file-utils) ;;
  screenshots) want+=(xvfb xauth) ;;
  # PyInstaller reads ELF files with objdump; start-up is timed on Xvfb with xdotool
  bundle) want+=(binutils xvfb xauth xdotool) ;;
esac
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then want+=(python3-venv); fi

missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "Shoebox needs: ${missing[*]} (run as root or install sudo)" >&2; exit 1; }
  sudo="sudo"
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}
