#!/usr/bin/env bash
# The HTML report in a real browser (Debian's chromium, headless): for the page of an injected
# divergence and of a long agreeing trace drawn through a window, the scripts run without a
# console message, the DOM after them holds every lane's timeline and the divergence marker, and
# a screenshot is the requested size and not blank. Skips (exit 77) without chromium.
set -euo pipefail
bin="$1" python="$2" source="$(cd "$(dirname "$0")/../.." && pwd)"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "SKIPPED: chromium is not installed (apt-get install chromium); the page was not rendered"
  exit 77
fi
cd "$(mktemp -d)"
trap 'rm -rf "$PWD"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
chrome() {  # chrome LOG ARGS...: headless, a private profile, console messages on stderr
  local log="$1"; shift
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$PWD/profile" --enable-logging=stderr --v=0 "$@" 2> "$log"
}
check_page() {  # check_page PAGE TIMELINES MARKERS
  local page="$1" timelines="$2" markers="$3"
  chrome dom.log --dump-dom "file://$PWD/$page" > "$page.dom"
  ! grep -F ':CONSOLE' dom.log || fail "$page: console messages (above)"
  grep -qE '<body data-ready="[1-9][0-9]*"' "$page.dom" || fail "$page: the script did not run"
  [ "$(grep -o '<svg class="timeline"' "$page.dom" | wc -l)" = "$timelines" ] ||
    fail "$page: not $timelines timelines after the scripts ran"
  [ "$(grep -o 'class="divergence-marker' "$page.dom" | wc -l)" = "$markers" ] ||
    fail "$page: not $markers divergence markers"
  chrome shot.log --window-size=1280,1600 --screenshot="$PWD/$page.png" "file://$PWD/$page" > /dev/null
  "$python" "$source/tests/browser/png_check.py" "$page.png" 1280 1600
}
"$bin" report "$source/tests/scenarios/ring-stale-accepted.jsonl" --inject ring-stale-accepted \
  -o diverged.html
check_page diverged.html 7 7
grep -q 'id="heat-map"' diverged.html.dom || fail "diverged.html: no heat map"
"$bin" generate --preset tiny --requests 16 --steps 400 --seed 7 -o long.jsonl > /dev/null
"$bin" report long.jsonl --window 120 -o long.html
check_page long.html 7 0
echo "browser: the reports render"
