# Mixture2Music: `make demo` runs the whole chain on the embedded demo corpus,
# `make test` runs the linter and the test suite. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CONFIG ?= configs/demo.json
DEMO_SONG ?= data/demo/openmsx/tttheme2.mid

.PHONY: setup demo test lint clean-demo

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m data.preprocess --config $(DEMO_CONFIG)
	$(PY) melody2music_train.py --config $(DEMO_CONFIG)
	$(PY) melody2music_decoder.py --config $(DEMO_CONFIG)
	$(PY) evaluate.py --config $(DEMO_CONFIG) --split test
	$(PY) evaluate.py --config $(DEMO_CONFIG) --split test --songs
	$(PY) separate.py $(DEMO_SONG) --config $(DEMO_CONFIG) --reference --overwrite

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/python -m pytest

clean-demo:
	rm -rf runs/demo
