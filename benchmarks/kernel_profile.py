"""Where a jitted program's device time goes, kernel by kernel, from a profiler trace.

    python -m benchmarks.kernel_profile [--network=paper|cpu|tiny] [--batch=256] \
        [--part=update] [--calls=20] [--top=25] [--out=FILE]

One part of ``benchmarks.sac_breakdown`` (default: the whole SAC update) is compiled, warmed
up, then called ``--calls`` times inside a ``jax.profiler`` trace. The trace is read back
(``jax.profiler.ProfileData``) and its kernels summed: on a GPU, every event on the device
plane's lines (streams); on a CPU, the host's events that name an HLO op. Per call:

- ``wall_ms``: the loop's wall-clock time over ``calls`` (``block_until_ready`` at the end);
- ``busy_ms``: the union of the kernels' intervals (time the device ran something);
- ``kernels``: how many ran, and their mean length.

``busy_ms`` well under ``wall_ms`` means the device waits (launches, the host, syncs);
``busy_ms`` near it with many kernels of a few microseconds means the kernels themselves are
too small for the device. ``top`` lists the kernels by total time (name, the HLO op that
launched it where the trace says, calls, total and mean microseconds per update) and
``categories`` sums them as convolution / matmul / other by name.
"""

from __future__ import annotations

import collections
import glob
import os
import tempfile
import time

import jax
from absl import app, flags

from benchmarks import common, sac_breakdown

CATEGORIES = (("convolution", ("conv", "cudnn", "implicit", "winograd", "fft")),
              ("matmul", ("gemm", "cutlass", "cublas", "xmma", "nvjet", "dot", "matmul")))


def category(name: str) -> str:
    lowered = name.lower()
    for label, needles in CATEGORIES:
        if any(n in lowered for n in needles):
            return label
    return "other"


# lines a device plane may hold that summarize its kernels rather than run them
DERIVED_LINES = ("XLA Modules", "XLA Ops", "XLA TraceMe", "Steps", "Framework",
                 "Source code", "TensorFlow Name Scope", "TensorFlow Ops")


def kernel_events(profile, lines: dict | None = None) -> list[tuple[str, str, float, float]]:
    """(name, hlo_op, start_ns, duration_ns) of every kernel in a ``ProfileData``; counts of
    every line's events go into ``lines`` ("plane/line": [events, kept])."""
    planes = list(profile.planes)
    devices = [p for p in planes if p.name.startswith("/device:")]
    found = []
    lines = {} if lines is None else lines
    for plane in devices or [p for p in planes if p.name == "/host:CPU"]:
        for line in plane.lines:
            events = list(line.events)
            keep = not line.name.startswith(DERIVED_LINES)
            lines[f"{plane.name}/{line.name}"] = [len(events), len(events) if keep else 0]
            if not keep:
                continue
            for event in events:
                stats = dict(event.stats)
                if not devices and "hlo_op" not in stats:
                    continue  # a CPU trace's threads also hold the runtime's own events
                found.append((event.name, str(stats.get("hlo_op", "")),
                              float(event.start_ns), float(event.duration_ns)))
    return found


def union_ns(intervals) -> float:
    """Length of the union of (start, duration) intervals."""
    total, end = 0.0, float("-inf")
    for start, duration in sorted(intervals):
        stop = start + duration
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def summarize(events, calls: int, wall_seconds: float, top: int) -> dict:
    by_name = collections.defaultdict(lambda: {"calls": 0, "total_ns": 0.0, "hlo_op": ""})
    for name, op, _, duration in events:
        entry = by_name[name]
        entry["calls"] += 1
        entry["total_ns"] += duration
        entry["hlo_op"] = entry["hlo_op"] or op
    ranked = sorted(by_name.items(), key=lambda kv: -kv[1]["total_ns"])
    categories = collections.Counter()
    for name, entry in by_name.items():
        categories[category(name)] += entry["total_ns"]
    total = sum(e[3] for e in events)
    return {
        "calls": calls,
        "wall_ms": wall_seconds / calls * 1e3,
        "busy_ms": union_ns([(e[2], e[3]) for e in events]) / calls / 1e6,
        "kernel_ms": total / calls / 1e6,
        "kernels": len(events) / calls,
        "mean_kernel_us": total / max(len(events), 1) / 1e3,
        "categories_ms": {k: v / calls / 1e6 for k, v in sorted(categories.items())},
        "top": [{"name": name[:160], "hlo_op": e["hlo_op"], "category": category(name),
                 "calls_per_update": e["calls"] / calls,
                 "us_per_update": e["total_ns"] / calls / 1e3,
                 "mean_us": e["total_ns"] / e["calls"] / 1e3}
                for name, e in ranked[:top]],
    }


def profile(network_name: str, batch: int, part: str, calls: int, top: int) -> dict:
    found = sac_breakdown.parts(sac_breakdown.NETWORKS[network_name], batch,
                                variants=part not in sac_breakdown.BASE_PARTS)
    if part not in found:
        raise ValueError(f"part {part!r} is not one of {sorted(found)}")
    if calls < 1:
        raise ValueError(f"calls={calls}; expected a positive integer")
    fn, args = found[part]
    compiled = jax.jit(fn).lower(*args).compile()
    for _ in range(3):  # warm-up (autotuning, allocations) outside the trace
        jax.block_until_ready(compiled(*args))
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            start = time.perf_counter()
            out = None
            for _ in range(calls):
                out = compiled(*args)
            jax.block_until_ready(out)
            wall = time.perf_counter() - start
        paths = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
        if not paths:
            raise RuntimeError(f"the profiler wrote no .xplane.pb under {trace_dir}")
        lines = {}
        events = kernel_events(jax.profiler.ProfileData.from_file(paths[0]), lines)
    devices = jax.devices()
    return {"network": network_name, "batch": batch, "part": part,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "machine": common.machine(),
            "devices": {"platform": devices[0].platform, "kind": devices[0].device_kind},
            "versions": common.versions("jax", "jaxlib", "flax"),
            **summarize(events, calls, wall, top), "lines": lines}


def format_summary(result: dict) -> str:
    lines = [f"{result['part']}, {result['network']} networks, batch {result['batch']}, "
             f"{result['devices']['kind']} (XLA_FLAGS={result['xla_flags']!r})",
             f"per call: wall {result['wall_ms']:.3f} ms, device busy {result['busy_ms']:.3f} "
             f"ms, {result['kernels']:.0f} kernels of {result['mean_kernel_us']:.1f} us on "
             "average; " + ", ".join(f"{k} {v:.3f} ms"
                                     for k, v in result["categories_ms"].items()),
             f"{'us/update':>10}{'calls':>7}{'mean us':>9}  kernel (hlo op)"]
    lines += [f"{k['us_per_update']:>10.1f}{k['calls_per_update']:>7.1f}{k['mean_us']:>9.1f}"
              f"  {k['name'][:70]} ({k['hlo_op']})" for k in result["top"]]
    return "\n".join(lines)


def main(argv):
    del argv
    f = flags.FLAGS
    if f.batch < 1:
        raise app.UsageError(f"--batch={f.batch}; expected a positive integer")
    result = profile(f.network, f.batch, f.part, f.calls, f.top)
    print(format_summary(result))
    if f.out:
        common.write_result(f.out, result)


if __name__ == "__main__":
    # defined here, not at import (tests import this beside modules that define --out)
    flags.DEFINE_enum("network", "paper", list(sac_breakdown.NETWORKS), "The SAC networks.")
    flags.DEFINE_integer("batch", 256, "Batch size.")
    flags.DEFINE_string("part", "update", "A part of benchmarks.sac_breakdown (--variants).")
    flags.DEFINE_integer("calls", 20, "Calls inside the trace.")
    flags.DEFINE_integer("top", 25, "Kernels listed.")
    flags.DEFINE_string("out", None, "JSON file to write (atomically).")
    app.run(main)
