#!/usr/bin/env bash
# Latency of /healthz and /metrics probes while 200 idle and 20 slow-loris connections (one
# header byte per second) are open, against the same probes unloaded in the same run.
#
#   bash Benchmarks/http_health.sh [IDLE] [SLOW] [PROBES]
#   CLIPD=/path/to/clipd bash Benchmarks/http_health.sh      # another build (e.g. before a change)
#
# The daemon runs with a database it cannot reach (127.0.0.1:1): the endpoint serves while
# PostgreSQL is retried, so no Kafka or PostgreSQL is needed. Probes time out after 3 s (a
# Kubernetes probe's timeoutSeconds); a probe that fails counts under "failed".
set -euo pipefail
source "$(dirname "$0")/common.sh"
root="$(pwd)"
idle="${1:-200}"; slow="${2:-20}"; n="${3:-50}"
if [ -n "${CLIPD:-}" ]; then clipd="$CLIPD"; else bench_build clipd; clipd="$root/$bench_bin/clipd"; fi
bench_machine
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work="$(mktemp -d /tmp/clipd-http.XXXXXX)"
"$clipd" run --brokers 127.0.0.1:1 --database-url "postgres://clipd@127.0.0.1:1/none?connect_timeout=1" \
    --model "$root/Tests/Fixtures/models/tiny/openai_format.safetensors" --http-host 127.0.0.1 --http-port "$port" 2> "$work/daemon.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), timeout=1).close()" 2>/dev/null && break
    sleep 0.1
done
echo "clipd: $clipd; endpoint 127.0.0.1:$port; idle $idle, slow-loris $slow, probes $n"
python3 Benchmarks/http_health.py "$port" --idle "$idle" --slow "$slow" --probes "$n"
