#!/usr/bin/env bash
# COPY versus multi-row INSERT … ON CONFLICT for clipd's write batches, on both dev servers
# (Debian PostgreSQL with real[] vectors; PostgreSQL 16 + pgvector with HNSW indexes), in a
# release build. Both methods run interleaved in one process per server, so the ratio is fair.
#   Benchmarks/pg_writes.sh [ROWS_PER_METHOD] [BATCH...]
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-4096}"; shift || true
batches=("${@:-64 512}")
plain="$(bash Deploy/dev/postgres.sh)"
vector="$(bash Deploy/dev/postgres.sh --pgvector)"
swift build -c release --scratch-path .build-release --product PostgresWritesBench >&2
bench=.build-release/release/PostgresWritesBench
for batch in ${batches[*]}; do
  "$bench" "$plain" --rows "$rows" --batch "$batch" --label postgres15
  "$bench" "$vector" --rows "$rows" --batch "$batch" --label postgres16-pgvector
done
