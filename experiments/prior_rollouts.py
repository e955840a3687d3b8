"""The prior beside uniform random actions on one or all test tasks, with the outputs
``experiments.evaluate_prior`` writes (no flags: also used by ``experiments.demo``)."""

from __future__ import annotations

import json
import os

from parrot_jax import io
from parrot_jax.envs import ENV_IDS, TEST_ENV_IDS
from parrot_jax.flows import evaluate
from parrot_jax.flows.prior import CONFIG_FILE, load_prior


def env_ids(env: str) -> tuple[str, ...]:
    """The tasks named by ``--env``; ValueError listing the choices for an unknown one."""
    if env == "all":
        return TEST_ENV_IDS
    if env not in ENV_IDS:
        raise ValueError(f"unknown env id {env!r}; valid: 'all' (the test tasks) or one of "
                         f"{', '.join(ENV_IDS)}")
    return (env,)


def markdown(results: list[evaluate.PriorEvaluation]) -> str:
    """Success, and the share of episodes that lifted any object, prior vs random."""
    def cell(rate) -> str:
        lo, hi = rate.ci95
        return f"{rate.rate:.2f} [{lo:.2f}, {hi:.2f}]"

    lines = ["| task | success: prior | success: random | object lifted: prior | "
             "object lifted: random | episodes |", "|---|---|---|---|---|---|"]
    for r in results:
        p, u = r.prior, r.random
        lines.append(f"| {r.env_id} | {cell(p.rate(r.env_id))} | {cell(u.rate(r.env_id))} | "
                     f"{cell(p.lift_rate(r.env_id))} | {cell(u.lift_rate(r.env_id))} | "
                     f"{len(p.successes)} |")
    return "\n".join(lines) + "\n"


def run(prior_dir: str, env: str, episodes: int, seed: int, num_envs: int, workers: int,
        workdir: str, step: int | None = None, gif_episodes: int = 4) -> dict:
    """Evaluates the prior on the tasks of ``env``, writes the outputs, returns the JSON."""
    ids = env_ids(env)
    for name, value, least in (("episodes", episodes, 1), ("num_envs", num_envs, 1),
                               ("workers", workers, 0), ("gif_episodes", gif_episodes, 0)):
        if value < least:
            raise ValueError(f"--{name} must be >= {least}, got {value}")
    prior = load_prior(prior_dir, step)
    with open(os.path.join(prior_dir, CONFIG_FILE)) as f:
        model = json.load(f)["model"]
    results = []
    for env_id in ids:
        result = evaluate.evaluate_prior(prior, env_id, episodes, seed, num_envs,
                                         workers or None, keep_frames=gif_episodes)
        results.append(result)
        name = env_id.split("/")[1].removesuffix("-v0")
        for policy, rollouts in (("prior", result.prior), ("random", result.random)):
            if rollouts.frames:
                path = os.path.join(workdir, "gifs", f"{name}_{policy}.gif")
                io.write_gif(path, io.side_by_side(rollouts.frames))
        print(f"{env_id}: success prior {result.prior.successes.sum()}/{episodes}, random "
              f"{result.random.successes.sum()}/{episodes}; object lifted prior "
              f"{result.prior.lifted.sum()}/{episodes}, random {result.random.lifted.sum()}/"
              f"{episodes} ({result.seconds:.0f} s)", flush=True)
    summary = {"prior": {"workdir": os.path.abspath(prior_dir), "step": prior.step,
                         "model": model},
               "config": {"env": env, "episodes": episodes, "seed": seed, "num_envs": num_envs,
                          "workers": workers, "step": step},
               "seed": seed, "tasks": [r.as_dict() for r in results]}
    table = markdown(results)
    io.write_json(os.path.join(workdir, "prior_rollouts.json"), summary)
    io.write_text(os.path.join(workdir, "prior_rollouts.md"), table)
    print(f"\nPrior (step {prior.step}) vs uniform random actions, {episodes} episodes per "
          f"task, seeds {seed}..{seed + episodes - 1}:\n\n{table}")
    return summary
