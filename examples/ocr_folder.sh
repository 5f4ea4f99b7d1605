#!/usr/bin/env bash
# Transcribe a folder of scans into one JSON Lines file: one object per scan, with the
# text in "output" (see the README's Output section for the other fields).
#
#   BASE_URL=http://127.0.0.1:8000/v1 examples/ocr_folder.sh scans/ text.jsonl
#
# BASE_URL: any OpenAI-compatible server; MODEL: the model id it serves. The file keeps
# the order of the folder listing; re-running it asks again only for scans not yet
# answered (the rest come from llamavis's cache).
set -euo pipefail

dir=${1:?usage: ocr_folder.sh DIR [OUT.jsonl]}
out=${2:-ocr.jsonl}
model=()
if [[ -n ${MODEL:-} ]]; then model=(--model "$MODEL"); fi

status=0
llamavis ocr --recursive "$dir" --jsonl --ordered \
    --provider "${PROVIDER:-local}" --base-url "${BASE_URL:-http://127.0.0.1:8000/v1}" \
    ${model[@]+"${model[@]}"} > "$out" || status=$?

echo "ocr: $(wc -l < "$out" | tr -d ' ') scans in $out" >&2
exit "$status"  # 1 when a scan failed: its line has "error" set
