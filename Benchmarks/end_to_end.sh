#!/usr/bin/env bash
# End-to-end throughput of `clipd run` (Kafka → fetch/decode → CLIP → PostgreSQL) against the
# model alone (`clipd bench`) in the same run, on a ViT-B/32-shaped model with random weights.
#
#   bash Benchmarks/end_to_end.sh [RECORDS] [BATCH]
#
# Records are image-URL + caption pairs over the fixture photos (file:// URLs, 512–2162 px
# JPEGs) with captions of typical length. The model-alone rate for a record is one image plus
# one caption: 1 / (1/images_per_s + 1/texts_per_s_typical).
set -euo pipefail
source "$(dirname "$0")/common.sh"
root="$(pwd)"
records="${1:-400}"
batch="${2:-16}"
bench_build clipd
clipd="$root/$bench_bin/clipd"
bench_machine
work="$(mktemp -d /tmp/clipd-e2e.XXXXXX)"
model="$work/vit-b-32-random.safetensors"
"$clipd" bench --arch ViT-B-32 --save-model "$model" >/dev/null 2>&1

admin_url="$(bash Deploy/dev/postgres.sh 2>/dev/null)"
psql "$admin_url" -qAt -c "DROP DATABASE IF EXISTS clipd_e2e WITH (FORCE)" -c "CREATE DATABASE clipd_e2e"
db_url="${admin_url/\/postgres\?/\/clipd_e2e?}"
"$clipd" migrate --database-url "$db_url" >/dev/null 2>&1
"$clipd" labels put --database-url "$db_url" default --templates simple cat dog astronaut rocket coffee flower motorcycle >/dev/null 2>&1

"$clipd" dev-broker --partitions 4 --topic e2e > "$work/broker.out" 2> "$work/broker.log" &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
brokers="$(head -1 "$work/broker.out")"

python3 - "$root/Tests/Fixtures/images" "$records" > "$work/records.jsonl" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
photos = sorted(f for f in os.listdir(d) if f.endswith(".jpg"))
words = "a photo of a small dog sitting on a wooden bench in the park".split()
for i in range(n):
    cap = " ".join(words[: 6 + i % 7])
    print(json.dumps({"id": f"r{i}", "image_url": "file://" + os.path.join(d, photos[i % len(photos)]), "caption": cap}))
PY
"$clipd" publish --brokers "$brokers" --topic e2e "$work/records.jsonl" >/dev/null

start=$(date +%s.%N)
"$clipd" run --brokers "$brokers" --topic e2e --group e2e --database-url "$db_url" --model "$model" \
  --allow-file-root "$root/Tests/Fixtures/images" --http-port 0 --batch-size "$batch" --batch-latency-ms 200 \
  --max-in-flight $((batch * 16)) --progress-interval-seconds 5 --stop-when-idle 3 2> "$work/daemon.log"
written=$(psql "$db_url" -qAt -c "SELECT count(*) FROM embeddings")
# Throughput over the processing span: first to last write (excludes start-up and the idle wait).
span=$(psql "$db_url" -qAt -c "SELECT extract(epoch FROM max(created_at) - min(created_at)) FROM embeddings")
first_batch=$(psql "$db_url" -qAt -c "SELECT count(*) FROM embeddings WHERE created_at = (SELECT min(created_at) FROM embeddings)")
bench=$("$clipd" bench --model "$model" --batch "$batch" --seconds 6 2>/dev/null)
python3 - "$written" "$span" "$first_batch" "$bench" <<'PY'
import json, sys
written, span, first = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
b = json.loads(sys.argv[4])
typ = [k for k in b if k.startswith("texts_per_s_typical")][0]
alone = 1 / (1 / b["images_per_s"] + 1 / b[typ])
e2e = (written - first) / span if span > 0 else float("nan")
print(json.dumps({"records": written, "end_to_end_records_per_s": round(e2e, 3), "model_alone_records_per_s": round(alone, 3),
                  "ratio": round(e2e / alone, 3), "images_per_s": b["images_per_s"], typ: b[typ],
                  "blas_kernel": b["blas_kernel"], "batch": b["batch"]}))
PY
