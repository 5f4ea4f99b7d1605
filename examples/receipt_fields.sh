#!/usr/bin/env bash
# Extract shop, date, items and total from photos or scans of receipts, as JSON that
# validates against receipt.schema.json (beside this script): one object per receipt
# per line, the fields in "output". An answer that does not validate is asked again.
#
#   BASE_URL=http://127.0.0.1:8000/v1 examples/receipt_fields.sh receipts/ receipts.jsonl
#
# BASE_URL: any OpenAI-compatible server; MODEL: the model id it serves.
# `llamavis structured --schema examples/receipt.schema.json --show-schema` prints the schema.
set -euo pipefail

dir=${1:?usage: receipt_fields.sh DIR [OUT.jsonl]}
out=${2:-receipts.jsonl}
schema="$(dirname "${BASH_SOURCE[0]}")/receipt.schema.json"
model=()
if [[ -n ${MODEL:-} ]]; then model=(--model "$MODEL"); fi

status=0
llamavis structured --recursive "$dir" --schema "$schema" --jsonl --ordered \
    --provider "${PROVIDER:-local}" --base-url "${BASE_URL:-http://127.0.0.1:8000/v1}" \
    ${model[@]+"${model[@]}"} > "$out" || status=$?

echo "receipts: $(wc -l < "$out" | tr -d ' ') in $out" >&2
exit "$status"
