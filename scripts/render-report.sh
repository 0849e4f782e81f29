#!/usr/bin/env bash
# Renders `heed report RUN_DIR` in headless Chromium (Debian's `chromium`; install it with
# scripts/install-deps.sh --report) and saves the whole page as a PNG.
#   scripts/render-report.sh RUN_DIR OUT.png [WIDTH]
# HEED=path/to/heed picks the binary (default: .build/release/heed).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 RUN_DIR OUT.png [WIDTH]" >&2; exit 2; }
run=$1 out=$2 width=${3:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
heed=${HEED:-$root/.build/release/heed}
command -v chromium >/dev/null || { echo "render-report: chromium not found (scripts/install-deps.sh --report)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$heed" report "$run" --out "$work/report.html"
# Chromium screenshots the window only: measure the page at this width first, with a copy
# of the page that writes its height into the DOM (the report itself has no scripts).
sed 's#</body>#<script>document.body.setAttribute("data-height", document.documentElement.scrollHeight)</script></body>#' \
  "$work/report.html" > "$work/measure.html"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 --user-data-dir="$work/profile")
height=$(chromium "${flags[@]}" --window-size="$width,800" --dump-dom "file://$work/measure.html" 2>/dev/null \
  | grep -o 'data-height="[0-9]*"' | grep -o '[0-9]*')
[ -n "$height" ] || { echo "render-report: could not measure the page" >&2; exit 1; }
chromium "${flags[@]}" --window-size="$width,$height" --screenshot="$work/shot.png" "file://$work/report.html" 2>/dev/null
mv "$work/shot.png" "$out"
echo "render-report: $out ($width x $height)"
