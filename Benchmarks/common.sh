# Sourced by every benchmark script: the repository root as the working directory, release
# builds into `.build`, and the machine line that every recorded result names.
#   source "$(dirname "$0")/common.sh"
#   bench_build clipd        # swift build -c release --product clipd (quietly)
#   bench_machine            # "machine: <CPU model>, <cores> cores, <avx512f|avx2|…>, BLAS <kernel>"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bench_bin=".build/release"

bench_build() {
    swift build -c release --product "${1:-clipd}" 2>&1 | tail -1 >&2
}

bench_machine() {
    local cpu simd blas=""
    cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    simd="$(grep -o -w -m1 -E 'avx512f' /proc/cpuinfo | head -1)"
    [ -n "$simd" ] || simd="$(grep -o -w -m1 -E 'avx2' /proc/cpuinfo | head -1)"
    if [ -x "$bench_bin/clipd" ]; then
        blas="$("$bench_bin/clipd" blas-check 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["blas_kernel"])' 2>/dev/null || true)"
    fi
    echo "machine: ${cpu:-unknown CPU}, $(nproc) cores, ${simd:-no AVX2}${blas:+, BLAS $blas}, $(date -u +%Y-%m-%d)"
}
