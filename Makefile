# Two entry points for a fresh machine: `make demo` (the quickstart) and `make test`.
# Each creates the virtual environment in $(VENV) on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/demo
TEST_WORKERS ?= auto
BENCH_OUT ?= benchmarks/results/suite_full_cpu.json

.PHONY: demo showcase test install-gpu install-onednn bench bench-env bench-data device-check device-wheels device-prior clean

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-bench.txt \
		requirements-onednn.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	$(PY) -m experiments.demo --workdir=$(WORKDIR)

showcase: $(VENV)/.installed
	$(PY) -m experiments.showcase_envs --workdir=runs/showcase

# Two passes (tests/conftest.py): every test on one CPU device, then those marked
# multi_device on four host devices; both run, and either failing fails the target. One
# pytest worker per core; each test file stays on one worker, so a module fixture (the
# tiny all-figure sweep) runs once. TEST_WORKERS=0 runs in this process.
test: $(VENV)/.installed
	status=0; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not multi_device" tests || status=1; \
	PARROT_JAX_TEST_DEVICES=4 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile \
	    -m multi_device tests || status=1; \
	exit $$status

# The CUDA 12 build of the pinned JAX (NVIDIA GPUs, Linux x86_64) in the same venv.
install-gpu: $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-cuda.txt

# oneDNN for the CPU convolutions (PARROT_JAX_CONV=onednn; README "Performance").
install-onednn: $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-onednn.txt

bench: $(VENV)/.installed
	$(PY) -m benchmarks.run --suite=full --out=$(BENCH_OUT)

device-check: $(VENV)/.installed
	$(PY) -m benchmarks.device_check --out_dir=benchmarks/results

# Python 3.12 wheels the GPU machine's image lacks (its JAX, flax, optax, orbax are there),
# for benchmarks/device_check.sh and experiments/device_rl.sh: every runtime requirement
# the lease's programs import (tests/test_device_rl.py keeps this list, its pins and
# requirements.txt in step). pybullet has no such wheel in
# the registry: it is built once from its sdist with a local Python 3.12 (PY312; pyenv's
# where there is one) into $(WHEEL_BUILD)/, then slimmed to fit a call's 64 MiB
# (benchmarks/slim_wheel.py).
PY312 ?= $(shell v=$$(pyenv versions --bare 2>/dev/null | grep '^3\.12' | tail -1); \
	if [ -n "$$v" ]; then echo "$$(pyenv root)/versions/$$v/bin/python3.12"; else echo python3.12; fi)
PYBULLET_VERSION := 3.2.7
WHEEL_BUILD := .whl-build
PYBULLET_WHEEL := $(WHEEL_BUILD)/pybullet-$(PYBULLET_VERSION)-cp312-cp312-linux_x86_64.whl

device-wheels: $(PYBULLET_WHEEL) $(VENV)/.installed
	rm -rf .whl && python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl distrax==0.1.9 tfp-nightly==0.26.0.dev20261027 \
		dm-tree==0.1.10 ml_collections==1.1.0 gast==0.7.0 decorator==5.3.1 six==1.17.0 \
		gymnasium==1.4.0 cloudpickle==3.1.2 imageio==2.38.1 pillow==13.0.0 packaging==26.4 \
		tensorboardX==2.6.5 tqdm==4.70.1
	$(PY) -m benchmarks.slim_wheel --wheel=$(PYBULLET_WHEEL) --out_dir=.whl

# The prior for experiments/device_rl.sh, small enough to carry: PRIOR's config and its
# newest checkpoint's parameters (no optimizer state: 15 MB of the `:cpu` prior's 50 MB).
DEVICE_PRIOR ?= runs/prior
device-prior:
	@test -d "$(PRIOR)/checkpoints" || { echo "make device-prior PRIOR=DIR: DIR='$(PRIOR)' is not a workdir of experiments.train_prior (no checkpoints/)"; exit 2; }
	rm -rf $(DEVICE_PRIOR) && mkdir -p $(DEVICE_PRIOR)/checkpoints && cp $(PRIOR)/config.json $(DEVICE_PRIOR)/
	step=$$(ls $(PRIOR)/checkpoints | grep -E '^[0-9]+$$' | sort -n | tail -1) && \
		cp -r $(PRIOR)/checkpoints/$$step $(DEVICE_PRIOR)/checkpoints/ && \
		rm -rf $(DEVICE_PRIOR)/checkpoints/$$step/state

# numpy's headers at build time: pybullet then returns camera images as arrays, not lists
$(PYBULLET_WHEEL):
	rm -rf $(WHEEL_BUILD)/src $(WHEEL_BUILD)/py312 && mkdir -p $(WHEEL_BUILD)/src
	$(PY312) -m venv $(WHEEL_BUILD)/py312
	$(WHEEL_BUILD)/py312/bin/pip install -q setuptools wheel numpy==2.2.6
	$(WHEEL_BUILD)/py312/bin/pip download -q --no-deps --no-binary=:all: \
		pybullet==$(PYBULLET_VERSION) -d $(WHEEL_BUILD)
	tar xzf $(WHEEL_BUILD)/pybullet-$(PYBULLET_VERSION).tar.gz -C $(WHEEL_BUILD)/src
	cd $(WHEEL_BUILD)/src/pybullet-$(PYBULLET_VERSION) && \
		../../py312/bin/python setup.py -q bdist_wheel -d $(CURDIR)/$(WHEEL_BUILD)

bench-env: $(VENV)/.installed
	$(PY) -m benchmarks.env_throughput --out=benchmarks/results/env_throughput.json

bench-data: $(VENV)/.installed
	$(PY) -m benchmarks.data_throughput --out=benchmarks/results/data_throughput.json \
		--collect_trajectories=192 --loader_gb=8.64

clean:
	rm -rf $(VENV) runs
