# render3d: `make demo` and `make test` set everything up in .venv and run.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.render3d-installed

.PHONY: setup build test demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 is pinned here (not in pyproject) because that CPU wheel lies on local disk;
# a looser pin would download a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(STAMP)

# Prebuild the native CPU kernels (the first call would otherwise JIT-build them).
build: setup
	$(VENV)/bin/render3d build

test: build
	$(PY) -m pytest -q

demo: build
	$(VENV)/bin/render3d demo

clean:
	rm -rf $(VENV) build dist *.egg-info
