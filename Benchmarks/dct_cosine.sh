#!/usr/bin/env bash
# Embedding cosine of the DCT-domain fast decode path (`--fast-dct`: libjpeg downscales by 1/2,
# 1/4 or 1/8 while the shortest side stays >= 2*S) against the exact Pillow-identical path, on
# the fixture photos, with a ViT-B/32-shaped model initialised as open_clip does (random but
# image-discriminative). For scale, the cosine between different pictures is printed too.
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_build clipd
clipd="$bench_bin/clipd"
bench_machine
work="$(mktemp -d /tmp/clipd-dct.XXXXXX)"
"$clipd" bench --arch ViT-B-32 --initialization open_clip --save-model "$work/model.safetensors" >/dev/null 2>&1
images=(Tests/Fixtures/images/*.jpg)
args=(); for f in "${images[@]}"; do args+=(--image "$f"); done
"$clipd" embed --model "$work/model.safetensors" "${args[@]}" > "$work/exact.jsonl" 2>/dev/null
"$clipd" embed --model "$work/model.safetensors" --fast-dct "${args[@]}" > "$work/fast.jsonl" 2>/dev/null
python3 - "$work/exact.jsonl" "$work/fast.jsonl" <<'PY'
import json, sys
load = lambda p: [json.loads(l) for l in open(p)]
exact, fast = load(sys.argv[1]), load(sys.argv[2])
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
rows = []
for e, f in zip(exact, fast):
    rows.append((e["input"].split("/")[-1], dot(e["embedding"], f["embedding"])))
others = [dot(a["embedding"], b["embedding"]) for i, a in enumerate(exact) for b in exact[i + 1:]]
for name, c in rows: print(f"{name:40s} cosine(exact, fast-dct) = {c:.6f}")
print(f"different pictures: cosine mean {sum(others)/len(others):.4f}, max {max(others):.4f}")
print(json.dumps({"min_cosine_fast_vs_exact": round(min(c for _, c in rows), 6), "max_cosine_between_pictures": round(max(others), 4)}))
PY
