#!/usr/bin/env bash
# Installs the Debian packages clipd builds and tests against (idempotent).
set -euo pipefail
PKGS=(libopenblas-dev libjpeg-dev libpng-dev libwebp-dev libgif-dev librdkafka-dev libpq-dev zlib1g-dev
      libcurl4-openssl-dev ca-certificates openssl postgresql postgresql-contrib)
# Tools only the tests use (not needed to build or run clipd): promtool checks /metrics,
# headless Chromium loads the web page.
TEST_PKGS=(prometheus chromium)
missing=()
for p in "${PKGS[@]}" "${TEST_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
