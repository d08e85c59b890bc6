#!/usr/bin/env bash
# Adds Shoebox to the desktop's menu for this user: the .desktop entry (pointing at the
# bundle), the icon at each size, and "Open with Shoebox" for folders and pictures.
# Usage: packaging/linux/install.sh [BUNDLE_DIR]     (default: dist/shoebox)
#        packaging/linux/install.sh --uninstall
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
apps="$data/applications"
icons="$data/icons/hicolor"
entry="$apps/shoebox.desktop"

refresh() {
  if command -v update-desktop-database >/dev/null; then update-desktop-database -q "$apps" || true; fi
  if command -v gtk-update-icon-cache >/dev/null && [ -f "$icons/index.theme" ]; then
    gtk-update-icon-cache -q -t "$icons" || true
  fi
}

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$entry" "$icons/scalable/apps/shoebox.svg"
  for size in 48 128 256; do rm -f "$icons/${size}x${size}/apps/shoebox.png"; done
  refresh
  echo "Shoebox removed from the menu (your library and settings are kept)."
  exit 0
fi

bundle="$(cd "${1:-$here/../../dist/shoebox}" 2>/dev/null && pwd)" || {
  echo "no bundle at ${1:-dist/shoebox}: run \`make bundle\` first" >&2; exit 1; }
exe="$bundle/shoebox"
[ -x "$exe" ] || { echo "$exe is not a program: run \`make bundle\` first" >&2; exit 1; }

mkdir -p "$apps" "$icons/scalable/apps"
# Exec and TryExec name the bundle's program by its absolute path (quoted for spaces).
sed -e "s|^Exec=shoebox |Exec=\"$exe\" |" -e "s|^TryExec=shoebox$|TryExec=$exe|" \
  "$here/shoebox.desktop" > "$entry.tmp"
mv "$entry.tmp" "$entry"
install -m 644 "$here/icons/shoebox.svg" "$icons/scalable/apps/shoebox.svg"
for size in 48 128 256; do
  mkdir -p "$icons/${size}x${size}/apps"
  install -m 644 "$here/icons/shoebox-$size.png" "$icons/${size}x${size}/apps/shoebox.png"
done
refresh
echo "Shoebox is in the menu ($entry); it opens $exe"
