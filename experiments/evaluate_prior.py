"""Rolls out a behavioral prior with z ~ N(0, I) beside uniform random actions (Figure 4).

    python -m experiments.evaluate_prior --prior=runs/prior --env=parrot/PickUpCan-v0 \
        --episodes=100 --workdir=runs/prior_rollouts
    python -m experiments.evaluate_prior --prior=runs/prior --env=all --workdir=...

Episode i of both policies starts from env seed seed + i. ``--env=all`` runs the eight
test tasks. Writes to the workdir:
- ``prior_rollouts.json``: per task the prior's and random actions' successes, episodes,
  success rate and 95% Wilson interval (and per-episode outcomes), and the same for
  "object lifted" (the gripper held any object off the table at some step: useful
  interaction, the paper's Figure 4 point), with the flags, the prior's model config and
  checkpoint step;
- ``prior_rollouts.md``: the table (also printed);
- ``gifs/<Task>_prior.gif`` and ``gifs/<Task>_random.gif``: the first ``--gif_episodes``
  episodes side by side (the same scenes for both).
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging

from parrot_jax import io
from parrot_jax.envs import ENV_IDS, TEST_ENV_IDS
from parrot_jax.flows import evaluate
from parrot_jax.flows.prior import CONFIG_FILE, load_prior

_PRIOR = flags.DEFINE_string("prior", None, "Workdir of experiments.train_prior.", required=True)
_ENV = flags.DEFINE_string("env", "parrot/PickUpCan-v0", "Env id, or 'all' (the test tasks).")
_EPISODES = flags.DEFINE_integer("episodes", 100, "Episodes per task and policy.")
_SEED = flags.DEFINE_integer("seed", 0, "First env seed; also seeds z and the random actions.")
_NUM_ENVS = flags.DEFINE_integer("num_envs", 8, "Envs stepped together (one batch per step).")
_WORKERS = flags.DEFINE_integer("workers", 0, "Env processes (0: all cores).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of the prior (default: latest).")
_GIF_EPISODES = flags.DEFINE_integer("gif_episodes", 4, "Episodes per GIF (0: no GIFs).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)


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


def main(argv):
    del argv
    if not flags.FLAGS["verbosity"].present:  # Orbax logs every restore at INFO
        logging.set_verbosity(logging.WARNING)
    start = time.time()
    run(_PRIOR.value, _ENV.value, _EPISODES.value, _SEED.value, _NUM_ENVS.value, _WORKERS.value,
        _WORKDIR.value, _STEP.value, _GIF_EPISODES.value)
    print(f"wrote {_WORKDIR.value}/prior_rollouts.json, prior_rollouts.md, gifs/ "
          f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    app.run(main)
