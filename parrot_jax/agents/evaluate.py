"""Restore an agent from its run directory alone, and roll it out.

    agent, params, step = load_agent("runs/rl/parrot")     # latest checkpoint
    result = evaluate_agent("runs/rl/parrot", episodes=50)  # success rate with a 95% CI

The run's ``config.json`` (written by ``experiments.train_rl``) rebuilds the agent's
networks, and the checkpoint's ``params`` item holds the actor, the critic and, for
``parrot`` and ``prior_explore``, the frozen prior (``hirl``: its frozen decoder), so
nothing outside the directory is read. Episode ``i`` starts from env seed ``seed + i``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from parrot_jax import checkpoint
from parrot_jax.agents.agent import Agent
from parrot_jax.agents.programs import StartRecorder, act
from parrot_jax.agents.sac import init_params
from parrot_jax.agents.train import agent_from_description, run_env
from parrot_jax.data import transitions
from parrot_jax.envs import check_env_id
from parrot_jax.flows.evaluate import Rollouts, rollout_success
from parrot_jax.run_config import CONFIG_FILE
from parrot_jax.stats import rank_auc, wilson_interval


def read_description(workdir: str) -> dict[str, Any]:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir}: no RL run here ({CONFIG_FILE} missing); pass the "
                                "workdir of experiments.train_rl")
    with open(path) as f:
        description = json.load(f)
    if "agent" not in description or "spaces" not in description:
        raise ValueError(f"{path} is not an RL run's config (no 'agent'/'spaces'); is "
                         f"{workdir} a prior's workdir?")
    return description


# What makes two evaluations of a run the same one (then rewriting the file repeats it).
SAME_EVALUATION = ("step", "deterministic", "critic_samples", "seed", "episodes")


def refuse_overwrite(out: str, evaluation: dict) -> None:
    """ValueError if ``out`` holds an evaluation that differs from ``evaluation`` in
    any of ``SAME_EVALUATION``: rewriting it would lose a result (e.g. runs scored before
    ``default_name`` told sampled actions apart from the mode kept both in one name)."""
    if not os.path.exists(out):
        return
    try:
        with open(out) as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = None
    required = set(SAME_EVALUATION) - {"critic_samples"}  # older summaries lack it
    if not (isinstance(old, dict) and required <= old.keys()):
        raise ValueError(f"{out} exists and is not an evaluation summary; not overwritten: "
                         "pass --out=PATH to write elsewhere")
    old = {"critic_samples": 1, **old}  # those older summaries sampled once
    differ = {k: (old[k], evaluation[k]) for k in SAME_EVALUATION if old[k] != evaluation[k]}
    if differ:
        raise ValueError(
            f"{out} holds another evaluation ("
            + ", ".join(f"{k} {a} there, {b} here" for k, (a, b) in differ.items())
            + f"); not overwritten: pass --out=PATH to write this one elsewhere, or remove "
            f"{out} to replace it")


def load_agent(workdir: str, step: int | None = None) -> tuple[Agent, Any, int]:
    """``(agent, acting params, checkpoint step in env steps)``; latest step by default."""
    description = read_description(workdir)
    agent = agent_from_description(description)
    spaces = description["spaces"]

    def fresh():
        obs = jax.numpy.zeros(spaces["observation_shape"], spaces["observation_dtype"])
        actor, critic = init_params(agent.networks, jax.random.key(0), obs)
        params = {"actor": actor, "critic": critic}
        frozen = agent.init_frozen(jax.random.key(0))
        if frozen is not None:
            params["prior"] = frozen
        return params

    params, step = checkpoint.load_params(os.path.join(workdir, checkpoint.DIRECTORY),
                                          jax.eval_shape(fresh), step)
    return agent, params, step


def evaluate_agent(workdir: str, step: int | None = None, episodes: int = 50,
                   deterministic: bool = True, seed: int = 1_000_000, num_envs: int = 8,
                   num_workers: int | None = None, keep_frames: int = 0,
                   critic_samples: int = 1) -> tuple[dict[str, Any], Rollouts]:
    """Rolls the restored agent out in its run's env: (summary dict, rollouts).
    ``critic_samples > 1`` (with ``deterministic=False``): every action is the best of that
    many policy samples by the critic (``Agent.act_by_critic``).

    Beside the outcomes, the critic's ``Q(s_0, a_0)`` of every episode's first step and
    ``q_start_auc``: how well it ranks the episodes that succeeded above those that failed
    (``stats.rank_auc``; 0.5 is no better than chance, None without both kinds)."""
    description = read_description(workdir)
    agent, params, step = load_agent(workdir, step)
    policy = StartRecorder(agent, params, deterministic, critic_samples)
    rollouts = rollout_success(run_env(description, params.get("prior")), policy, episodes, seed,
                               num_envs=min(num_envs, episodes), num_workers=num_workers,
                               keep_frames=keep_frames, discount=agent.hp.discount)
    q_start = policy.q_start(episodes)
    successes = int(rollouts.successes.sum())
    low, high = wilson_interval(successes, episodes)
    summary = {"workdir": os.path.abspath(workdir), "agent": agent.name,
               "env": description["env"], "step": step, "episodes": episodes,
               "deterministic": deterministic, "critic_samples": critic_samples,
               "seed": seed,
               "success_rate": successes / episodes, "successes": successes,
               "success_ci95": [low, high], "mean_return": float(rollouts.returns.mean()),
               "lifted_rate": float(rollouts.lifted.mean()),
               "q_start_auc": rank_auc(q_start[rollouts.successes],
                                       q_start[~rollouts.successes]),
               "per_episode_success": rollouts.successes.astype(int).tolist(),
               "per_episode_return": rollouts.returns.tolist(),
               "per_episode_discounted_return": rollouts.discounted_returns.tolist(),
               "per_episode_q_start": q_start.tolist()}
    return summary, rollouts


def agent_episodes(workdir: str, episodes: int, stochastic: bool, seed: int,
                   step: int | None = None):
    """``Transitions`` of the run's agent at ``step`` (default: latest) in its env
    (env-space actions; episode ``i`` from env seed ``seed + i``), with the env's spaces
    and the step restored."""
    description = read_description(workdir)
    env_id, horizon = description["env"], description.get("action_horizon", 1)
    if horizon > 1:  # its one action is a plan: no per-step action to record
        raise ValueError(f"{workdir}: agent {description['agent']!r} acts in {horizon}-step "
                         "open-loop plans; only agents acting once per env step export "
                         "their episodes")
    check_env_id(env_id)  # imports the module of a "module:id"
    agent, params, step = load_agent(workdir, step)
    key = jax.random.key(seed)

    def policy(obs, episode, t):
        k = jax.random.fold_in(jax.random.fold_in(key, episode), t)
        return np.asarray(act(agent, params, np.asarray(obs)[None], k, not stochastic)[1][0])

    env = gym.make(env_id.rpartition(":")[2])
    try:
        data = transitions.record(env, policy, episodes, seed, env_id.rpartition(":")[2])
    finally:
        env.close()
    return data, env.observation_space, env.action_space, step
