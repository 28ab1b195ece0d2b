# Mixture2Music: `make demo` runs the whole chain on the embedded demo corpus,
# `make test` runs the linter and the test suite. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CONFIG ?= configs/demo.json
DEMO_SONG ?= data/demo/openmsx/tttheme2.mid
SYNTH_SONGS ?= 2000
SYNTH_CONFIG ?= configs/synth.json
DEMO_DATA ?= runs/demo/dataset

# $(call timed,STEP,COMMAND): print the step, run it, print how long it took
timed = @echo "== $(1): $(2)"; start=$$(date +%s); $(2) && \
	echo "== $(1) took $$(( $$(date +%s) - start )) s"

.PHONY: setup demo synth pretrained test lint clean-demo clean-synth

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m utils.preprocess --config $(DEMO_CONFIG)
	$(PY) melody2music_train.py --config $(DEMO_CONFIG)
	$(PY) melody2music_decoder.py --config $(DEMO_CONFIG)
	$(PY) evaluate.py --config $(DEMO_CONFIG) --split test
	$(PY) evaluate.py --config $(DEMO_CONFIG) --split test --songs
	$(PY) separate.py $(DEMO_SONG) --config $(DEMO_CONFIG) --reference --overwrite

# the synthetic MMA corpus (needs the `mma` package): generate, build by style, train, evaluate
synth: setup
	$(call timed,synthesize,$(PY) -m utils.synthesize --config $(SYNTH_CONFIG) --songs $(SYNTH_SONGS))
	$(call timed,preprocess,$(PY) -m utils.preprocess --config $(SYNTH_CONFIG))
	$(call timed,separator,$(PY) melody2music_train.py --config $(SYNTH_CONFIG))
	$(call timed,decoder,$(PY) melody2music_decoder.py --config $(SYNTH_CONFIG))
	$(call timed,evaluate,$(PY) evaluate.py --config $(SYNTH_CONFIG) --split test)
	$(call timed,openmsx build,$(PY) -m utils.preprocess --config $(DEMO_CONFIG))
	$(call timed,evaluate on OpenMSX,$(PY) evaluate.py --config $(SYNTH_CONFIG) --split test \
		--data-dir $(DEMO_DATA))
	$(call timed,evaluate OpenMSX songs,$(PY) evaluate.py --config $(SYNTH_CONFIG) --split test \
		--songs --data-dir $(DEMO_DATA))

# the shipped model: `make synth`, then its checkpoint and baselines copied to pretrained/
pretrained: synth
	$(PY) -m utils.pretrained --config $(SYNTH_CONFIG) --out pretrained

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/python -m pytest

clean-demo:
	rm -rf runs/demo

clean-synth:
	rm -rf runs/synth
