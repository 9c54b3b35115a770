#!/usr/bin/env bash
# clipd's inference engine (packed GEMM kernels) against onnxruntime and torch, fp32 on the CPU,
# on the same random ViT-B/32 weights (clipd saves them; open_clip loads them and exports ONNX).
# One invocation interleaves the engines: each round runs clipd, then the baselines, for vision
# at batch 1, 8 and 32, then text (batch 8) at 77 and 15 tokens. Every engine gets THREADS threads.
#
#   Benchmarks/engine_vs_onnxruntime.sh        # ROUNDS=3 SECONDS_PER_RUN=3 THREADS=2 KERNEL=auto
#   KERNEL=avx2 Benchmarks/engine_vs_onnxruntime.sh   # force a kernel family (auto|avx512|avx2|portable|blas)
#
# Needs python3 with venv and pip (PyPI): the venv goes to .build-bench/venv (VENV= to reuse one).
# CLIPD=path/to/release/clipd skips the build and uses that binary.
source "$(dirname "$0")/common.sh"

ROUNDS="${ROUNDS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-3}"
THREADS="${THREADS:-2}"
KERNEL="${KERNEL:-auto}"
VENV="${VENV:-.build-bench/venv}"
work=".build-bench/engine"
mkdir -p "$work"

if [ -n "${CLIPD:-}" ]; then clipd="$CLIPD"; else bench_build clipd; clipd="$bench_bin/clipd"; fi
bench_machine
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, open_clip, onnx, onnxruntime' 2>/dev/null; then
    echo "creating $VENV (torch, open_clip_torch, onnx, onnxruntime)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch open_clip_torch onnx onnxruntime >&2
fi
py="$VENV/bin/python"
"$py" -c 'import torch, onnxruntime, open_clip; print("baseline: torch", torch.__version__, "onnxruntime", onnxruntime.__version__, "open_clip", open_clip.__version__)'
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"

weights="$work/vit-b-32.safetensors"
[ -f "$weights" ] || "$clipd" bench --arch ViT-B-32 --save-model "$weights" >/dev/null
[ -f "$work/vision.onnx" ] && [ -f "$work/text.onnx" ] || "$py" Benchmarks/engine_baseline.py export "$weights" "$work" >&2

log="$work/results.jsonl"
: > "$log"
for round in $(seq "$ROUNDS"); do
    for batch in 1 8 32; do
        OPENBLAS_NUM_THREADS="$THREADS" "$clipd" bench --model "$weights" --batch "$batch" --seconds "$SECONDS_PER_RUN" \
            --threads "$THREADS" --kernel "$KERNEL" 2>/dev/null \
            | "$py" -c 'import json,sys; r=json.loads(sys.stdin.read()); r.update(engine="clipd", round=int(sys.argv[1])); print(json.dumps(r))' "$round" \
            | tee -a "$log"
        "$py" Benchmarks/engine_baseline.py time "$weights" "$work" vision "$batch" "$SECONDS_PER_RUN" "$THREADS" \
            | "$py" -c 'import json,sys; [print(json.dumps(dict(json.loads(l), round=int(sys.argv[1])))) for l in sys.stdin]' "$round" | tee -a "$log"
    done
    for what in text77 text15; do
        "$py" Benchmarks/engine_baseline.py time "$weights" "$work" "$what" 8 "$SECONDS_PER_RUN" "$THREADS" \
            | "$py" -c 'import json,sys; [print(json.dumps(dict(json.loads(l), round=int(sys.argv[1])))) for l in sys.stdin]' "$round" | tee -a "$log"
    done
done

# One table: per round the rates, then the median over rounds and clipd's ratio to onnxruntime.
"$py" - "$log" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
table = {}  # (what, batch) -> engine -> [rates by round]
kernel = "?"
for r in rows:
    if r["engine"] == "clipd":
        kernel = r["inference_kernel"]
        table.setdefault(("vision", r["batch"]), {}).setdefault("clipd", []).append(r["images_per_s"])
        table.setdefault(("vision", r["batch"]), {}).setdefault("clipd OpenBLAS path", []).append(r.get("images_per_s_blas_path", float("nan")))
        if r["batch"] == 8:
            table.setdefault(("text77", 8), {}).setdefault("clipd", []).append(r["texts_per_s_full_77"])
            typical = [v for k, v in r.items() if k.startswith("texts_per_s_typical_")][0]
            table.setdefault(("text15", 8), {}).setdefault("clipd", []).append(typical)
    else:
        table.setdefault((r["what"], r["batch"]), {}).setdefault(r["engine"], []).append(r["per_s"])
print(f"\nclipd kernel: {kernel}; rates per second, median of rounds [per-round values]")
print(f"{'what':8} {'batch':>5} | {'clipd':>22} | {'clipd OpenBLAS path':>22} | {'onnxruntime':>22} | {'torch':>22} | clipd/ort")
for (what, batch), engines in sorted(table.items()):
    def cell(e):
        v = engines.get(e)
        return f"{statistics.median(v):7.2f} [{' '.join(f'{x:.1f}' for x in v)}]" if v else "—"
    ratio = statistics.median(engines["clipd"]) / statistics.median(engines["onnxruntime"]) if "clipd" in engines and "onnxruntime" in engines else float("nan")
    print(f"{what:8} {batch:>5} | {cell('clipd'):>22} | {cell('clipd OpenBLAS path'):>22} | {cell('onnxruntime'):>22} | {cell('torch'):>22} | {ratio:.2f}")
PY
