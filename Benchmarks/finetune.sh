#!/usr/bin/env bash
# Training pairs/s of every fine-tune mode (projections, lock-image, last-vision-blocks:1,
# last-text-blocks:1, full) on random-weight models, each next to the forward-only rate of the
# same batch measured just before it, in a release build.
#   Benchmarks/finetune.sh [--arch demo --arch ViT-B-32] [--batch 16] [--seconds 6]
set -euo pipefail
source "$(dirname "$0")/common.sh"
bench_build clipd
bench_machine
exec "$bench_bin/clipd" finetune bench "$@"
