"""End to end: env steps/s of a full PARROT training loop next to the env-only rate.

The loop is ``parrot_jax.agents.train.train`` itself (env pool, acting through the prior,
replay, SAC updates dispatched before the pool steps so they overlap), run in a
temporary workdir with a prior at initialisation of the given architecture (its weights
do not change the cost). Its rate is read from the run's own ``perf/env_steps_per_sec``
log, one value per ``log_every`` env steps:

- ``acting``: intervals before ``start_steps`` (pool + acting + replay, no updates),
- ``training``: intervals after it (everything),

each without its first interval (which compiles ``act`` or the update). The env-only rate
is the same pool (envs, workers) stepped with random actions and nothing else. Evaluation
and checkpoints run only at the end, outside the timed intervals.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from typing import Any, Mapping

from benchmarks import env_rates
from experiments.configs import rl as rl_config
from parrot_jax.flows.prior import write_initial_prior
from parrot_jax.metrics import JSONL


def loop_config(settings: Mapping[str, Any], prior: str):
    """The run's config: ``experiments/configs/rl.py:cpu`` with the suite's overrides."""
    config = rl_config.get_config("cpu")
    config.agent, config.prior, config.progress = "parrot", prior, False
    for name in ("env", "num_envs", "num_workers", "start_steps", "updates_per_env_step",
                 "batch_size", "log_every", "replay_capacity"):
        config[name] = settings[name]
    config.network.update(dict(settings.get("network", {})))
    config.total_env_steps = settings["total_env_steps"]
    config.eval_every = config.checkpoint_every = config.total_env_steps
    config.eval_num_envs = config.eval_episodes = config.num_envs
    config.fast_compile = bool(settings.get("fast_compile", False))
    return config


def interval_rates(workdir: str, start_steps: int) -> tuple[list[float], list[float]]:
    """(acting-phase rates, training-phase rates) from the run's metrics log, each without
    the phase's first interval."""
    acting, training = [], []
    with open(os.path.join(workdir, JSONL)) as f:
        for line in f:
            row = json.loads(line)
            rate = row.get("perf/env_steps_per_sec")
            if rate is None:
                continue
            (acting if row["step"] <= start_steps else training).append((row["step"], rate))
    return [r for _, r in sorted(acting)[1:]], [r for _, r in sorted(training)[1:]]


def end_to_end_records(settings: Mapping[str, Any], repeats: int, record) -> list[dict]:
    """Records for the loop (acting phase, training phase) and the env-only pool.

    ``record(name, value, unit, config, repeats)`` builds one record (``common.record``).
    """
    from parrot_jax.agents.train import train  # JAX; imported when the section runs

    with tempfile.TemporaryDirectory(prefix="parrot-e2e-") as tmp:
        prior = write_initial_prior(os.path.join(tmp, "prior"), settings["prior_model"])
        config = loop_config(settings, prior)
        train(config, os.path.join(tmp, "run"))
        acting, training = interval_rates(os.path.join(tmp, "run"), config.start_steps)
    if not acting or not training:
        raise ValueError(f"end-to-end settings {dict(settings)} leave no timed interval: need "
                         "start_steps and total_env_steps - start_steps of at least "
                         "2 * log_every each")
    envs, workers = config.num_envs, config.num_workers or min(os.cpu_count() or 1,
                                                              config.num_envs)
    if envs % workers:
        raise ValueError(f"num_envs={envs} must be a multiple of num_workers={workers}")
    env_only, env_reps = env_rates.pool_rate(config.env, workers, envs // workers,
                                             settings["env_only_steps"], repeats)
    described = {"env": config.env, "num_envs": envs, "num_workers": workers,
                 "agent": "parrot", "network": config.network.to_dict(),
                 "prior_model": dict(settings["prior_model"]),
                 "batch_size": config.batch_size,
                 "updates_per_env_step": config.updates_per_env_step,
                 "start_steps": config.start_steps, "log_every": config.log_every,
                 "total_env_steps": config.total_env_steps}
    records = [record("e2e/env_only_steps_per_s", env_only, "steps/s",
                      dict(described, actions="uniform random, nothing else"), env_reps)]
    for phase, rates in (("acting", acting), ("training", training)):
        rate = statistics.median(rates)
        records.append(record(f"e2e/parrot_{phase}_steps_per_s", rate, "steps/s",
                              dict(described, phase=phase), rates))
        records.append(record(f"e2e/parrot_{phase}_fraction_of_env_only", rate / env_only,
                              "ratio", dict(described, phase=phase), [r / env_only
                                                                        for r in rates]))
    return records
