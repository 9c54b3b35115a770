#!/usr/bin/env bash
# Decode + preprocess throughput on ONE core: clipd (release) vs Pillow, same photos, same run.
# Also reports how far the optional DCT-domain fast path (--fast-dct) is from the exact path.
# Needs: python3 with pillow and numpy (pip install pillow numpy); PYTHON=... to choose one.
set -euo pipefail
source "$(dirname "$0")/common.sh"

SECONDS_PER_RUN="${SECONDS_PER_RUN:-3}"
ROUNDS="${ROUNDS:-3}"   # alternate the contenders; the best round of each counts (shared machines are noisy)
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import PIL, numpy" 2>/dev/null; then
    echo "error: $PYTHON lacks pillow/numpy (pip install pillow numpy, or set PYTHON=)" >&2
    exit 1
fi

bench_build clipd
CLIPD="$bench_bin/clipd"
bench_machine
PHOTOS=(Tests/Fixtures/images/*.jpg)

# One core for both, one thread for numpy.
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c 0); fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

echo "photos: ${#PHOTOS[@]} fixture JPEGs, ${ROUNDS} rounds x ${SECONDS_PER_RUN}s per contender, pinned: ${PIN[*]:-no}"
results=()
for _ in $(seq "$ROUNDS"); do
    results+=("pillow $("${PIN[@]}" "$PYTHON" Benchmarks/pillow_preprocess.py "$SECONDS_PER_RUN" "${PHOTOS[@]}")")
    results+=("exact $("${PIN[@]}" "$CLIPD" preprocess --bench-seconds "$SECONDS_PER_RUN" "${PHOTOS[@]}")")
    results+=("fast $("${PIN[@]}" "$CLIPD" preprocess --fast-dct --bench-seconds "$SECONDS_PER_RUN" "${PHOTOS[@]}")")
    results+=("fastmax $("${PIN[@]}" "$CLIPD" preprocess --fast-dct-max --bench-seconds "$SECONDS_PER_RUN" "${PHOTOS[@]}")")
done

"$PYTHON" - "${results[@]}" <<'PY'
import json, sys
# Throughput per CPU-second of the single thread (robust to other load on the machine);
# wall-clock throughput is printed per round for reference.
rounds = {}
for arg in sys.argv[1:]:
    name, text = arg.split(" ", 1)
    rounds.setdefault(name, []).append(json.loads(text))
for name, values in rounds.items():
    print(f"  rounds {name:7s} images/cpu-s", " ".join(f"{v['images_per_cpu_second']:8.1f}" for v in values),
          "  images/wall-s", " ".join(f"{v['images_per_second']:8.1f}" for v in values))
pillow, exact, fast, fastmax = (max(v["images_per_cpu_second"] for v in rounds[name])
                                 for name in ("pillow", "exact", "fast", "fastmax"))
print(f"pillow                {pillow:9.1f} images/s (one core)")
print(f"clipd exact           {exact:9.1f} images/s (one core)   ratio vs pillow {exact / pillow:5.2f}x")
print(f"clipd --fast-dct      {fast:9.1f} images/s (one core)   ratio vs pillow {fast / pillow:5.2f}x")
print(f"clipd --fast-dct-max  {fastmax:9.1f} images/s (one core)   ratio vs pillow {fastmax / pillow:5.2f}x")
# Ratios of the contenders measured back to back in the same round, median over rounds.
for name in ("exact", "fast", "fastmax"):
    paired = sorted(c["images_per_cpu_second"] / p["images_per_cpu_second"] for c, p in zip(rounds[name], rounds["pillow"]))
    print(f"  {name:7s} vs pillow per round: " + " ".join(f"{r:.2f}x" for r in paired) + f"   median {paired[len(paired) // 2]:.2f}x")
PY

echo
echo "fast paths vs exact path, normalised units (one uint8 level = 0.0146):"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for flag in --fast-dct --fast-dct-max; do
  echo " $flag"
  for photo in "${PHOTOS[@]}"; do
    "$CLIPD" preprocess "$photo" --output "$tmp/exact.bin" >/dev/null
    summary=$("$CLIPD" preprocess "$flag" "$photo" --output "$tmp/fast.bin")
    "$PYTHON" - "$photo" "$tmp/exact.bin" "$tmp/fast.bin" "$summary" <<'PY'
import json, sys
import numpy as np
photo, exact_path, fast_path, summary = sys.argv[1:5]
exact = np.fromfile(exact_path, dtype="<f4")
fast = np.fromfile(fast_path, dtype="<f4")
scale = json.loads(summary)["dct_scale"]
d = np.abs(exact - fast)
print(f"  {photo.rsplit('/', 1)[-1]:36s} dct 1/{scale}  max {d.max():.4f}  mean {d.mean():.5f}")
PY
  done
done
