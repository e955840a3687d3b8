"""Test-wide setup: how many host CPU devices, one compilation cache for the whole
session, and the slowest test files first.

Tests run on one CPU device, except those marked ``multi_device`` (meshes, sharding, one
device against four, multi-host), which need four host devices so that multi-device code
runs without a GPU: ``PARROT_JAX_TEST_DEVICES=4 pytest -m multi_device``. ``make test``
runs both passes; with fewer devices a ``multi_device`` test is skipped, saying so. Why two
passes: four host devices on two cores split every program of every test four ways (and
add the collectives), which cost the suite about a fifth of its time (README).

XLA reads the flag when the backend starts, and JAX its cache settings when it is
imported, so both are set before any test imports JAX.
"""

import os
import shutil
import tempfile

import pytest

MULTI_DEVICE = 4  # what a multi_device test needs (and asserts against)
DEVICES_VAR = "PARROT_JAX_TEST_DEVICES"
DEVICES = os.environ.get(DEVICES_VAR, "1")
if DEVICES not in ("1", str(MULTI_DEVICE)):
    raise ValueError(f"{DEVICES_VAR}={DEVICES!r}; expected 1 (the default) or {MULTI_DEVICE} "
                     "(for the tests marked multi_device)")
DEVICES = int(DEVICES)
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), f"--xla_force_host_platform_device_count={DEVICES}"]).strip()

# Many tests (and every job of the tiny sweeps, in their child processes) compile the same
# tiny programs; JAX's persistent cache keys an executable by its HLO, flags and versions,
# so a program compiled once is read back by every later process. The pytest-xdist
# workers and the binaries the tests start inherit this environment from the controller,
# which made the directory and removes it at the end. A cache the user set is kept.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="parrot_jax_xla_")
    os.environ["PARROT_JAX_TEST_CACHE_OWNER"] = str(os.getpid())
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# `make test` runs one pytest worker per core and keeps each file on one worker; a slow
# file collected last (the tiny sweep of every figure: over a quarter of the suite's
# time) would run alone at the end, so these files start first.
SLOW_FIRST = ("tests/test_sweep.py", "tests/benchmarks/test_run.py", "tests/test_demo.py")


def pytest_collection_modifyitems(items):
    def rank(item):  # SLOW_FIRST's order, then the collection's (the sort is stable)
        path = item.nodeid.split("::")[0]
        return SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)
    items.sort(key=rank)
    if DEVICES < MULTI_DEVICE:
        skip = pytest.mark.skip(reason=f"needs {MULTI_DEVICE} host devices: {DEVICES_VAR}="
                                       f"{MULTI_DEVICE} pytest -m multi_device (make test runs it)")
        for item in items:
            if item.get_closest_marker("multi_device"):
                item.add_marker(skip)


def pytest_unconfigure(config):
    if os.environ.get("PARROT_JAX_TEST_CACHE_OWNER") == str(os.getpid()):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
