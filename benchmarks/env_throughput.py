"""Env throughput: steps/s of one env and of the env pool, with random actions.

    python -m benchmarks.env_throughput --out=benchmarks/results/env_throughput.json

Every step includes IK, physics and the 48x48 render; resets (every ``horizon`` steps)
are included in the time, as they are in data collection. The pool figures are for N
worker processes with E envs each (the pool steps in lockstep, so with one env per
worker every step waits for the slowest env; several envs per worker average that
out). The goal is N workers >= 0.8 * N * one env.
"""

from __future__ import annotations

import os

from absl import app, flags

from benchmarks import common
from benchmarks.env_rates import async_vector_rate, pool_rate, single_env_rate

_OUT = flags.DEFINE_string("out", None, "JSON file to write (also printed).")
_ENV = flags.DEFINE_string("env", "parrot/PickPlaceTrain-v0", "Env id.")
_STEPS = flags.DEFINE_integer("steps", 800, "Env steps per repeat: of the one env, and of each pool worker.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed repeats (after one warm-up).")
_WORKERS = flags.DEFINE_list("workers", None, "Pool sizes to measure (default 1..cores).")
_RENDERERS = flags.DEFINE_list("renderers", ["tiny"], "Renderers of the one-env rate "
                                "(tiny, egl); the pool rates use the first.")
_PER_WORKER = flags.DEFINE_list("envs_per_worker", ["1", "4", "8"], "Envs per worker to measure.")


def main(argv):
    del argv
    cores = os.cpu_count() or 1
    sizes = [int(w) for w in _WORKERS.value] if _WORKERS.value else list(range(1, cores + 1))
    config = {"env": _ENV.value, "steps": _STEPS.value, "repeats": _REPEATS.value,
              "actions": "uniform random", "render": "48x48 TinyRenderer"}
    records = []
    single = None
    for renderer in _RENDERERS.value:
        rate, reps = single_env_rate(_ENV.value, _STEPS.value, _REPEATS.value, renderer)
        name = "env/single_steps_per_s" if renderer == "tiny" else \
            f"env/single_{renderer}_steps_per_s"
        records.append(common.record(name, rate, "steps/s",
                                     dict(config, render=f"48x48 {renderer}"), reps))
        print(f"one env ({renderer}): {rate:.0f} steps/s")
        single = rate if single is None else single
    if _RENDERERS.value[0] != "tiny":
        os.environ["PARROT_JAX_RENDERER"] = _RENDERERS.value[0]  # before the pools start
    for w in sizes:
        for e in (int(x) for x in _PER_WORKER.value):
            rate, reps = pool_rate(_ENV.value, w, e, _STEPS.value, _REPEATS.value)
            records.append(common.record(
                f"env/pool_{w}_workers_{e}_envs_each_steps_per_s", rate, "steps/s",
                dict(config, workers=w, envs=w * e, scaling=rate / (w * single)), reps))
            print(f"pool, {w} workers x {e} envs: {rate:.0f} steps/s "
                  f"({rate / (w * single):.2f} x {w} x one env)")
        rate, reps = async_vector_rate(_ENV.value, w, _STEPS.value, _REPEATS.value)
        records.append(common.record(
            f"env/gymnasium_async_{w}_envs_steps_per_s", rate, "steps/s",
            dict(config, workers=w, envs=w, scaling=rate / (w * single)), reps))
        print(f"gymnasium AsyncVectorEnv, {w} envs: {rate:.0f} steps/s "
              f"({rate / (w * single):.2f} x {w} x one env)")
    result = {"machine": common.machine(), "versions": common.versions("pybullet", "gymnasium",
                                                                       "numpy"),
              "records": records}
    common.write_result(_OUT.value, result)


if __name__ == "__main__":
    app.run(main)
