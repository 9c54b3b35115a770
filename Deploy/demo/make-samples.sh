#!/usr/bin/env bash
# Regenerates Deploy/demo/samples/: synthetic shape scenes rendered by `clipd synth` (some of
# them colour-shape combinations the demo model never saw in training), plus deliberately bad
# records so the demo shows dead letters. image_url values start with {{SAMPLES_URL}}, which
# the demo replaces with wherever it serves the files (file:///abs/path or http://host/path).
#
# Usage: Deploy/demo/make-samples.sh [path/to/clipd]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
clipd="${1:-$here/../../.build/debug/clipd}"
out="$here/samples"
rm -rf "$out"
held="$(mktemp -d)"
trap 'rm -rf "$held"' EXIT
"$clipd" synth --output "$out" --split train --sample 24 --side 128 --url-prefix '{{SAMPLES_URL}}' >/dev/null
"$clipd" synth --output "$held" --split heldout --sample 8 --side 128 --url-prefix '{{SAMPLES_URL}}' >/dev/null
mv "$held"/*.jpg "$out"/
cat "$held/records.jsonl" >> "$out/records.jsonl"

# A JPEG cut in half, a text file with an image name, a file that does not exist.
first="$(ls "$out"/*.jpg | head -n 1)"
head -c "$(( $(wc -c < "$first") / 2 ))" "$first" > "$out/bad-truncated.jpg"
printf 'this is not an image\n' > "$out/bad-not-an-image.jpg"
cat >> "$out/records.jsonl" <<'JSONL'
{"caption":"a picture whose file was cut in half","id":"bad-truncated","image_url":"{{SAMPLES_URL}}/bad-truncated.jpg","metadata":{"expected_error":"undecodable image (truncated)"}}
{"caption":"a text file named like a picture","id":"bad-not-an-image","image_url":"{{SAMPLES_URL}}/bad-not-an-image.jpg","metadata":{"expected_error":"undecodable image"}}
{"caption":"a picture that is not there","id":"bad-missing-file","image_url":"{{SAMPLES_URL}}/does-not-exist.jpg","metadata":{"expected_error":"fetch failure"}}
{"caption":"a record without an image","id":"bad-no-image-url","metadata":{"expected_error":"missing image_url"}}
{"id": "bad-json", "image_url": "{{SAMPLES_URL}}/
JSONL
echo "wrote $(ls "$out"/*.jpg | wc -l) files and $(wc -l < "$out/records.jsonl") records to $out ($(du -sk "$out" | cut -f1) KiB)"
