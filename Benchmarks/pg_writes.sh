#!/usr/bin/env bash
# COPY versus multi-row INSERT … ON CONFLICT for clipd's write batches, on both dev servers
# (Debian PostgreSQL with real[] vectors; PostgreSQL 16 + pgvector with HNSW indexes), in a
# release build. Both methods run interleaved in one process per server, so the ratio is fair.
#   Benchmarks/pg_writes.sh [ROWS_PER_METHOD] [BATCH...]
set -euo pipefail
source "$(dirname "$0")/common.sh"
rows="${1:-4096}"; shift || true
batches=("${@:-64 512}")
plain="$(bash Deploy/dev/postgres.sh)"
vector="$(bash Deploy/dev/postgres.sh --pgvector)"
bench_build PostgresWritesBench
bench="$bench_bin/PostgresWritesBench"
bench_machine
for batch in ${batches[*]}; do
  "$bench" "$plain" --rows "$rows" --batch "$batch" --label postgres15
  "$bench" "$vector" --rows "$rows" --batch "$batch" --label postgres16-pgvector
done
