#!/usr/bin/env bash
# The inference GEMM of two revisions side by side, on the GEMM shapes of ViT-B/32 (vision at
# batch 1, 8 and 32; text at batch 8 x 77 tokens): each revision's Sources/CKernels is compiled
# (clang -O3) with its exported names prefixed, both are linked into Benchmarks/GemmAB/gemm_ab.c
# and run call by call on the same data (see there). B's speed-up over A per shape, as the median
# over rounds of the paired time ratio, is robust to a noisy shared machine where rates alone
# are not.
#
#   Benchmarks/gemm_ab.sh REV_A [REV_B]     # REV_B: the working tree when omitted
#   KERNEL=1 THREADS=1 COPIES=40 ROUNDS=4 Benchmarks/gemm_ab.sh HEAD~3   # kernel: 0 portable, 1 avx2, 2 avx512, -1 best
source "$(dirname "$0")/common.sh"

[ $# -ge 1 ] || { echo "usage: $0 REV_A [REV_B]" >&2; exit 2; }
KERNEL="${KERNEL:--1}"
THREADS="${THREADS:-2}"
COPIES="${COPIES:-40}"
ROUNDS="${ROUNDS:-4}"
work=".build-bench/gemm_ab"
rm -rf "$work" && mkdir -p "$work/A" "$work/B"
git archive "$1" Sources/CKernels | tar -x -C "$work/A"
if [ $# -ge 2 ]; then git archive "$2" Sources/CKernels | tar -x -C "$work/B"; else cp -r Sources "$work/B/"; fi

# Both builds share B's thread pool (one set of workers, so that neither's spinning workers take
# the cores from the other); its interface, pool.h, has not changed.
names="ck_best_kernel ck_kernel_supported ck_kernel_mr ck_kernel_nr ck_packed_size ck_pack_b_transposed ck_pack_b
       ck_gemm_packed ck_attention ck_layernorm"
for side in A B; do
    defines=()
    for name in $names; do defines+=("-D$name=${side}_$name"); done
    src="$work/$side/Sources/CKernels"
    clang -O3 -c -I"$src/include" -I"$src" "${defines[@]}" "$src/gemm.c" -o "$work/$side/gemm.o"
done
clang -O3 -c -I"$work/B/Sources/CKernels/include" "$work/B/Sources/CKernels/pool.c" -o "$work/B/pool.o"
clang -O3 Benchmarks/GemmAB/gemm_ab.c "$work"/A/*.o "$work"/B/*.o -lpthread -lm -o "$work/gemm_ab"

bench_machine
echo "A: $(git rev-parse --short "$1")  B: ${2:+$(git rev-parse --short "$2")}${2:-working tree}  kernel ${KERNEL} (-1 best), $THREADS threads, $COPIES weight copies, $ROUNDS rounds"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"
echo "    M     N     K |  A best median |  B best median | B speed-up over A, median [min..max]"
# ViT-B/32 vision at batch 1, 8 and 32 (50 tokens an image): in_proj, out_proj, c_fc, c_proj;
# then text at 8 x 77 tokens (width 512).
for m in 50 400 1600; do
    for shape in "2304 768" "768 768" "3072 768" "768 3072"; do "$work/gemm_ab" "$KERNEL" "$THREADS" "$m" $shape "$COPIES" "$ROUNDS"; done
done
for shape in "1536 512" "512 512" "2048 512" "512 2048"; do "$work/gemm_ab" "$KERNEL" "$THREADS" 616 $shape "$COPIES" "$ROUNDS"; done
