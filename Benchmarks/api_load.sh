#!/usr/bin/env bash
# Does the HTTP API starve the stream? The daemon consumes RECORDS demo records (the demo model,
# Deploy/demo) twice per round, interleaved: once alone, once while CLIENTS clients call
# POST /v1/embeddings (4 texts + 1 image URL per request) and GET /v1/search back to back.
# API model work runs on the pipeline's encoder thread, one API job at a time, so a live batch
# waits behind at most one API job. Prints, per run, the stream's records/s (first to last
# record written, from `records.received_at`) and the API's requests/s and latency percentiles.
#
#   bash Benchmarks/api_load.sh [RECORDS] [ROUNDS]      # defaults 2000, 2; CLIENTS=4
#   CLIPD=/path/to/clipd bash Benchmarks/api_load.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
root="$(pwd)"
records="${1:-2000}"
rounds="${2:-2}"
clients="${CLIENTS:-4}"
if [ -n "${CLIPD:-}" ]; then clipd="$CLIPD"; else bench_build clipd; clipd="$root/$bench_bin/clipd"; fi
bench_machine
echo "clipd: $clipd; records: $records; rounds: $rounds; API clients: $clients; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
work="$(mktemp -d /tmp/clipd-api-load.XXXXXX)"
samples="$root/Deploy/demo/samples"
model="$root/Deploy/demo/model/clipd-shapes.safetensors"

admin_url="$(bash Deploy/dev/postgres.sh 2>/dev/null | tail -1)"
"$clipd" dev-broker --partitions 4 --topic load > "$work/broker.out" 2> "$work/broker.log" &
broker=$!
daemon=""
db=""
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null || true
    kill "$broker" 2>/dev/null || true
    [ -n "$db" ] && psql "$admin_url" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
brokers="$(head -1 "$work/broker.out")"

python3 - "$samples" "$records" > "$work/records.jsonl" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
pictures = sorted(f for f in os.listdir(d) if f.endswith(".jpg") and not f.startswith("bad-"))
for i in range(n):
    name = pictures[i % len(pictures)]
    print(json.dumps({"id": f"r{i}", "image_url": f"file://{d}/{name}", "caption": "a " + " ".join(name.split("-")[1::-1])}))
PY
"$clipd" publish --brokers "$brokers" --topic load "$work/records.jsonl" >/dev/null

# The API clients: each loops embeddings / search until the stop file appears.
cat > "$work/clients.py" <<'PY'
import http.client, json, os, sys, threading, time
port, clients, stop, samples = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
latencies, errors, lock = [], [0], threading.Lock()
body = json.dumps({"input": ["a red circle", "a small blue square", "a green cross", "a large yellow triangle",
                             {"image_url": f"file://{samples}/red-circle-large-right-0.jpg"}]})
def client(k):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = 0
    while not os.path.exists(stop):
        t = time.perf_counter()
        try:
            if i % 2 == 0:
                c.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            else:
                c.request("GET", "/v1/search?text=a+red+circle&limit=10")
            r = c.getresponse(); r.read()
            ok = r.status == 200
        except Exception:
            ok = False
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        with lock:
            if ok: latencies.append(time.perf_counter() - t)
            else: errors[0] += 1
        if not ok: time.sleep(0.2)
        i += 1
start = time.perf_counter()
threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.perf_counter() - start
latencies.sort()
q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")
print(json.dumps({"api_requests": len(latencies), "api_errors": errors[0], "api_per_s": len(latencies) / elapsed,
                  "api_p50_ms": q(0.5), "api_p99_ms": q(0.99)}))
PY

run_once() {  # $1: label, $2: with API clients (0|1)
    db="clipd_api_load_$$_$RANDOM"
    psql "$admin_url" -qAt -c "CREATE DATABASE $db" >/dev/null
    local db_url="${admin_url/\/postgres\?/\/$db?}"
    "$clipd" migrate --database-url "$db_url" >/dev/null 2>&1
    "$clipd" labels put --database-url "$db_url" shapes --templates simple circle square triangle cross >/dev/null 2>&1
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$clipd" run --brokers "$brokers" --topic load --group "g$db" --database-url "$db_url" --model "$model" --label-set shapes \
        --allow-file-root "$samples" --http-port "$port" --http-host 127.0.0.1 --progress-interval-seconds 5 --stop-when-idle 3 \
        2> "$work/daemon-$1.log" &
    daemon=$!
    local api="{}"
    if [ "$2" = 1 ]; then
        for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/v1/status" >/dev/null 2>&1 && break; sleep 0.1; done
        rm -f "$work/stop"
        python3 "$work/clients.py" "$port" "$clients" "$work/stop" "$samples" > "$work/api-$1.json" &
        local clients_pid=$!
        # The clients stop once the stream is done (not while the daemon drains and exits).
        until [ "$(psql "$db_url" -qAt -c "SELECT count(*) FROM records" 2>/dev/null || echo 0)" -ge "$records" ] || ! kill -0 "$daemon" 2>/dev/null; do
            sleep 0.5
        done
        touch "$work/stop"
    fi
    wait "$daemon" || { tail -20 "$work/daemon-$1.log" >&2; exit 1; }
    daemon=""
    if [ "$2" = 1 ]; then wait "$clients_pid"; api="$(cat "$work/api-$1.json")"; fi
    local stream
    stream=$(psql "$db_url" -qAt -c "SELECT count(*), extract(epoch FROM max(received_at) - min(received_at)) FROM records")
    python3 -c 'import json,sys; n, s = sys.argv[2].split("|"); d = json.loads(sys.argv[3]); d.update(run=sys.argv[1], records=int(n), seconds=float(s), records_per_s=int(n) / float(s)); print(json.dumps(d))' \
        "$1" "$stream" "$api" | tee -a "$work/results.jsonl"
    psql "$admin_url" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    db=""
}

for round in $(seq "$rounds"); do
    run_once "alone-$round" 0
    run_once "with-api-$round" 1
done
python3 - "$work/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
alone = [r["records_per_s"] for r in rows if r["run"].startswith("alone")]
loaded = [r["records_per_s"] for r in rows if r["run"].startswith("with-api")]
api = [r for r in rows if r["run"].startswith("with-api")]
print(f"stream records/s alone: {[round(x, 1) for x in alone]}, with API load: {[round(x, 1) for x in loaded]}; "
      f"ratio of medians {statistics.median(loaded) / statistics.median(alone):.2f}")
print("API under stream: " + "; ".join(f"{r['api_per_s']:.1f} req/s, p50 {r['api_p50_ms']:.0f} ms, p99 {r['api_p99_ms']:.0f} ms, {r['api_errors']} errors" for r in api))
PY
