#!/usr/bin/env bash
# Builds and runs one libFuzzer target (or all, one after another) with AddressSanitizer.
#   Fuzz/run.sh TARGET SECONDS [extra libFuzzer flags...]
#   Fuzz/run.sh all SECONDS
#   Fuzz/run.sh build TARGET          (build only)
# Targets are listed in Fuzz/targets.txt. Work files go to Fuzz/.work/ (ignored by git):
# build products in .work/build/<target>, the growing corpus in .work/corpus/<target>
# (seeded from Tests/ fixtures by Fuzz/seeds.py), crashes in .work/crashes/<target>.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$ROOT/Fuzz"
WORK="${FUZZ_WORK:-$FUZZ/.work}"
SWIFTC="${SWIFTC:-swiftc}"
CLANG="${CLANG:-clang}"

modules_of() {
    awk -v t="$1" '$1 == t { for (i = 2; i <= NF; i++) printf "%s ", $i }' "$FUZZ/targets.txt"
}
targets() { awk '!/^#/ && NF > 1 { print $1 }' "$FUZZ/targets.txt"; }

build() {
    local target="$1"
    local mods; mods="$(modules_of "$target")"
    [ -n "$mods" ] || { echo "unknown target $target (see Fuzz/targets.txt)" >&2; exit 2; }
    [ -f "$FUZZ/Targets/$target.swift" ] || { echo "missing Fuzz/Targets/$target.swift" >&2; exit 2; }
    # Module objects are shared between targets and rebuilt when a source is newer.
    local out="$WORK/build"
    mkdir -p "$out/include"
    local incs=(-I "$out/include") objs=() libs=()
    for m in $mods; do
        local dir="$ROOT/Sources/$m"
        if compgen -G "$dir/*.swift" >/dev/null; then
            objs+=("$out/$m.o")
            if [ -f "$out/$m.o" ] && [ -z "$(find "$dir" -newer "$out/$m.o" -print -quit)" ]; then continue; fi
            echo "swiftc $m" >&2
            "$SWIFTC" -c -parse-as-library -wmo -O -g -enable-testing -sanitize=fuzzer,address \
                -module-name "$m" -emit-module -emit-module-path "$out/include/$m.swiftmodule" \
                "${incs[@]}" "$dir"/*.swift -o "$out/$m.o"
        elif compgen -G "$dir/*.c" >/dev/null; then
            echo "clang $m" >&2
            mkdir -p "$out/include/$m"
            {
                echo "module $m {"
                for h in "$dir"/include/*.h; do echo "    header \"$h\""; done
                echo "    export *"
                echo "}"
            } > "$out/include/$m/module.modulemap"
            incs+=(-Xcc -fmodule-map-file="$out/include/$m/module.modulemap" -Xcc -I"$dir/include")
            for c in "$dir"/*.c; do
                "$CLANG" -c -O1 -g -fsanitize=fuzzer-no-link,address -I "$dir/include" -I "$dir" "$c" \
                    -o "$out/$m-$(basename "$c" .c).o"
                objs+=("$out/$m-$(basename "$c" .c).o")
            done
            # C targets name their system libraries in Package.swift (linkedLibrary).
            while read -r lib; do libs+=("-l$lib"); done < <(
                grep -A2 "name: \"$m\"" "$ROOT/Package.swift" | grep -o 'linkedLibrary("[^"]*")' | sed 's/linkedLibrary("\(.*\)")/\1/')
        elif [ -f "$dir/module.modulemap" ]; then
            incs+=(-I "$dir")
            while read -r lib; do libs+=("-l$lib"); done < <(sed -n 's/^ *link "\(.*\)".*/\1/p' "$dir/module.modulemap")
        else
            echo "module $m has no sources" >&2; exit 2
        fi
    done
    echo "swiftc target $target" >&2
    "$SWIFTC" -parse-as-library -O -g -sanitize=fuzzer,address "${incs[@]}" \
        "$FUZZ/Targets/$target.swift" "${objs[@]}" "${libs[@]}" -o "$out/fuzz-$target" 2>&1 \
        | { grep -v "Cannot export local symbol '__asan" || true; } >&2
    echo "$out/fuzz-$target"
}

run() {
    local target="$1" seconds="$2"; shift 2
    local bin; bin="$(build "$target" | tail -1)"
    local corpus="$WORK/corpus/$target" crashes="$WORK/crashes/$target"
    mkdir -p "$corpus" "$crashes"
    python3 "$FUZZ/seeds.py" "$target" "$corpus"
    echo "== $target for ${seconds}s ($(date -u +%H:%M:%S))"
    # -rss_limit_mb: memory bounded by what the input produces; a limit hit is a finding.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}" \
    "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
        -max_len="${FUZZ_MAX_LEN:-65536}" -artifact_prefix="$crashes/" -print_final_stats=1 "$@" "$corpus"
}

case "${1:-}" in
    build) build "$2" ;;
    all)
        for t in $(targets); do run "$t" "$2" || echo "== $t stopped with a finding (see $WORK/crashes/$t)"; done ;;
    ""|-h|--help) sed -n '2,9p' "$0"; exit 2 ;;
    *) run "$@" ;;
esac
