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

# real songs: the Slakh2100 MIDI shipped in data/corpora, the Debian game songs, the synthetic
# corpus; each built twice, the paper's way (melody kept out of the mixture: the shipped
# recipe, chosen by the ablation) and with the melody in the mixture (songs with their tunes,
# what the recipes are scored on)
CORPORA ?= runs/corpora
SLAKH_ARCHIVE ?= data/corpora/slakh2100.tar.xz
REAL_CONFIG ?= configs/real.json
MELODY_IN_CONFIG ?= configs/real_melody_in.json
DENSE_CONFIG ?= configs/real_dense.json
DEBIAN_CORPUS ?= $(CORPORA)/debian
DEBIAN_CONFIG ?= configs/debian.json
DEBIAN_ROOT ?=
DEBIAN_PACKAGES ?=
WIDE_CONFIG ?= configs/real_wide.json
WIDE_SET ?= wide
WIDE ?= runs/wide
ABLATION_STEPS ?= 250
ABLATION_SONGS ?= 40

.PHONY: setup demo synth synth-data slakh debian real-data dense-data ablation pretrained real-recipe \
	song-pass wide-data wide test lint clean-demo clean-synth

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

# the synthetic corpus alone, built both ways (no training)
synth-data: setup
	$(call timed,synthesize,$(PY) -m utils.synthesize --config $(SYNTH_CONFIG) --songs $(SYNTH_SONGS))
	$(call timed,preprocess,$(PY) -m utils.preprocess --config $(SYNTH_CONFIG))
	$(call timed,preprocess with the melody,$(PY) -m utils.preprocess --config $(SYNTH_CONFIG) \
		--out-dir runs/synth/dataset_melody --melody-in-mixture)

# Slakh2100 (shipped compressed, CC BY 4.0): unpacked once into runs/corpora, built with its
# published splits
$(CORPORA)/slakh2100/.unpacked: $(SLAKH_ARCHIVE)
	mkdir -p $(CORPORA)
	tar -xJf $(SLAKH_ARCHIVE) -C $(CORPORA)
	touch $@

slakh: setup $(CORPORA)/slakh2100/.unpacked
	$(call timed,Slakh2100,$(PY) -m utils.preprocess --config $(REAL_CONFIG))
	$(call timed,Slakh2100 with the melody,$(PY) -m utils.preprocess --config $(MELODY_IN_CONFIG))

# the songs of the Debian packages simutrans-data, freedoom, freedm, freedink-data,
# planetblupi-music-midi, pianobooster: apt-get install them, or unpack their .deb files with
# dpkg -x into a folder and give it as DEBIAN_ROOT; a missing one is named in one line. Split
# by song (70/15/15, configs/debian.json), files without a time signature read as 4/4
debian: setup
	$(PY) -m utils.debian_songs --out $(DEBIAN_CORPUS) $(if $(DEBIAN_ROOT),--root $(DEBIAN_ROOT)) \
		$(if $(DEBIAN_PACKAGES),--packages $(DEBIAN_PACKAGES))
	$(call timed,Debian songs with the melody,$(PY) -m utils.preprocess --config $(DEBIAN_CONFIG) \
		--midi-dir $(DEBIAN_CORPUS) --out-dir runs/debian/dataset_melody --melody-in-mixture)
	$(call timed,Debian songs without,$(PY) -m utils.preprocess --config $(DEBIAN_CONFIG) \
		--midi-dir $(DEBIAN_CORPUS) --out-dir runs/debian/dataset)

# every corpus the real-song recipe trains or is scored on
real-data: slakh debian synth-data
	$(call timed,OpenMSX with the melody,$(PY) -m utils.preprocess --config $(DEMO_CONFIG) \
		--out-dir runs/demo/dataset_melody --melody-in-mixture)

# every corpus again as dense as real files (every track of a class in its channel, short
# tracks kept, the tune in): the training data of configs/real_dense.json, and its panel
DENSE = --melody-in-mixture --class-tracks all
dense-data: real-data
	$(call timed,Slakh2100 dense,$(PY) -m utils.preprocess --config $(DENSE_CONFIG))
	$(call timed,synthetic dense,$(PY) -m utils.preprocess --config $(SYNTH_CONFIG) $(DENSE) \
		--out-dir runs/synth/dataset_dense)
	$(call timed,Debian dense,$(PY) -m utils.preprocess --config $(DEBIAN_CONFIG) $(DENSE) \
		--midi-dir $(DEBIAN_CORPUS) --out-dir runs/debian/dataset_dense)
	$(call timed,OpenMSX dense,$(PY) -m utils.preprocess --config $(DEMO_CONFIG) $(DENSE) \
		--out-dir runs/demo/dataset_dense)

# what the network sees, trained alike and scored song by song on validation songs
ablation: real-data
	$(call timed,ablation,$(PY) bench/ablation.py --config $(MELODY_IN_CONFIG) \
		--config-melody-out $(REAL_CONFIG) --steps $(ABLATION_STEPS) \
		--limit $(ABLATION_SONGS) --out runs/ablation)

# $(call song_limit,N): the song pass's --limit N, or nothing (every song) when N is empty
song_limit = $(if $(strip $(1)),--limit $(1))

# $(call score_dense,CONFIG): a dense-recipe model scored on the validation panel, then once on
# the test songs of the dense builds
define score_dense
	$(call timed,validation panel,$(PY) evaluate.py --config $(1) --panel --instruments-given)
	$(call timed,Debian test songs,$(PY) evaluate.py --config $(1) --split test --songs \
		--data-dir runs/debian/dataset_dense)
	$(call timed,OpenMSX test songs,$(PY) evaluate.py --config $(1) --split test --songs \
		--data-dir runs/demo/dataset_dense)
	$(call timed,synthetic test songs,$(PY) evaluate.py --config $(1) --split test --songs \
		--data-dir runs/synth/dataset_dense)
endef

# the shipped model, the dense recipe (configs/real_dense.json): the separator trained on
# mixtures as dense as real files (every track of a class, the tune in), the learned song pass
# on whole songs of the four dense builds (PRETRAINED_SONGS songs of each split of each corpus;
# PRETRAINED_SONGS= with nothing: every song),
# the validation panel it is chosen on, the test songs once, then its checkpoints, baselines
# and tables copied to pretrained/. The paper's recipe (melody out, largest tracks) stays in
# configs/real.json (REAL_RECIPE below)
PRETRAINED_CONFIG ?= configs/real_dense.json
PRETRAINED_SONGS ?= 240
pretrained: dense-data
	$(call timed,separator,$(PY) melody2music_train.py --config $(PRETRAINED_CONFIG))
	$(call timed,song pass,$(PY) -m utils.song_pass_training --config $(PRETRAINED_CONFIG) \
		$(call song_limit,$(PRETRAINED_SONGS)))
	$(call score_dense,$(PRETRAINED_CONFIG))
	$(PY) -m utils.pretrained --config $(PRETRAINED_CONFIG) --out pretrained

# the paper's recipe (melody out of the mixture, the largest track of each class), the model
# shipped before the dense recipe, into runs/real/checkpoints
real-recipe: real-data
	$(call timed,separator,$(PY) melody2music_train.py --config $(REAL_CONFIG))
	$(call timed,song pass,$(PY) -m utils.song_pass_training --config $(REAL_CONFIG))
	$(call timed,Slakh2100 validation songs,$(PY) evaluate.py --config $(REAL_CONFIG) \
		--split val --songs --data-dir runs/slakh/dataset_melody)

# a song pass for the shipped separator (pretrained/separator.ckpt): trained on whole songs of
# the four dense builds (configs/real_song_pass.json; SONG_PASS_LIMIT songs of each split of
# each corpus, as many as make pretrained's), scored on the validation panel, then on the test
# songs, then copied beside the separator with its tables
SONG_PASS_CONFIG ?= configs/real_song_pass.json
SONG_PASS_LIMIT ?= $(PRETRAINED_SONGS)
song-pass: dense-data
	$(call timed,song pass,$(PY) -m utils.song_pass_training --config $(SONG_PASS_CONFIG) \
		$(call song_limit,$(SONG_PASS_LIMIT)))
	$(call score_dense,$(SONG_PASS_CONFIG))
	$(PY) -m utils.pretrained --config $(SONG_PASS_CONFIG) --out pretrained --song-pass

# the shipped recipe with the wider instrument set (configs/real_wide.json: the paper's
# classes plus organ, brass, reed, synth lead and synth pad): every corpus built dense again
# with the set into runs/wide (as dense-data, each with --instrument-set), the separator and
# its song pass trained (WIDE_SONGS songs of each split of each corpus), and the validation
# panel scored: per-class F1, and the figures folded back onto the paper's five classes
WIDE_SONGS ?= $(PRETRAINED_SONGS)
WIDE_DENSE = $(DENSE) --instrument-set $(WIDE_SET)
wide-data: dense-data
	$(call timed,Slakh2100 wide,$(PY) -m utils.preprocess --config $(DENSE_CONFIG) \
		--instrument-set $(WIDE_SET) --out-dir $(WIDE)/slakh/dataset_dense)
	$(call timed,synthetic wide,$(PY) -m utils.preprocess --config $(SYNTH_CONFIG) $(WIDE_DENSE) \
		--out-dir $(WIDE)/synth/dataset_dense)
	$(call timed,Debian wide,$(PY) -m utils.preprocess --config $(DEBIAN_CONFIG) $(WIDE_DENSE) \
		--midi-dir $(DEBIAN_CORPUS) --out-dir $(WIDE)/debian/dataset_dense)
	$(call timed,OpenMSX wide,$(PY) -m utils.preprocess --config $(DEMO_CONFIG) $(WIDE_DENSE) \
		--out-dir $(WIDE)/demo/dataset_dense)

wide: wide-data
	$(call timed,train wide,$(PY) melody2music_train.py --config $(WIDE_CONFIG))
	$(call timed,song pass wide,$(PY) -m utils.song_pass_training --config $(WIDE_CONFIG) \
		$(call song_limit,$(WIDE_SONGS)))
	$(call timed,validation panel wide,$(PY) evaluate.py --config $(WIDE_CONFIG) --panel)

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/python -m pytest

clean-demo:
	rm -rf runs/demo

clean-synth:
	rm -rf runs/synth
