#!/usr/bin/env bash
# Install what tests/test_browser.py needs: Debian's Chromium and Playwright for Python (driver only; Playwright's
# own browser download is not used). Idempotent: returns quickly when both are already present.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

PYTHON="${PYTHON:-python}"
if ! "$PYTHON" -c "import playwright.sync_api" >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q "playwright>=1.40"
fi

echo "chromium: $(chromium --version 2>/dev/null || echo missing)"
echo "playwright: $("$PYTHON" -c 'from importlib.metadata import version; print(version("playwright"))')"
