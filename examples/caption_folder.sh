#!/usr/bin/env bash
# Caption every image in a folder into a sidecar .txt beside it, as training sets for
# image models expect (photos/cat.jpg -> photos/cat.txt). Images whose .txt already
# exists are skipped, so an interrupted run picks up where it stopped.
#
#   BASE_URL=http://127.0.0.1:8000/v1 examples/caption_folder.sh photos/
#
# BASE_URL: an OpenAI-compatible server that runs Llama 3.2 Vision (vLLM <= 0.10.2, SGLang,
# MLX-VLM, transformers serve; Ollama < 0.30 is http://127.0.0.1:11434/v1 with
# PROVIDER=ollama). MODEL: the model id it serves.
# TASK=detailed-caption writes longer captions.
set -euo pipefail

dir=${1:?usage: caption_folder.sh DIR}
model=()
if [[ -n ${MODEL:-} ]]; then model=(--model "$MODEL"); fi

llamavis "${TASK:-caption}" --recursive "$dir" --output-dir "$dir" \
    --provider "${PROVIDER:-local}" --base-url "${BASE_URL:-http://127.0.0.1:8000/v1}" ${model[@]+"${model[@]}"}

echo "captions: $(find "$dir" -name '*.txt' | wc -l | tr -d ' ') .txt files in $dir" >&2
