"""The prior beside uniform random actions on one or all test tasks, with the outputs
``experiments.evaluate_prior`` writes (no flags: also used by ``experiments.demo``)."""

from __future__ import annotations

import json
import os

import numpy as np

from parrot_jax import io
from parrot_jax.envs import ENV_IDS, TEST_ENV_IDS, check_env_id
from parrot_jax.envs.manipulation import check_container_rgba
from parrot_jax.envs.tasks import TASKS
from parrot_jax.flows import evaluate
from parrot_jax.flows.prior import CONFIG_FILE, load_prior

PATHS_FILE = "paths.npz"  # end-effector paths and target starts (Figure 4's plot)


def env_ids(env: str) -> tuple[str, ...]:
    """The tasks named by ``--env`` ('all': the test tasks; or ids joined by commas: the
    suite's, or any gymnasium id of the same spaces, e.g. ``module:id`` of a diagnostic
    task); ValueError listing the choices for an unknown one."""
    if env == "all":
        return TEST_ENV_IDS
    ids = tuple(e.strip() for e in env.split(","))
    for env_id in ids:
        if env_id in ENV_IDS:
            continue
        try:
            check_env_id(env_id)
        except (ValueError, ImportError):
            raise ValueError(f"unknown env id {env_id!r}; valid: 'all' (the test tasks), "
                             f"one or more (comma-separated) of {', '.join(ENV_IDS)}, or "
                             "another registered gymnasium id ('module:id' imports its "
                             "module)") from None
    return ids


def grid(results: list[evaluate.PriorEvaluation], scale: int = 3, gap: int = 6) -> np.ndarray:
    """One GIF's frames: a row per task, the prior's episodes left of the random ones."""
    from PIL import Image, ImageDraw

    rows = []
    for r in results:
        halves = [io.side_by_side(rollouts.frames) for rollouts in (r.prior, r.random)]
        rows.append((r.env_id, halves))
    length = max(h.shape[0] for _, halves in rows for h in halves)
    width = max(sum(h.shape[2] for h in halves) + gap for _, halves in rows) * scale
    strips = []
    for env_id, (prior, random) in rows:
        white = np.full((length, prior.shape[1], gap, 3), 255, np.uint8)
        row = io.upscale_frames(np.concatenate(
            [io.hold_last(prior, length), white, io.hold_last(random, length)], axis=2), scale)
        label = Image.new("RGB", (width, 14), (255, 255, 255))
        ImageDraw.Draw(label).text(
            (2, 1), f"{env_id}: prior, z ~ N(0, I) (left) | uniform random actions (right)",
            fill=(0, 0, 0))
        label = np.repeat(np.asarray(label)[None], length, axis=0)
        row = np.pad(row, ((0, 0), (0, 0), (0, width - row.shape[2]), (0, 0)),
                     constant_values=255)
        strips += [label, row]
    return np.concatenate(strips, axis=1)


def markdown(results: list[evaluate.PriorEvaluation]) -> str:
    """Task success, success with some object (any of the three: the prior's skill, as it
    cannot know the target), and the share of episodes that lifted any object; prior vs
    random."""
    def cell(rate) -> str:
        if rate is None:
            return ""
        lo, hi = rate.ci95
        return f"{rate.rate:.2f} [{lo:.2f}, {hi:.2f}]"

    lines = ["| task | success: prior | success: random | some object: prior | "
             "some object: random | object lifted: prior | object lifted: random | "
             "episodes |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        p, u = r.prior, r.random
        lines.append(f"| {r.env_id} | {cell(p.rate(r.env_id))} | {cell(u.rate(r.env_id))} | "
                     f"{cell(p.some_object_rate(r.env_id))} | "
                     f"{cell(u.some_object_rate(r.env_id))} | "
                     f"{cell(p.lift_rate(r.env_id))} | {cell(u.lift_rate(r.env_id))} | "
                     f"{len(p.successes)} |")
    return "\n".join(lines) + "\n"


def mean_rates(tasks: list[dict]) -> str:
    """A markdown table of the mean rates over the grasp and over the place tasks of a
    ``prior_rollouts.json``'s ``tasks``: task success, some object succeeding, some object
    lifted, for the prior and for random actions."""
    rows = ["| tasks | policy | task success | some object | some object lifted |",
            "|---|---|---|---|---|"]
    for kind, prefix in (("grasp", "PickUp"), ("place", "Place")):
        group = [t for t in tasks if t["env_id"].split("/")[-1].startswith(prefix)]
        if not group:
            continue
        for policy in ("prior", "random"):
            task, some, lifted = np.mean(
                [(t[policy]["success_rate"], t[policy]["some_object"]["success_rate"],
                  t[policy]["lifted"]["success_rate"]) for t in group], axis=0)
            rows.append(f"| {len(group)} {kind} | {policy} | {task:.3f} | {some:.3f} | "
                        f"{lifted:.3f} |")
    return "\n".join(rows)


def check_env_kwargs(ids: tuple[str, ...], env_kwargs: dict | None) -> None:
    """ValueError unless every env of ``ids`` takes ``env_kwargs`` (today: the suite's
    place tasks take ``container_rgba``)."""
    unknown = sorted(set(env_kwargs or {}) - {"container_rgba"})
    if unknown:
        raise ValueError(f"env_kwargs {unknown}: expected only 'container_rgba'")
    if env_kwargs and "container_rgba" in env_kwargs:
        for env_id in ids:
            if env_id not in TASKS:
                raise ValueError(f"container_rgba is for the suite's place tasks; {env_id!r} "
                                 "is not the suite's")
            check_container_rgba(env_kwargs["container_rgba"], TASKS[env_id])


def run(prior_dir: str, env: str, episodes: int, seed: int, num_envs: int, workers: int,
        workdir: str, step: int | None = None, gif_episodes: int = 4,
        env_kwargs: dict | None = None) -> dict:
    """Evaluates the prior on the tasks of ``env``, writes the outputs, returns the JSON.
    ``env_kwargs``: passed to every env's constructor (e.g. ``container_rgba``)."""
    ids = env_ids(env)
    for name, value, least in (("episodes", episodes, 1), ("num_envs", num_envs, 1),
                               ("workers", workers, 0), ("gif_episodes", gif_episodes, 0)):
        if value < least:
            raise ValueError(f"--{name} must be >= {least}, got {value}")
    check_env_kwargs(ids, env_kwargs)  # before any rollout
    prior = load_prior(prior_dir, step)
    with open(os.path.join(prior_dir, CONFIG_FILE)) as f:
        model = json.load(f)["model"]
    results = []
    for env_id in ids:
        result = evaluate.evaluate_prior(prior, env_id, episodes, seed, num_envs,
                                         workers or None, keep_frames=gif_episodes,
                                         env_kwargs=env_kwargs)
        results.append(result)
        name = env_id.rpartition("/")[2].removesuffix("-v0")
        for policy, rollouts in (("prior", result.prior), ("random", result.random)):
            if rollouts.frames:
                path = os.path.join(workdir, "gifs", f"{name}_{policy}.gif")
                io.write_gif(path, io.side_by_side(rollouts.frames))
        some = [r.some_object_rate(env_id) for r in (result.prior, result.random)]
        some_text = ("" if some[0] is None else f"; some object prior {some[0].successes}/"
                     f"{episodes}, random {some[1].successes}/{episodes}")
        print(f"{env_id}: success prior {result.prior.successes.sum()}/{episodes}, random "
              f"{result.random.successes.sum()}/{episodes}{some_text}; object lifted prior "
              f"{result.prior.lifted.sum()}/{episodes}, random {result.random.lifted.sum()}/"
              f"{episodes} ({result.seconds:.0f} s)", flush=True)
    if gif_episodes:
        io.write_gif(os.path.join(workdir, "gifs", "grid.gif"), grid(results), scale=1)
    paths = {f"{r.env_id}/{policy}/{field}": value for r in results
             for policy, rollouts in (("prior", r.prior), ("random", r.random))
             for field, value in (("ee_paths", rollouts.ee_paths),
                                  ("target_starts", rollouts.target_starts))
             if value is not None}
    if paths:
        io.write_npz(os.path.join(workdir, PATHS_FILE), **paths)
    summary = {"prior": {"workdir": os.path.abspath(prior_dir), "step": prior.step,
                         "model": model},
               "config": {"env": env, "episodes": episodes, "seed": seed, "num_envs": num_envs,
                          "workers": workers, "step": step, "env_kwargs": env_kwargs or {}},
               "seed": seed, "tasks": [r.as_dict() for r in results]}
    table = markdown(results)
    io.write_json(os.path.join(workdir, "prior_rollouts.json"), summary)
    io.write_text(os.path.join(workdir, "prior_rollouts.md"), table)
    print(f"\nPrior (step {prior.step}) vs uniform random actions, {episodes} episodes per "
          f"task, seeds {seed}..{seed + episodes - 1}:\n\n{table}")
    return summary
