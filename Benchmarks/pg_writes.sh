#!/usr/bin/env bash
# clipd's batched PostgreSQL writes on both dev servers (Debian PostgreSQL 15 with real[] vectors;
# PostgreSQL 16 + pgvector), in a release build.
#
# Default (layouts): the vector layout of migrations 0001–0004 ("old") against the current one
# ("new") and the current one with the caption index requested ("new+text"), batches interleaved
# in one process per server, then recall@10 of clipd_nearest against exact search over the stored
# vectors (clustered, CLIP-like; see Benchmarks/PostgresWrites/main.swift).
# PG_WRITES_MODE=methods: binary COPY through staging vs multi-row INSERT instead.
#   Benchmarks/pg_writes.sh [ROWS] [BATCH...]         (defaults: 10240 rows, batch 64)
set -euo pipefail
source "$(dirname "$0")/common.sh"
mode="${PG_WRITES_MODE:-layouts}"
rows="${1:-10240}"; shift || true
batches=("${@:-64}")
plain="$(bash Deploy/dev/postgres.sh)"
vector="$(bash Deploy/dev/postgres.sh --pgvector)"
bench_build PostgresWritesBench
bench="$bench_bin/PostgresWritesBench"
bench_machine
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for batch in ${batches[*]}; do
  # real[] search is an exact scan (recall 1 by construction, ~2 s per query at 10k rows on this machine): 5 queries.
  "$bench" "$vector" --mode "$mode" --rows "$rows" --batch "$batch" --label postgres16-pgvector
  "$bench" "$plain" --mode "$mode" --rows "$rows" --batch "$batch" --queries 5 --label postgres15
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
