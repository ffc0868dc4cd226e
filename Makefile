# The two commands a fresh machine needs: `make demo` (the main job, offline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Here torch 2.13.0 is a local CPU wheel; elsewhere pip fetches the normal build for your machine.
TORCH ?= torch==2.13.0
APT_PACKAGES := espeak-ng sox wamerican chromium

.PHONY: setup system-packages demo test test-slow test-all clean clean-cache

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

# Debian packages: espeak-ng, sox and wamerican regenerate the speech corpus (experiments/); chromium runs
# the gallery's browser test (skipped without it). The demo needs none of them.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq $$missing; fi; fi

demo: setup
	rm -rf outputs/demo
	WANDB_SILENT=true $(BIN)/python -m audiation.run --multirun model=random_small model.layer=2 \
		objective=unit,channel objective.unit=7 optimizer.steps=60 hydra.sweep.dir=outputs/demo
	@echo "demo outputs: $(CURDIR)/outputs/demo/{0,1} (targets/*/audio_16bit.wav, spectrogram.png, metrics.json, loss_curve.png, wandb/)"

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

test-all: setup
	$(BIN)/python -m pytest -q -m ""

clean:
	rm -rf outputs/runs outputs/sweeps outputs/demo outputs/examples

clean-cache:  # dataset activation caches: slow to rebuild on large data
	rm -rf outputs/cache
