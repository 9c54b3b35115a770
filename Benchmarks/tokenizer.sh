#!/usr/bin/env bash
# Captions per second on ONE core: clipd's tokenizer vs Hugging Face `tokenizers` (Rust), same
# captions, same run. Usage: Benchmarks/tokenizer.sh [seconds per measurement, default 5]
set -euo pipefail
source "$(dirname "$0")/common.sh"
SECONDS_PER_RUN="${1:-5}"
WORK=.build-bench
mkdir -p "$WORK"

bench_build clipd
CLIPD="$bench_bin/clipd"
bench_machine

if [ ! -x "$WORK/venv/bin/python" ]; then python3 -m venv "$WORK/venv"; fi
"$WORK/venv/bin/python" -c "import tokenizers" 2>/dev/null || "$WORK/venv/bin/pip" install -q "tokenizers==0.23.3"

python3 Benchmarks/make_captions.py Tests/Fixtures/tokenizer/tokens.json > "$WORK/captions.jsonl"
"$CLIPD" tokenize < "$WORK/captions.jsonl" > "$WORK/clipd_ids.jsonl"
echo "captions: $(wc -l < "$WORK/captions.jsonl") (62 fixture captions + 2,000 generated)"

# One core for both: pinned to CPU 0 where taskset exists, single-threaded in any case.
PIN=(); command -v taskset >/dev/null && PIN=(taskset -c 0)
# clipd runs before and after the baseline so that load drift on a shared machine evens out.
CLIPD_BEFORE="$("${PIN[@]}" "$CLIPD" tokenize --bench-seconds "$SECONDS_PER_RUN" < "$WORK/captions.jsonl")"
HF_JSON="$(TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 "${PIN[@]}" "$WORK/venv/bin/python" Benchmarks/tokenizer_baseline.py \
  --vocab Sources/CLIPTokenizer/Resources/bpe_simple_vocab_16e6.txt.gz \
  --captions "$WORK/captions.jsonl" --clipd-ids "$WORK/clipd_ids.jsonl" --seconds "$SECONDS_PER_RUN")"
CLIPD_AFTER="$("${PIN[@]}" "$CLIPD" tokenize --bench-seconds "$SECONDS_PER_RUN" < "$WORK/captions.jsonl")"

python3 - "$CLIPD_BEFORE" "$CLIPD_AFTER" "$HF_JSON" <<'PY'
import json, sys
before, after, hf = (json.loads(a) for a in sys.argv[1:4])
ours = (before["captions_per_second"] + after["captions_per_second"]) / 2
best_hf = max(hf["hf_encode_per_second"], hf["hf_encode_batch_per_second"], hf["hf_encode_batch_fast_per_second"])
print(f"clipd tokenize (Swift, 1 thread):        {ours:>12,.0f} captions/s "
      f"(before/after HF: {before['captions_per_second']:,.0f} / {after['captions_per_second']:,.0f})")
print(f"HF tokenizers encode() one by one:       {hf['hf_encode_per_second']:>12,.0f} captions/s")
print(f"HF tokenizers encode_batch (1 thread):   {hf['hf_encode_batch_per_second']:>12,.0f} captions/s")
print(f"HF tokenizers encode_batch_fast:         {hf['hf_encode_batch_fast_per_second']:>12,.0f} captions/s")
print(f"ratio clipd / best HF:                   {ours / best_hf:>12.2f}x")
print("note: clipd also runs ftfy's mojibake/HTML/quote/width/control repair that HF skips")
PY
