# render3d: `make demo` and `make test` set everything up in .venv and run.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.render3d-installed

.PHONY: setup system-deps build test demo gpu-check clean

# Debian packages that the pip wheels need at run time: open3d loads libusb-1.0; the
# viewer's end-to-end test drives Debian's chromium with playwright.
DEBIAN_PACKAGES := libusb-1.0-0 chromium

$(PY):
	$(PYTHON) -m venv $(VENV)

# Installs the missing ones with apt-get (as root, or with passwordless sudo); otherwise says
# which to install and goes on. Checking with dpkg takes milliseconds, so it runs every time.
system-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "render3d: no apt-get here; install the equivalent of: $$missing (open3d and the viewer test need them)"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
		echo "render3d: missing Debian packages: $$missing (open3d and the viewer test need them); run: sudo apt-get install $$missing"; \
		exit 0; fi; \
	echo "render3d: installing Debian packages: $$missing"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
		|| echo "render3d: could not install $$missing (open3d and the viewer test need them); run: sudo apt-get install $$missing"

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

# PYTHONFAULTHANDLER: a test's subprocess (torchrun's workers) that aborts in C++ prints its
# Python threads' stacks to the stderr the test reports.
test: build
	PYTHONFAULTHANDLER=1 $(PY) -m pytest -q

demo: build
	$(VENV)/bin/render3d demo

# On a GPU machine whose python already has a CUDA build of torch (PYTHON=... picks it):
#   make gpu-check OUT=results/
# runs bench/gpu_check.sh: the CUDA build, the CUDA-marked tests and the GPU benchmarks
# (training at 64/128/256 px, volume rendering vs nerfacc, splats vs gsplat), each step
# time-boxed, with its logs, a summary and the benchmark JSON in OUT. Its header says how to
# bring the light dependencies to an offline machine.
OUT ?= gpu-check-results
gpu-check:
	PYTHON=$(PYTHON) bash bench/gpu_check.sh $(OUT)

clean:
	rm -rf $(VENV) build dist *.egg-info
