#!/usr/bin/env bash
# Runs clipd's whole test suite on a fresh Debian machine with Swift:
# installs system packages, starts the services the integration tests need, runs `swift test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash Deploy/dev/install-deps.sh
swift build --build-tests
swift test --skip-build
