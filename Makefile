# One command each: install, demo, test, bench, lint. Every target installs first when needed.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# torch first, pinned: on the project's machines 2.13.0 (CPU) lies on disk, while an unpinned
# resolve pulls a multi-GB CUDA build. GPU users: install your CUDA torch first, `make install` keeps it.
TORCH_SPEC ?= torch==2.13.0
DATA ?= data/synthetic_brats2021
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: install browser demo test test-all bench lint clean

.install-stamp: pyproject.toml
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"
	@touch .install-stamp

install: .install-stamp

# Headless Chromium for the report's browser tests: Debian's packages (selenium is told to use
# /usr/bin/chromedriver and never downloads a browser). Skipped when both are already there.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver)

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
