#!/usr/bin/env bash
# clipd's main job end to end on embedded defaults, on a fresh Debian machine with Swift:
# a local PostgreSQL, the Kafka-protocol dev broker (librdkafka's mock cluster), the bundled
# sample images and captions, `clipd migrate`, a label set, `clipd publish`, `clipd run` until
# the sample is processed, then tags per image and a text search.
#
#   bash Deploy/dev/demo.sh            # uses Deploy/demo/model/clipd-shapes.safetensors
#   CLIPD_DEMO_MODEL=/path/to/hf-clip-dir bash Deploy/dev/demo.sh   # real CLIP weights
#   bash Deploy/dev/demo.sh --serve 8080   # then keep serving the HTTP API and web page on :8080
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$(pwd)"
serve_port=""
if [ "${1:-}" = "--serve" ]; then
  serve_port="${2:-8080}"
  case "$serve_port" in (*[!0-9]*|"") echo "usage: demo.sh [--serve PORT]" >&2; exit 2;; esac
fi

bash Deploy/dev/install-deps.sh
echo "== building clipd (release)" >&2
swift build -c release 2>&1 | tail -1 >&2
clipd="$root/.build/release/clipd"

model="${CLIPD_DEMO_MODEL:-$root/Deploy/demo/model/clipd-shapes.safetensors}"
if [ ! -e "$model" ]; then
  model="$root/Tests/Fixtures/models/tiny/openai_format.safetensors"
  echo "!! NOTE: no trained demo model found; using a RANDOM-WEIGHT test model, so tags are meaningless" >&2
fi

echo "== starting PostgreSQL" >&2
admin_url="$(bash Deploy/dev/postgres.sh)"
psql_admin() { psql "$admin_url" -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_admin -c "DROP DATABASE IF EXISTS clipd_demo WITH (FORCE)" -c "CREATE DATABASE clipd_demo"
db_url="${admin_url/\/postgres\?/\/clipd_demo?}"

echo "== starting the dev broker" >&2
work="$(mktemp -d /tmp/clipd-demo.XXXXXX)"
"$clipd" dev-broker --partitions 3 --topic clipd.records > "$work/broker.out" 2> "$work/broker.log" &
broker_pid=$!
trap 'kill $broker_pid 2>/dev/null || true; wait $broker_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
brokers="$(head -1 "$work/broker.out")"
[ -n "$brokers" ] || { echo "dev broker did not start; see $work/broker.log" >&2; exit 1; }
echo "   bootstrap $brokers" >&2

echo "== migrating and creating the label sets" >&2
"$clipd" migrate --database-url "$db_url" >&2
# Deploy/demo/labels.json: {"default_label_set": NAME, "label_sets": [{"name", "templates", "labels"}]}
python3 - "$root/Deploy/demo/labels.json" "$work" > "$work/labels.tsv" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
for s in spec["label_sets"]:
    path = f"{sys.argv[2]}/{s['name']}.templates.json"
    json.dump(s["templates"], open(path, "w"))
    print("\t".join([s["name"], path] + s["labels"]))
print("\t".join(["#default", spec["default_label_set"]]))
PY
default_set=colours
while IFS=$'\t' read -r name templates labels; do
  if [ "$name" = "#default" ]; then default_set="$templates"; continue; fi
  IFS=$'\t' read -r -a label_array <<< "$labels"
  "$clipd" labels put --database-url "$db_url" "$name" --templates "$templates" "${label_array[@]}" >&2
done < "$work/labels.tsv"

echo "== publishing the sample records" >&2
sed "s#{{SAMPLES_URL}}#file://$root/Deploy/demo/samples#g" Deploy/demo/samples/records.jsonl > "$work/records.jsonl"
"$clipd" publish --brokers "$brokers" --topic clipd.records "$work/records.jsonl" || true   # invalid lines are part of the demo

echo "== running the daemon until the sample is processed" >&2
"$clipd" run --brokers "$brokers" --topic clipd.records --group clipd-demo --database-url "$db_url" \
  --model "$model" --label-set "$default_set" --allow-file-root "$root/Deploy/demo/samples" \
  --http-port 0 --batch-latency-ms 100 --progress-interval-seconds 2 --stop-when-idle 4

echo "== tags per image (top 2 per label set)" >&2
psql "$db_url" -qAt -F ' | ' -c "
  SELECT r.id, coalesce(r.caption, ''), t.label_set, string_agg(t.label || ' ' || round(t.score::numeric, 2), ', ' ORDER BY t.rank)
  FROM records r JOIN latest_tags t ON t.record_id = r.id WHERE t.rank <= 2
  GROUP BY r.id, r.caption, t.label_set ORDER BY r.id"
echo "== dead letters" >&2
psql "$db_url" -qAt -F ' | ' -c "SELECT coalesce(record_id, '?'), error_class, left(error_message, 60) FROM failed_records ORDER BY source_partition, source_offset"
echo "== search: \"a large red circle\"" >&2
"$clipd" search --database-url "$db_url" --text "a large red circle" --limit 3

if [ -n "$serve_port" ]; then
  echo "== serving the HTTP API and the web page: http://localhost:$serve_port/  (Ctrl-C stops)" >&2
  echo "   curl 'localhost:$serve_port/v1/search?text=a%20red%20circle&limit=5'" >&2
  "$clipd" serve --database-url "$db_url" --http-port "$serve_port" --allow-file-root "$root/Deploy/demo/samples" || true
fi
