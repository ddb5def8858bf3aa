# One command each: install, demo, test, bench, lint, lock. Every target installs first when needed.
#
# Where it installs: the active virtual environment if there is one ($VIRTUAL_ENV), otherwise a
# `.venv/` inside the clone that `make install` creates. Never the system Python.
# What it installs: the versions in requirements-lock.txt (the set the tests were run with, for
# Python 3.11 on Linux x86_64), as pip constraints over pyproject.toml's open ranges.
# `make install LOCK=` installs from the ranges alone (what `pip install brainsegfounder` gives).
SYSTEM_PYTHON ?= python3
ifdef VIRTUAL_ENV
VENV ?= $(VIRTUAL_ENV)
else
VENV ?= .venv
endif
PYTHON ?= $(VENV)/bin/python
PIP := $(PYTHON) -m pip
LOCK ?= requirements-lock.txt
CONSTRAINTS := $(if $(LOCK),-c $(LOCK),)
# torch first, pinned: on the project's machines 2.13.0 (CPU) lies on disk, while an unpinned
# resolve pulls a multi-GB CUDA build. GPU users: install your CUDA torch 2.13 first, `make install` keeps it.
TORCH_SPEC ?= torch==2.13.0
DATA ?= data/synthetic_brats2021
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: install browser demo test test-all bench lint lock clean

$(PYTHON):
	$(SYSTEM_PYTHON) -m venv $(VENV)

.install-stamp: pyproject.toml $(LOCK) | $(PYTHON)
	@$(PYTHON) -c "import sys; v = sys.version_info[:2]; \
	  v == (3, 11) or print(f'note: requirements-lock.txt was made for Python 3.11, this is {v[0]}.{v[1]}: ' \
	  'if a pin has no wheel here, run: make install LOCK=')"
	$(PIP) install -q --upgrade "pip>=24"
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install $(CONSTRAINTS) "$(TORCH_SPEC)"
	$(PIP) install $(CONSTRAINTS) -e ".[dev]"
	@touch .install-stamp

install: .install-stamp

# Regenerate the lock from pyproject.toml's ranges (newest releases they admit, CPU torch).
# tests/test_lock.py fails when the lock no longer satisfies pyproject.toml.
lock: | $(PYTHON)
	$(PIP) install -q "uv>=0.4"
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev --extra export --extra clinical \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  $(if $(wildcard /opt/wheels),--find-links /opt/wheels,) \
	  --no-header --annotation-style line --upgrade -o $(LOCK).tmp
	@# torch==2.13.0 matches the CPU (+cpu) and CUDA (+cu12x) builds alike: a GPU user's torch is kept.
	sed -E 's/^torch==([0-9.]+)\+[a-z0-9]+/torch==\1/' $(LOCK).tmp > $(LOCK) && rm $(LOCK).tmp
	@echo "wrote $(LOCK): $$(grep -c '==' $(LOCK)) pinned packages"

# Debian packages some tests use: headless Chromium for the report's browser tests (selenium is
# told to use /usr/bin/chromedriver and never downloads a browser), and dicom3tools' dciodvfy, the
# DICOM standard's validator, for the DICOM SEG (docs/clinical.md). Skipped when all are there.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v dciodvfy >/dev/null || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	   chromium chromium-driver dicom3tools)

demo: install
	$(PYTHON) -m brainsegfounder.demo

test: install
	$(PYTHON) -m pytest -m "not slow" -q

test-all: install
	$(PYTHON) -m pytest -q

bench: install
	$(PYTHON) -m benchmarks.run

lint: install
	$(PYTHON) -m ruff check brainsegfounder tests benchmarks

clean:
	rm -rf .install-stamp .pytest_cache build dist *.egg-info
