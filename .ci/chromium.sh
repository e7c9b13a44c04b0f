#!/usr/bin/env bash
# Install Debian's Chromium (for the Playwright tests of the web page, tests/web) and a CJK font
# (so its screenshots show Chinese, not boxes) if missing. Playwright cannot download its own
# browser here; the tests launch /usr/bin/chromium. Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "wenquanyi" || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null)"
