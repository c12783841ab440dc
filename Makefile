# render3d: `make demo` and `make test` set everything up in .venv and run.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.render3d-installed

.PHONY: setup build test demo gpu-check clean system-deps

$(PY):
	$(PYTHON) -m venv $(VENV)

# Debian packages that Python wheels need at run time (open3d: libusb). Installed when
# missing (as root, or with passwordless sudo); otherwise named so the user can install them.
SYSTEM_PACKAGES := libusb-1.0-0
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	elif sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "render3d: install these Debian packages (open3d needs them):$$missing"; fi

# torch==2.13.0 is pinned here (not in pyproject) because that CPU wheel lies on local disk;
# a looser pin would download a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY) system-deps
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

# On a GPU machine whose python already has a CUDA build of torch (and render3d's light
# dependencies: numpy, ninja, imageio, tqdm, pytest; nerfacc for the benchmark's peer):
#   make gpu-check OUT=results/   (PYTHON=... picks the interpreter)
# builds the CUDA extension, runs the CUDA-marked tests and the benchmarks, and writes the
# build and test logs and the benchmark JSON into OUT.
OUT ?= gpu-check-results
gpu-check:
	mkdir -p $(OUT)
	set -o pipefail; PYTHONPATH=$(CURDIR) $(PYTHON) -m render3d build --require-cuda 2>&1 | tee $(OUT)/build.log
	set -o pipefail; PYTHONPATH=$(CURDIR) $(PYTHON) -m pytest -m cuda -v tests 2>&1 | tee $(OUT)/tests.log
	PYTHONPATH=$(CURDIR) $(PYTHON) bench/volume.py --out $(OUT)

clean:
	rm -rf $(VENV) build dist *.egg-info
