# gdsynth developer entry points. Two commands matter: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build of PyTorch (on these machines it installs from local disk). GPU users: install their
# CUDA torch first and `pip install -e .` (see README), or override TORCH_SPEC.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo-output

.PHONY: help venv install install-test demo test lint unit bench clean browser-deps

help:
	@echo "make demo   - create $(VENV), install gdsynth, run the whole chain on the embedded phantom"
	@echo "make test   - install test extras, run ruff and pytest"
	@echo "make bench  - run the benchmark harness (not part of test)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/gdsynth demo --out $(DEMO_OUT)

lint: install-test
	$(BIN)/ruff check gdsynth tests experiments benchmarks

unit: install-test
	$(BIN)/python -m pytest -q

# Headless Debian chromium + chromedriver for the browser tests (review site, reader study).
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
		echo "warning: /usr/bin/chromium missing and not installable here (needs root and apt-get); browser tests will be skipped" >&2; \
	fi

test: browser-deps lint unit

bench: install-test
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(DEMO_OUT) build *.egg-info .pytest_cache .ruff_cache
