# The two commands a fresh machine needs: `make demo` (the main job, offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Here torch 2.13.0 is a local CPU wheel; elsewhere pip fetches the normal build for your machine.
TORCH ?= torch==2.13.0
APT_PACKAGES := espeak-ng sox wamerican chromium nodejs flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts

.PHONY: setup lint system-packages demo gpu-check mutants mutants-js corpus speech-slice tiny-model listener-model tiny-eval transfer test test-slow test-all clean clean-cache

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

# Debian packages: espeak-ng, flite, festival and its voices, sox and wamerican regenerate the speech corpus
# (experiments/; tests/test_corpus.py renders a small one); chromium runs
# the gallery's browser tests and nodejs the page script's own (skipped without them, failing in CI). The demo
# needs none of them.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq $$missing; fi; fi

# A unit and a channel audiation of unit 125 of the last layer of the project's own trained model (an
# "s"-selective unit, see its MODEL_CARD.md), offline, in a minute or two on CPU.
demo: setup
	rm -rf outputs/demo
	$(BIN)/python -m audiation.run --multirun experiment=demo   # conf/experiment/demo.yaml
	@echo "demo outputs: $(CURDIR)/outputs/demo/index.html (gallery), outputs/demo/{0_objective=unit,1_objective=channel}/targets/*/audio_16bit.wav,"
	@echo "  spectrogram.png, metrics.json, loss_curve.png, wandb/ (sync later: wandb sync outputs/demo/*/wandb/offline-run-*)"

# Every path on CUDA (objectives, signals, augmentations, bf16, compile, batch_size=auto, quality.data,
# examples, resume), a table of pass/fail and seconds: run it whenever a GPU is at hand (CI has none).
gpu-check: setup
	$(BIN)/python experiments/gpu_check.py

# The project's models and data, regenerated from scratch (see the MODEL_CARD.md of each model in audiation/assets/).
# Each model trains on one CPU thread in about 1.5 h (or on a GPU when there is one); both fit side by side.
corpus: setup system-packages
	$(BIN)/pip install --quiet -e ".[train]"
	OMP_NUM_THREADS=1 $(BIN)/python experiments/make_corpus.py --out data/corpus --n-train 30000 --n-heldout 1500 \
		--n-heldout-human 600 --jobs 2 --seed 0

speech-slice: corpus
	$(BIN)/python experiments/make_corpus.py --out data/corpus --slice audiation/assets/speech-slice --seed 0

tiny-model: corpus
	OMP_NUM_THREADS=1 $(BIN)/python experiments/train_tiny.py --data data/corpus --train-split train --out audiation/assets/tiny-w2v2-espeak \
		--log-dir data/train-tiny --hidden 192 --layers 6 --heads 4 --ffn 768 --steps 9000 --lr 1e-3 --warmup 500 \
		--eval-every 1000 --seed 0

listener-model: corpus
	OMP_NUM_THREADS=1 $(BIN)/python experiments/train_tiny.py --data data/corpus --train-split train-listener --out audiation/assets/listener-w2v2-espeak \
		--log-dir data/train-listener --hidden 256 --layers 3 --heads 4 --ffn 1024 --conv-first 48 --conv-width 96 \
		--pre-ln --steps 9000 --lr 2e-3 --warmup 500 --eval-every 1000 --seed 1

# Are letters and words audiated on tiny heard by the listener, pocketsphinx and silero? A table per setting and
# seed (experiments/RESULTS.md has one).
transfer: setup
	OMP_NUM_THREADS=1 $(BIN)/python experiments/transfer.py --out data/transfer

tiny-eval: setup
	OMP_NUM_THREADS=1 $(BIN)/python experiments/eval_tiny.py --data data/corpus/heldout --units 500 --json data/eval-heldout.json

# Mutation testing of every module (experiments/mutants.py; mutmut's settings in pyproject's [tool.mutmut]):
# the package mutated once in build/mutants/package/ and the suite's map of tests built once (half an hour or
# more), then the modules' mutants tested in one run, MINUTES a module, or a random SAMPLE of each (an estimate
# with its interval); run again, it goes on where it stopped. One module: make mutants MODULES=hearing/judges.py.
# Every verdict is kept in experiments/mutant-verdicts.tsv (commit it): a fresh clone goes on from there.
# Scores in experiments/RESULTS.md ("Mutation testing of every module").
MINUTES ?= 20
MODULES ?=
SAMPLE ?=
mutants: setup
	$(BIN)/pip install --quiet "mutmut==3.8.1"
	$(BIN)/python experiments/mutants.py $(MODULES) --minutes $(MINUTES) $(if $(SAMPLE),--sample $(SAMPLE))

# The page's script: Stryker (npm, kept in build/) mutates page.js in a copy of it and tests/js, and runs the
# page's Node tests against each mutant (a few minutes); the score per mutator in build/mutants-js/reports.
STRYKER := @stryker-mutator/core@8.7.1
mutants-js:
	rm -rf build/mutants-js && mkdir -p build/mutants-js/audiation/browser/static build/mutants-js/tests/js
	cp audiation/browser/static/page.js build/mutants-js/audiation/browser/static/
	cp tests/js/*.js tests/js/stryker.config.json build/mutants-js/tests/js/
	test -x build/js-tools/node_modules/.bin/stryker || npm install --silent --no-save --no-audit --no-fund --prefix build/js-tools "$(STRYKER)"
	cd build/mutants-js && ../js-tools/node_modules/.bin/stryker run tests/js/stryker.config.json

# Lint (ruff, pyproject's [tool.ruff]) and the core's types (mypy, [tool.mypy]) before the suite: seconds.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# One worker per core, a test file per worker (its module fixtures built once); the slowest tests and the
# suite's time at the end.
test: lint
	$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=40

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-all: setup
	$(BIN)/python -m pytest -q -m ""

clean:
	rm -rf outputs/runs outputs/sweeps outputs/demo outputs/examples

clean-cache:  # dataset activation caches: slow to rebuild on large data
	rm -rf outputs/cache
