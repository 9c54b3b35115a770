#!/usr/bin/env bash
# Memory, threads and file descriptors of `clipd run` over time, on real photos and a tiny model
# (decoding dominates): RSS, threads and open fds sampled from /proc every second, printed as a
# table over time and the peaks, the thread names at the peak, and RSS as the records written
# pass each quarter of the run (growth per record shows as a rising row at a steady rate).
#
#   bash Benchmarks/soak.sh [RECORDS] [-- extra `clipd run` flags…]
#   CLIPD=/path/to/clipd bash Benchmarks/soak.sh 3000     # measure another build (e.g. before a change)
#
# Records point at the fixture photos (Tests/Fixtures/images/*.jpg, 16 px to 2.7 MP, file:// URLs
# under --allow-file-root) with short captions; the daemon runs with default settings apart from
# the connection flags, and stops once idle (--stop-when-idle). PostgreSQL comes from
# Deploy/dev/postgres.sh, Kafka from `clipd dev-broker`.
set -euo pipefail
source "$(dirname "$0")/common.sh"
root="$(pwd)"
records="${1:-3000}"
shift || true
[ "${1:-}" = "--" ] && shift
extra=("$@")
if [ -n "${CLIPD:-}" ]; then
    clipd="$CLIPD"
else
    bench_build clipd
    clipd="$root/$bench_bin/clipd"
fi
bench_machine
echo "clipd: $clipd ($(stat -c '%y' "$clipd" | cut -d. -f1)); records: $records; extra flags: ${extra[*]:-none}"
work="$(mktemp -d /tmp/clipd-soak.XXXXXX)"

admin_url="$(bash Deploy/dev/postgres.sh 2>/dev/null | tail -1)"
db="clipd_soak_$$"
psql "$admin_url" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
db_url="${admin_url/\/postgres\?/\/$db?}"
[ "$db_url" != "$admin_url" ] || db_url="${admin_url%/*}/$db"
"$clipd" migrate --database-url "$db_url" >/dev/null 2>&1
"$clipd" labels put --database-url "$db_url" default --templates simple cat dog astronaut rocket coffee flower motorcycle >/dev/null 2>&1

"$clipd" dev-broker --partitions 4 --topic soak > "$work/broker.out" 2> "$work/broker.log" &
broker=$!
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null || true
    kill "$broker" 2>/dev/null || true
    psql "$admin_url" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
brokers="$(head -1 "$work/broker.out")"

python3 - "$root/Tests/Fixtures/images" "$records" > "$work/records.jsonl" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
photos = sorted(f for f in os.listdir(d) if f.endswith(".jpg"))
words = "a photo of a small dog sitting on a wooden bench in the park".split()
for i in range(n):
    print(json.dumps({"id": f"s{i}", "image_url": "file://" + os.path.join(d, photos[i % len(photos)]),
                      "caption": " ".join(words[: 4 + i % 9])}))
PY
"$clipd" publish --brokers "$brokers" --topic soak "$work/records.jsonl" >/dev/null

"$clipd" run --brokers "$brokers" --topic soak --group soak --database-url "$db_url" \
    --model "$root/Tests/Fixtures/models/tiny/openai_format.safetensors" --allow-file-root "$root/Tests/Fixtures/images" \
    --http-port 0 --progress-interval-seconds 5 --stop-when-idle 3 "${extra[@]}" 2> "$work/daemon.log" &
daemon=$!

# One line per second: elapsed s, RSS MB, threads, open fds, rows written so far (every 5 s).
printf '%6s %8s %8s %5s %8s\n' "t_s" "rss_mb" "threads" "fds" "written"
start=$(date +%s.%N); start_ns=$(date +%s%N)
peak_rss=0; peak_threads=0; peak_fds=0; peak_names=""; i=0
declare -a quarter=()
last_rss=0
while kill -0 "$daemon" 2>/dev/null; do
    status="/proc/$daemon/status"
    # One read of the status file per sample (no process started per value: under load that
    # stretched the 1 s period to 10 s and more).
    read -r rss hwm threads < <(awk '/^VmRSS:/ {r = int($2/1024)} /^VmHWM:/ {h = int($2/1024)} /^Threads:/ {t = $2}
                                     END {print r, h, t}' "$status" 2>/dev/null || true) || true
    # The daemon may exit between two reads: no read may end the script (set -e, pipefail).
    fds=$(ls "/proc/$daemon/fd" 2>/dev/null | wc -l || true)
    [ -n "$rss" ] && [ -n "$hwm" ] && [ -n "$threads" ] || break
    written="."
    if [ $((i % 5)) -eq 0 ]; then
        written=$(psql "$db_url" -qAt -c "SELECT count(*) FROM records" 2>/dev/null || echo "?")
        # RSS when the records written first reach each quarter of the run.
        for q in 1 2 3 4; do
            if [ -z "${quarter[$q]:-}" ] && [ "$written" != "?" ] && [ "$written" -ge $((records * q / 4)) ]; then
                quarter[$q]="$rss"
            fi
        done
    fi
    t=$(( ($(date +%s%N) - start_ns) / 1000000000 ))
    printf '%6s %8s %8s %5s %8s\n' "$t" "$rss" "$threads" "$fds" "$written"
    [ "$hwm" -gt "$peak_rss" ] && peak_rss=$hwm
    [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
    if [ "$threads" -gt "$peak_threads" ]; then
        peak_threads=$threads
        # Thread names at the peak (pool threads are numbered: clipd-fetch-3 counts as clipd-fetch-*).
        peak_names=$(cat /proc/"$daemon"/task/*/comm 2>/dev/null | sed -E 's/-[0-9]+$/-*/' | sort | uniq -c | sort -rn | awk '{printf "%s×%s ", $2, $1}' || true)
    fi
    [ "$fds" -gt "$peak_fds" ] && peak_fds=$fds
    last_rss=$rss
    i=$((i + 1))
    sleep 1
done
rc=0; wait "$daemon" || rc=$?
daemon=""
elapsed=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
written=$(psql "$db_url" -qAt -c "SELECT count(*) FROM records")
failed=$(psql "$db_url" -qAt -c "SELECT count(*) FROM failed_records")
echo "peak: rss_mb=$peak_rss (VmHWM) threads=$peak_threads fds=$peak_fds; records=$written failed=$failed of $records; exit=$rc; ${elapsed}s"
echo "threads at the peak: $peak_names"
echo "rss_mb as written reached 25/50/75/100%: ${quarter[1]:-?} ${quarter[2]:-?} ${quarter[3]:-?} ${quarter[4]:-?}; after the drain: $last_rss"
[ "$rc" -eq 0 ] || { tail -20 "$work/daemon.log" >&2; exit 1; }
