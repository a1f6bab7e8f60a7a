#!/usr/bin/env bash
# Idempotent browser-test setup (tests/browser.py): Debian Chromium + Playwright (Python) + axe-core. Root, Debian 12.
# Verified recipe: Chromium 156 from apt (never `playwright install`: no browser download here), playwright pinned.
set -euo pipefail
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.2}"
AXE_VERSION="${AXE_VERSION:-4.14.1}"
AXE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/axe-core"
export DEBIAN_FRONTEND=noninteractive

# 1. Chromium from Debian (NOT `playwright install`: its browser download cannot work here)
if ! command -v chromium >/dev/null; then
  apt-get update -q
  apt-get install -y -q chromium chromium-driver   # driver is only for Selenium; harmless
fi
chromium --version 2>/dev/null    # stderr hides the wrapper's harmless "[: ...: unexpected operator"

# 2. Playwright for Python (the pip wheel ships its own node driver; no browser download)
python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null \
  || python3 -m pip install -q "playwright==$PLAYWRIGHT_VERSION"

# 3. axe-core -> $AXE_DIR/axe.min.js (re-fetched only if missing or a different version)
if ! head -c 40 "$AXE_DIR/axe.min.js" 2>/dev/null | grep -q "axe v$AXE_VERSION\$"; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null && tar -xzf "axe-core-$AXE_VERSION.tgz" package/axe.min.js)
  mkdir -p "$AXE_DIR" && mv "$tmp/package/axe.min.js" "$AXE_DIR/axe.min.js" && rm -rf "$tmp"
fi
export AXE_JS="$AXE_DIR/axe.min.js"
echo "axe-core: $(head -c 20 "$AXE_JS" | sed -n 's/.*axe v//p')  at $AXE_JS"
