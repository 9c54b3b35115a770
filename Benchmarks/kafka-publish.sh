#!/usr/bin/env bash
# Publishing throughput: `clipd publish` against `clipd dev-broker`, with librdkafka's own
# producer driven from Python (confluent-kafka, if installed) on the same broker and input as
# the same-run baseline. Usage: Benchmarks/kafka-publish.sh [RECORDS] [CLIPD]
source "$(dirname "$0")/common.sh"
records=${1:-200000}
if [ -n "${2:-}" ]; then clipd="$2"; else bench_build clipd; clipd="$bench_bin/clipd"; fi
bench_machine
work=$(mktemp -d)
trap 'kill "$broker" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$records" > "$work/records.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"r{i}", "image_url": f"https://example.com/images/{i}.jpg",
                      "caption": f"a photo of thing number {i}", "metadata": {"n": i}}))
PY

"$clipd" dev-broker --brokers 3 --partitions 6 --topic bench --topic baseline > "$work/broker.out" 2>/dev/null &
broker=$!
until [ -s "$work/broker.out" ]; do sleep 0.1; done
bootstrap=$(head -1 "$work/broker.out")

start=$(date +%s.%N)
"$clipd" publish --brokers "$bootstrap" --topic bench "$work/records.jsonl" > "$work/publish.out"
clipd_seconds=$(echo "$(date +%s.%N) - $start" | bc)
echo "clipd publish: $(cat "$work/publish.out") in ${clipd_seconds}s = $(echo "$records / $clipd_seconds" | bc) records/s (validation included)"

if python3 -c "import confluent_kafka" 2>/dev/null; then
python3 - "$bootstrap" "$work/records.jsonl" <<'PY'
import json, sys, time
from confluent_kafka import Producer
bootstrap, path = sys.argv[1], sys.argv[2]
lines = open(path, "rb").read().splitlines()
producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
delivered = 0
def report(error, message):
    global delivered
    if error is None: delivered += 1
start = time.time()
for line in lines:
    key = json.loads(line).get("id")
    while True:
        try:
            producer.produce("baseline", line, key=key, on_delivery=report); break
        except BufferError:
            producer.poll(0.01)
    producer.poll(0)
producer.flush()
seconds = time.time() - start
print(f"python confluent-kafka (json.loads for the key, no schema validation): {delivered} delivered in {seconds:.2f}s = {int(len(lines) / seconds)} records/s")
PY
fi
