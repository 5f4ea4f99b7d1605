#!/usr/bin/env bash
# Try the whole llamavis flow on a laptop, offline, against a real `transformers serve`
# running a tiny, randomly initialised Llama 3.2 Vision (mllama) model. Answers are
# gibberish; the protocol, chat template and image processing are real.
#
#   pip install torch==2.13.0 && pip install -e '.[realserver]'
#   scripts/tiny-server.sh                  # builds the model, serves it on 127.0.0.1:8000
#   llamavis caption examples/shapes.jpg -P local --base-url http://127.0.0.1:8000/v1 \
#       -m llamavis-test/tiny-mllama
set -euo pipefail
cd "$(dirname "$0")/.."
HF_HOME=${HF_HOME:-${TMPDIR:-/tmp}/llamavis-tiny-hf}
PORT=${PORT:-8000}
python tests/realserver/build_tiny_mllama.py "$HF_HOME"
echo "serving llamavis-test/tiny-mllama on http://127.0.0.1:$PORT/v1 (Ctrl-C to stop)" >&2
HF_HOME=$HF_HOME HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 \
    exec transformers serve --host 127.0.0.1 --port "$PORT" --device cpu
