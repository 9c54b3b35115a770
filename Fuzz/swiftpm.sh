#!/usr/bin/env bash
# Builds and runs the libFuzzer targets that SwiftPM builds (they need package dependencies such
# as swift-nio): FuzzHTTP (Fuzz/Targets/http.swift), FuzzTokenizer (Fuzz/Targets/tokenizer.swift) and
# FuzzAPI (Fuzz/Targets/api.swift: the HTTP API's request validation),
# with AddressSanitizer.
#   Fuzz/swiftpm.sh TARGET SECONDS [extra libFuzzer flags...]     TARGET: http | tokenizer | api
#   Fuzz/swiftpm.sh build TARGET
# CLIPD_FUZZ=1 makes Package.swift declare the Fuzz* executables (libFuzzer provides `main`).
# Work files go to Fuzz/.work/ (ignored by git): the build in .work/swiftpm-build, the corpus in
# .work/corpus/<target>, crashes in .work/crashes/<target>.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${FUZZ_WORK:-$ROOT/Fuzz/.work}"
product() { case "$1" in http) echo FuzzHTTP ;; tokenizer) echo FuzzTokenizer ;; api) echo FuzzAPI ;; *) echo "unknown target $1" >&2; exit 2 ;; esac; }

build() {
    local p; p="$(product "$1")"
    (cd "$ROOT" && CLIPD_FUZZ=1 swift build --scratch-path "$WORK/swiftpm-build" --product "$p" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xcc -fsanitize=fuzzer-no-link,address >&2)
    echo "$WORK/swiftpm-build/debug/$p"
}

seed() {
    local target="$1" corpus="$2"
    mkdir -p "$corpus"
    case "$target" in
        http)
            printf '\x05GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' > "$corpus/healthz"
            printf '\x1fGET /metrics?name[]=a&b=%%zz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\nHEAD /readyz HTTP/1.0\r\n\r\n' > "$corpus/pipelined"
            printf '\x02POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' > "$corpus/post"
            printf '\x07GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' > "$corpus/chunked"
            printf '\x03GET http://h/%%2e%%2e/healthz#f HTTP/1.1\r\n\r\n' > "$corpus/absolute"
            ;;
        api)
            printf '\x01text=a+red+circle&limit=5' > "$corpus/search"
            printf '\x0a\x00{"input": ["a", {"image_url": "file:///x.jpg"}], "encoding_format": "base64"}' > "$corpus/embeddings"
            printf '\x0b\x00{"image_url": "https://h/a.jpg", "labels": ["cat", "dog"], "templates": ["a {}"], "top_k": 1}' > "$corpus/classify"
            printf '\x01image_url=http%%3A%%2F%%2Fh%%2Fa.jpg' > "$corpus/image-search"
            ;;
        tokenizer)
            python3 - "$ROOT/Tests/Fixtures/tokenizer/tokens.json" "$corpus" <<'PY'
import hashlib, json, os, sys
doc = json.load(open(sys.argv[1]))
cases = doc if isinstance(doc, list) else next(v for v in doc.values() if isinstance(v, list) and v and isinstance(v[0], dict))
for i, c in enumerate(cases):
    data = bytes([77 // 2 - 1 + (64 if i % 5 == 0 else 0)]) + c["text"].encode("utf-8", "surrogatepass")
    open(os.path.join(sys.argv[2], hashlib.sha1(data).hexdigest()), "wb").write(data)
open(os.path.join(sys.argv[2], "invalid-utf8"), "wb").write(b"\x26\xff\xfe a \xc3\x28 photo \xe2\x82 of \xf0\x9f\x98")
PY
            ;;
    esac
}

if [ "${1:-}" = build ]; then build "$2"; exit 0; fi
target="$1" seconds="$2"; shift 2
bin="$(build "$target" | tail -1)"
corpus="$WORK/corpus/$target" crashes="$WORK/crashes/$target"
mkdir -p "$crashes"
seed "$target" "$corpus"
echo "== $target for ${seconds}s ($(date -u +%H:%M:%S))"
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}" \
"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -max_len="${FUZZ_MAX_LEN:-65536}" -artifact_prefix="$crashes/" -print_final_stats=1 "$@" "$corpus"
