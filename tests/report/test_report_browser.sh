#!/usr/bin/env bash
# The HTML report in a real browser (headless Chromium from Debian): at
# 700 px the page does not scroll sideways (wide tables scroll inside their
# own box), the why-not box comes before the first table, and the sections
# are the expected ones. Structure, not pixels: the probe script reads the
# laid-out page and writes what it found into the DOM Chromium dumps.
# Exit 77 (a ctest skip) when Chromium is not installed.
#   test_report_browser.sh TEST_REPORT_VIEW_BINARY
set -euo pipefail
bin=$1
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "SKIP: no chromium (apt-get install chromium)"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
KILN_REPORT_OUT=$work "$bin" "[.write]" >/dev/null
page=$work/reports/offline.html
[ -s "$page" ] || { echo "FAIL: no report written"; exit 1; }
run() { timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
          --user-data-dir="$work/profile" --window-size=700,1400 "$@" 2>>"$work/chromium.log"; }

# 1. A screenshot at 700 px: the page renders (a PNG 700 px wide).
run --screenshot="$work/shot.png" "file://$page" >/dev/null || { cat "$work/chromium.log"; exit 1; }
width=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); assert d[:8]==b"\x89PNG\r\n\x1a\n"; print(struct.unpack(">I", d[16:20])[0])' "$work/shot.png")
[ "$width" = 700 ] || { echo "FAIL: screenshot is $width px wide, not 700"; exit 1; }

# 2. The laid-out page, probed (a copy: the report itself carries no script).
python3 - "$page" "$work/probe.html" <<'PY'
import sys
probe = """<script>
const b = document.body, w = document.documentElement;
b.dataset.overflow = w.scrollWidth > window.innerWidth + 1 ? "yes:" + w.scrollWidth : "no";
b.dataset.sections = [...document.querySelectorAll("h2")].map(h => h.textContent).join("|");
const why = document.querySelector(".why"), table = document.querySelector("table");
b.dataset.whyfirst = why && table && why.getBoundingClientRect().top < table.getBoundingClientRect().top ? "yes" : "no";
b.dataset.rows = document.querySelectorAll("#combinations + .wide tr").length;
</script></body>"""
html = open(sys.argv[1]).read()
assert "</body>" in html
open(sys.argv[2], "w").write(html.replace("</body>", probe))
PY
dom=$(run --dump-dom "file://$work/probe.html") || { cat "$work/chromium.log"; exit 1; }
attr() { sed -n "s/.*data-$1=\"\([^\"]*\)\".*/\1/p" <<<"$dom" | head -1; }
fail=0
check() { if [ "$2" = "$3" ]; then echo "ok   $1: $2"; else echo "FAIL $1: got '$2', want '$3'"; fail=1; fi; }
check "no sideways scrolling at 700 px" "$(attr overflow)" no
check "sections" "$(attr sections)" "Not tagged|Combinations|GPUs the images serve (plan)|Excluded by the plan|Legend"
check "why-not before the first table" "$(attr whyfirst)" yes
check "combination rows (header + 2)" "$(attr rows)" 3
exit $fail
