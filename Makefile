# Both entry points build their own environment: a fresh machine needs only Python 3.11.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test clean-store

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch goes first and pinned: an unpinned resolve pulls gigabytes of CUDA wheels.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# basic-pitch ships its ONNX transcriber in the wheel; its metadata pulls tensorflow, which
	# the ONNX path never imports, so it goes in without dependencies (declared in pyproject).
	$(BIN)/pip install -q --no-deps basic-pitch==0.4.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chromatic demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

clean-store:
	rm -rf store/* && touch store/.gitkeep
