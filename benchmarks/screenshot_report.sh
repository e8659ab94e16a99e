#!/usr/bin/env bash
# Screenshot an audit report page (``AuditReport.to_html``) with headless Chromium.
#
# Usage: benchmarks/screenshot_report.sh HTML_PATH OUTPUT_PNG [WIDTH,HEIGHT]
#   e.g. benchmarks/screenshot_report.sh /tmp/audit-demo/index.html docs/images/audit_report.png
# The page is rendered at WIDTH x HEIGHT (default 1200,1600; the page below is cut off), then
# the PNG is re-encoded as an optimised palette PNG when Pillow is available (keeps it small).
set -euo pipefail
html=${1:?usage: $0 HTML_PATH OUTPUT_PNG [WIDTH,HEIGHT]}
out=${2:?usage: $0 HTML_PATH OUTPUT_PNG [WIDTH,HEIGHT]}
size=${3:-1200,1600}
chromium=${CHROMIUM:-/usr/bin/chromium}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --window-size="$size" \
    --screenshot="$(realpath -m "$out")" "file://$(realpath "$html")"
python - "$out" <<'PY' || echo "Pillow not available: PNG left as Chromium wrote it" >&2
import sys
from PIL import Image
path = sys.argv[1]
Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
    path, optimize=True)
PY
ls -l "$out"
