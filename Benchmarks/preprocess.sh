#!/usr/bin/env bash
# Decode + preprocess throughput on ONE core: clipd (release) vs Pillow, same photos, same run.
# Also reports how far the optional DCT-domain fast path (--fast-dct) is from the exact path.
# Needs: python3 with pillow and numpy (pip install pillow numpy); PYTHON=... to choose one.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN="${SECONDS_PER_RUN:-5}"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c "import PIL, numpy" 2>/dev/null; then
    echo "error: $PYTHON lacks pillow/numpy (pip install pillow numpy, or set PYTHON=)" >&2
    exit 1
fi

swift build -c release --product clipd --scratch-path .build-release >&2
CLIPD=.build-release/release/clipd
PHOTOS=(Tests/Fixtures/images/*.jpg)

# One core for both, one thread for numpy.
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c 0); fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

echo "photos: ${#PHOTOS[@]} fixture JPEGs, ${SECONDS_PER_RUN}s per measurement, pinned: ${PIN[*]:-no}"
pillow=$("${PIN[@]}" "$PYTHON" Benchmarks/pillow_preprocess.py "$SECONDS_PER_RUN" "${PHOTOS[@]}")
exact=$("${PIN[@]}" "$CLIPD" preprocess --bench-seconds "$SECONDS_PER_RUN" "${PHOTOS[@]}")
fast=$("${PIN[@]}" "$CLIPD" preprocess --fast-dct --bench-seconds "$SECONDS_PER_RUN" "${PHOTOS[@]}")

"$PYTHON" - "$pillow" "$exact" "$fast" <<'PY'
import json, sys
pillow, exact, fast = (json.loads(a)["images_per_second"] for a in sys.argv[1:4])
print(f"pillow            {pillow:9.1f} images/s")
print(f"clipd exact       {exact:9.1f} images/s   ratio vs pillow {exact / pillow:5.2f}x")
print(f"clipd --fast-dct  {fast:9.1f} images/s   ratio vs pillow {fast / pillow:5.2f}x")
PY

echo
echo "fast path (--fast-dct) vs exact path, normalised units (one uint8 level = 0.0146):"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for photo in "${PHOTOS[@]}"; do
    "$CLIPD" preprocess "$photo" --output "$tmp/exact.bin" >/dev/null
    summary=$("$CLIPD" preprocess --fast-dct "$photo" --output "$tmp/fast.bin")
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
