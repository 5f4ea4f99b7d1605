#!/usr/bin/env bash
# A CI gate: classify every screenshot as ok or broken, and fail (exit 1) when any looks
# broken or could not be checked. The JSON Lines report is kept for the CI artifacts.
#
#   BASE_URL=http://127.0.0.1:8000/v1 examples/screenshot_gate.sh screenshots/
#
# BASE_URL: any OpenAI-compatible server; MODEL: the model id it serves;
# REPORT: where the report goes (default screenshot-report.jsonl).
set -euo pipefail

dir=${1:?usage: screenshot_gate.sh DIR}
report=${REPORT:-screenshot-report.jsonl}
model=()
if [[ -n ${MODEL:-} ]]; then model=(--model "$MODEL"); fi

status=0
llamavis classify --recursive "$dir" --classes ok,broken --jsonl --ordered \
    --provider "${PROVIDER:-local}" --base-url "${BASE_URL:-http://127.0.0.1:8000/v1}" \
    ${model[@]+"${model[@]}"} > "$report" || status=$?

# One object per line, "image" first, written by llamavis (never pretty-printed).
broken=$(grep '"output": "broken"' "$report" | sed -E 's/^\{"image": "(([^"\\]|\\.)*)".*/\1/' || true)
if [[ -n $broken ]]; then
    echo "screenshot gate: FAILED, these look broken:" >&2
    echo "$broken" | sed 's/^/  /' >&2
    exit 1
fi
if [[ $status -ne 0 ]]; then
    echo "screenshot gate: FAILED, some screenshots could not be checked (see above)" >&2
    exit "$status"
fi
echo "screenshot gate: all $(wc -l < "$report" | tr -d ' ') screenshots look ok" >&2
