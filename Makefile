# Two commands work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Real ImageNet weights shared by every developer and CI run (never copied here).
SHARED ?= $(abspath ../shared)
export ARTIPHYS_WEIGHTS_DIR ?= $(SHARED)/weights
export ARTIPHYS_SHARED ?= $(SHARED)
# The demo's natural images (diverse sets, top/bottom patches) when the shared sample is here.
ifneq ($(wildcard $(SHARED)/data/imagenet-sample-256),)
demo: export ARTIPHYS_NATURAL_IMAGES ?= $(SHARED)/data/imagenet-sample-256
endif

.PHONY: install demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import artiphys, torch, torchvision"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m artiphys demo --out runs/demo --resume

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
