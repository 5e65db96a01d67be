#!/bin/sh
# The CLIP embedder and the diffusers generator on a GPU: images/s, shots/s, peak GPU memory.
# One short run (a few minutes); prints JSON lines; exits 0 with one line where there is no GPU.
#   sh bench/gpu.sh            (PYTHON=/path/to/python to use another interpreter)
#   sh bench/gpu.sh --smoke    (tiny sizes on the CPU: checks the script itself, measures nothing)
cd "$(dirname "$0")/.." || exit 1
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec timeout 900 "$PY" bench/gpu.py "$@"
