#!/bin/sh
# Make headless Chromium and its WebDriver available for the browser tests (tests/test_gantt_html.py).
# Idempotent and non-interactive: installs Debian's `chromium` and `chromium-driver` packages only
# when chromedriver is not found.
set -eu

if ! command -v chromedriver >/dev/null 2>&1; then
    echo "chromedriver not found: installing Debian's chromium and chromium-driver packages" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
fi
command -v chromedriver >/dev/null 2>&1 || { echo "chromedriver still not found after installing" >&2; exit 1; }
chromedriver --version
