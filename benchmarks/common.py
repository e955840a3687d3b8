"""Shared pieces of the benchmarks: machine description and JSON records."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import time
from typing import Callable

from parrot_jax import host_memory, io, provenance


def machine() -> dict:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    # the allocator policy (parrot_jax/host_memory.py): page faults are a quarter of a CPU
    # update's time without it on this project's VM
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "host_allocator": host_memory.applied()}


def versions(*packages: str) -> dict:
    return {p: v or "not installed" for p, v in provenance.versions(*packages).items()}


def record(name: str, value: float, unit: str, config: dict, repeats: list[float]) -> dict:
    """One benchmark figure: the median of ``repeats`` and how it was produced."""
    return {"name": name, "value": value, "unit": unit, "config": config,
            "repeats": repeats, "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}


def median_rate(fn: Callable[[], int], repeats: int) -> tuple[float, list[float]]:
    """Calls ``fn`` (which returns a count of work items) ``repeats`` times after one
    warm-up call; returns the median items per second and every repeat's rate."""
    fn()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), rates


MIN_REPEAT_SECONDS = 0.2  # repeats of fast steps (a GPU's) are lengthened to this


def calibrate(run: Callable[[int], float], steps: int) -> int:
    """Steps per repeat: ``steps``, or more if ``run(steps)`` (returning the seconds it
    took) lasts under ``MIN_REPEAT_SECONDS``, so that timer and dispatch jitter do not
    dominate a repeat."""
    elapsed = run(steps)
    if elapsed >= MIN_REPEAT_SECONDS:
        return steps
    return int(math.ceil(steps * MIN_REPEAT_SECONDS / max(elapsed, 1e-6)))


def write_result(out: str | None, result: dict) -> None:
    """Writes the benchmark's JSON to ``out`` (atomically), or prints it without one."""
    if out:
        io.write_json(out, result)
        print(f"wrote {out}")
    else:
        print(json.dumps(result, indent=2))
