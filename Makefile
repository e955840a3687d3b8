# Two entry points for a fresh machine: `make demo` (the quickstart) and `make test`.
# Each creates the virtual environment in $(VENV) on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/demo
BENCH_OUT ?= benchmarks/results/suite_full_cpu.json

.PHONY: demo showcase test bench bench-env bench-data clean

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-bench.txt setup.cfg \
		pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	$(PY) -m experiments.demo --workdir=$(WORKDIR)

showcase: $(VENV)/.installed
	$(PY) -m experiments.showcase_envs --workdir=runs/showcase

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) -m benchmarks.run --suite=full --out=$(BENCH_OUT)

bench-env: $(VENV)/.installed
	$(PY) -m benchmarks.env_throughput --out=benchmarks/results/env_throughput.json

bench-data: $(VENV)/.installed
	$(PY) -m benchmarks.data_throughput --out=benchmarks/results/data_throughput.json \
		--collect_trajectories=192 --loader_gb=8.64

clean:
	rm -rf $(VENV) runs
