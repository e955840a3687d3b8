"""Test-wide setup: four host CPU devices, so multi-device code runs without a GPU, and
the slowest test files first.

XLA reads the flag when the backend starts, so it is set before any test imports JAX.
"""

import os

os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=4"]).strip()

# `make test` runs one pytest worker per core and keeps each file on one worker; a slow
# file collected last (the tiny sweep of every figure: over a quarter of the suite's
# time) would run alone at the end, so these files start first.
SLOW_FIRST = ("tests/test_sweep.py", "tests/benchmarks/test_run.py", "tests/test_demo.py")


def pytest_collection_modifyitems(items):
    def rank(item):  # SLOW_FIRST's order, then the collection's (the sort is stable)
        path = item.nodeid.split("::")[0]
        return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)
    items.sort(key=rank)
