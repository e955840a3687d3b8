"""Rollouts of a policy in an env pool, and of the behavioral prior beside uniform noise.

``rollout_success(env, act_fn, episodes, seed)`` runs any batched policy
``act_fn(obs, key) -> actions`` in an ``EnvPool``, in waves of ``num_envs`` episodes:
wave ``w`` resets the pool with ``seed + w * num_envs``, so episode ``i`` always starts
from env seed ``seed + i`` whatever the policy, and each wave steps until every env has
ended its episode (with the suite's fixed horizon they all end together). The key passed
at step ``t`` of wave ``w`` is ``fold_in(fold_in(key, w), t)``, with ``key =
jax.random.key(seed)`` unless given, so a run is deterministic given its seed (and
``num_envs``). An episode's success is ``info["success"]`` at its final step (False for
envs that do not report one).

A policy with per-episode state (e.g. the prior with one ``z`` held for a whole episode)
may have a ``reset(key)`` method: it is called at the start of every wave with the wave's
key, before the first step.

``evaluate_prior`` runs the prior with ``z ~ N(0, I)`` at every step (paper Figure 4) and
uniform random actions in ``[-1, 1]^action_dim`` on the same env seeds, with independent
noise. ``prior_act_fn(prior, latent=...)`` also gives the prior with ``z = 0`` (the mode
of the base) or with one ``z`` drawn per episode and held.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from parrot_jax import io
from parrot_jax.envs import phases as phases_lib
from parrot_jax.envs.pool import EnvPool
from parrot_jax.envs.rollout import SuccessRate
from parrot_jax.envs.tasks import TASKS
from parrot_jax.flows.prior import BehavioralPrior

ActFn = Callable[[np.ndarray, jax.Array], np.ndarray]  # (obs (B, ...), key) -> (B, action_dim)


@dataclasses.dataclass(frozen=True)
class Rollouts:
    """Outcomes of ``episodes`` episodes; index ``i`` is the episode from env seed seed + i."""

    successes: np.ndarray  # (episodes,) bool: success at the episode's final step
    returns: np.ndarray  # (episodes,) float64: sum of the episode's rewards
    lifted: np.ndarray  # (episodes,) bool: some object was held off the table at some step
    frames: tuple[np.ndarray, ...]  # first episodes: (T + 1, H, W, C) uint8, reset image first
    env_steps: int  # env steps taken, all envs together (for throughput)
    # Suite envs only (None elsewhere): end-effector positions (episodes, T + 1, 3), reset
    # first (an episode that ended early holds its last position), and each episode's
    # target object position at reset (episodes, 3), for trajectory plots (paper Figure 4).
    ee_paths: np.ndarray | None = None
    target_starts: np.ndarray | None = None
    phases: phases_lib.Phases | None = None  # suite envs only: how far each episode got
    # (episodes,) sum over the episode of discount**t * r_t (t from 0)
    discounted_returns: np.ndarray | None = None

    def rate(self, env_id: str) -> SuccessRate:
        return SuccessRate(env_id, int(self.successes.sum()), len(self.successes))

    def lift_rate(self, env_id: str) -> SuccessRate:
        """Episodes in which the gripper held any object off the table (interaction)."""
        return SuccessRate(env_id, int(self.lifted.sum()), len(self.lifted))

    def some_object_rate(self, env_id: str) -> SuccessRate | None:
        """Episodes that met the task's success condition with *any* of the scene's objects
        (grasped, or placed, at the last step): the skill a task-agnostic prior can show,
        since it cannot know the target. None outside the suite."""
        if self.phases is None or env_id not in TASKS:
            return None
        end = "placed" if TASKS[env_id].goal == "place" else "grasped"
        return SuccessRate(env_id, int(self.phases.any_object(end).sum()), len(self.phases))


def rollout_success(env: str | EnvPool, act_fn: ActFn, episodes: int, seed: int = 0,
                    num_envs: int | None = None, num_workers: int | None = None,
                    keep_frames: int = 0, key: jax.Array | None = None,
                    max_steps: int = 10_000, discount: float = 0.99) -> Rollouts:
    """Runs ``act_fn`` for ``episodes`` episodes (seeding and keys: module docstring).

    Args:
        env: an env id or factory (a pool of ``num_envs`` envs, default 8, in ``num_workers``
            processes is made and closed here) or an open ``EnvPool`` or any object with
            its ``num_envs``, ``reset(seed=)`` and ``step`` (used as is; the caller closes it).
        act_fn: ``(obs (num_envs, *obs_shape), key) -> actions (num_envs, *action_shape)``.
        keep_frames: how many of the first episodes to record frames of.
        max_steps: a wave still running after this many steps raises ``RuntimeError``.
        discount: for ``Rollouts.discounted_returns``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if keep_frames < 0:
        raise ValueError(f"keep_frames must be >= 0, got {keep_frames}")
    key = jax.random.key(seed) if key is None else key
    if isinstance(env, str) or not hasattr(env, "step"):  # an id or an env factory
        with EnvPool(env, num_envs or 8, num_workers) as pool:
            return _rollouts(pool, act_fn, episodes, seed, keep_frames, key, max_steps,
                             discount)
    if num_envs not in (None, env.num_envs):
        raise ValueError(f"num_envs={num_envs} but the pool given has {env.num_envs} envs")
    return _rollouts(env, act_fn, episodes, seed, keep_frames, key, max_steps, discount)


def _rollouts(pool, act_fn, episodes, seed, keep_frames, key, max_steps, discount) -> Rollouts:
    n = pool.num_envs
    successes, returns, lifted, frames, env_steps, paths, targets = [], [], [], [], 0, [], []
    phases, discounted = [], []
    for wave in range(-(-episodes // n)):
        keep = min(max(0, keep_frames - wave * n), n)
        wave_key = jax.random.fold_in(key, wave)
        if hasattr(act_fn, "reset"):
            act_fn.reset(wave_key)
        out = _wave(pool, act_fn, wave_key, seed + wave * n, keep, max_steps, discount)
        successes.append(out[0])
        returns.append(out[1])
        lifted.append(out[2])
        frames.extend(out[3])
        env_steps += out[4] * n
        paths.append(out[5])
        targets.append(out[6])
        phases.append(out[7])
        discounted.append(out[8])
    if any(p is None for p in paths):
        ee_paths = target_starts = None
    else:
        length = max(p.shape[1] for p in paths)
        ee_paths = np.concatenate([io.hold_last(p, length, axis=1) for p in paths])[:episodes]
        target_starts = np.concatenate(targets)[:episodes]
    phases = (None if any(p is None for p in phases)
              else phases_lib.Phases.concatenate(phases).take(episodes))
    return Rollouts(np.concatenate(successes)[:episodes], np.concatenate(returns)[:episodes],
                    np.concatenate(lifted)[:episodes], tuple(frames[:min(keep_frames, episodes)]),
                    env_steps, ee_paths, target_starts, phases,
                    np.concatenate(discounted)[:episodes])


def _wave(pool, act_fn, key, reset_seed, keep, max_steps, discount):
    """One episode per env from ``pool.reset(seed=reset_seed)``; frames of the first ``keep``."""
    obs, infos = pool.reset(seed=reset_seed)
    n = pool.num_envs
    track = "ee_pos" in infos and "target_pos" in infos
    path = [np.asarray(infos["ee_pos"], np.float32).reshape(n, 3)] if track else None
    target = np.asarray(infos["target_pos"], np.float32).reshape(n, 3) if track else None
    tracker = None
    if phases_lib.trackable(infos):
        tracker = phases_lib.PhaseTracker(n, np.shape(infos["object_pos"])[1])
        tracker.start(infos)
    done, success, lifted, returns = (np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool),
                                      np.zeros(n))
    discounted = np.zeros(n)
    frames = [[obs[i]] for i in range(keep)]
    t = 0
    while not done.all():
        if t >= max_steps:
            raise RuntimeError(f"envs {np.flatnonzero(~done).tolist()} did not end an episode "
                               f"within max_steps={max_steps} steps")
        actions = act_fn(obs, jax.random.fold_in(key, t))
        obs, reward, terminated, truncated, infos = pool.step(actions)
        live = ~done
        returns[live] += reward[live]
        discounted[live] += discount ** t * reward[live]
        ended = live & (terminated | truncated)
        if "success" in infos:  # envs outside the suite may not report it: never a success
            success[ended] = np.asarray(infos["success"], bool)[ended]
        if "held" in infos:  # (n, objects): closed gripper, object near and off the table
            lifted[live] |= np.asarray(infos["held"], bool).reshape(n, -1).any(-1)[live]
        for i in np.flatnonzero(live[:keep]):
            frames[i].append(infos["final_obs"][i])  # obs[i] is already the next episode's
        if track:
            ee = np.asarray(infos["ee_pos"], np.float32).reshape(n, 3)
            path.append(np.where(live[:, None], ee, path[-1]))
        if tracker is not None:
            tracker.update(infos, live, ended)
        done |= ended
        t += 1
    return (success, returns, lifted, [np.stack(f) for f in frames], t,
            np.stack(path, axis=1) if track else None, target,
            tracker.result() if tracker is not None else None, discounted)


LATENTS = ("fresh", "zero", "episode")


def prior_act_fn(prior: BehavioralPrior, latent: str = "fresh") -> ActFn:
    """``a = prior.sample(z, obs)`` in one jitted call, with ``z`` per ``latent``:

    - ``"fresh"``: a new ``z ~ N(0, I)`` per env at every step (the paper; PARROT's
      exploration at the start of RL);
    - ``"zero"``: ``z = 0``, the base's mode, every step;
    - ``"episode"``: one ``z ~ N(0, I)`` per env drawn at the start of each wave (from
      the wave's key) and held for the whole episode.
    """
    if latent not in LATENTS:
        raise ValueError(f"latent={latent!r}; expected one of {', '.join(LATENTS)}")
    image_shape = tuple(prior.image_shape)
    if latent == "fresh":
        return lambda obs, key: np.asarray(_prior_actions(prior.flow, image_shape, prior.params,
                                                          obs, key))
    return _HeldLatent(prior, image_shape, latent == "zero")


class _HeldLatent:
    """The prior with a ``z`` that stays fixed within an episode (``zero``: always 0)."""

    def __init__(self, prior: BehavioralPrior, image_shape, zero: bool):
        self.prior, self.image_shape, self.zero, self.key = prior, image_shape, zero, None

    def reset(self, key: jax.Array) -> None:
        self.key = key

    def __call__(self, obs, key):
        del key  # z depends on the episode only
        shape = (len(obs), self.prior.action_dim)
        if self.zero:
            z = jnp.zeros(shape, jnp.float32)
        elif self.key is None:
            raise RuntimeError("the held-z prior policy needs reset(key) before it acts "
                               "(rollout_success calls it at every wave)")
        else:  # the same z at every step of the wave (the per-step key is not used)
            z = jax.random.normal(self.key, shape, jnp.float32)
        return prior_actions(self.prior, obs, z)


def prior_actions(prior: BehavioralPrior, obs, z) -> np.ndarray:
    """``a = prior.sample(z, obs)`` for a batch, jitted once per flow."""
    return np.asarray(_prior_actions_given(prior.flow, tuple(prior.image_shape), prior.params,
                                           obs, z))


def random_act_fn(action_dim: int, low: float = -1.0, high: float = 1.0) -> ActFn:
    """Uniform random actions in ``[low, high]^action_dim``."""
    return lambda obs, key: np.asarray(_uniform_actions(len(obs), action_dim, low, high, key))


# Module level with the flow as a static argument (flax modules hash by their fields), so
# every task and every act_fn of the same prior reuses one compilation.
@functools.partial(jax.jit, static_argnums=(0, 1))
def _prior_actions(flow, image_shape, params, obs, key):
    z = jax.random.normal(key, (obs.shape[0], flow.action_dim), jnp.float32)
    return BehavioralPrior(flow, params, image_shape).sample(z, obs)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _prior_actions_given(flow, image_shape, params, obs, z):
    return BehavioralPrior(flow, params, image_shape).sample(z, obs)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _uniform_actions(batch, action_dim, low, high, key):
    return jax.random.uniform(key, (batch, action_dim), jnp.float32, low, high)


def check_compatible(prior: BehavioralPrior, env_id: str, observation_space,
                     action_space) -> None:
    """ValueError unless the env's images and actions have the shapes the prior was built for."""
    if tuple(action_space.shape) != (prior.action_dim,):
        raise ValueError(f"the prior has action_dim {prior.action_dim} but {env_id} takes "
                         f"actions of shape {tuple(action_space.shape)}")
    if tuple(observation_space.shape) != tuple(prior.image_shape):
        raise ValueError(f"the prior expects images of shape {tuple(prior.image_shape)} but "
                         f"{env_id} observes {tuple(observation_space.shape)}")
    if observation_space.dtype != np.uint8:
        raise ValueError(f"the prior expects uint8 images but {env_id} observes "
                         f"{observation_space.dtype}")


@dataclasses.dataclass(frozen=True)
class PriorEvaluation:
    """The prior and uniform random actions on one task, episode i from env seed seed + i."""

    env_id: str
    prior: Rollouts
    random: Rollouts
    seconds: float  # wall time of both runs, pool start included

    def as_dict(self) -> dict:
        out = {"env_id": self.env_id, "seconds": self.seconds}
        for name, r in (("prior", self.prior), ("random", self.random)):
            out[name] = {**r.rate(self.env_id).as_dict(),
                         "per_episode": r.successes.astype(int).tolist(),
                         "lifted": r.lift_rate(self.env_id).as_dict(),
                         "lifted_per_episode": r.lifted.astype(int).tolist()}
            some = r.some_object_rate(self.env_id)
            if some is not None:
                out[name]["some_object"] = some.as_dict()
        return out


def evaluate_prior(prior: BehavioralPrior, env_id: str, episodes: int, seed: int = 0,
                   num_envs: int = 8, num_workers: int | None = None,
                   keep_frames: int = 4, env_kwargs: dict | None = None) -> PriorEvaluation:
    """The prior (``z ~ N(0, I)`` each step) and uniform random actions, on the same seeds.

    Both runs use one pool; shapes are checked before any rollout. The two policies draw
    from independent keys (``jax.random.split(key(seed))``): with one key, ``z`` and the
    uniform actions come from the same bits, and an untrained prior's ``tanh(z)`` would be
    a monotone function of the random actions, replaying nearly the same episodes.
    ``env_kwargs``: passed to every env's constructor (e.g. the suite's ``container_rgba``).
    """
    start = time.perf_counter()
    env = functools.partial(gym.make, env_id, **env_kwargs) if env_kwargs else env_id
    with EnvPool(env, num_envs, num_workers) as pool:
        check_compatible(prior, env_id, pool.single_observation_space,
                         pool.single_action_space)
        fns = (prior_act_fn(prior), random_act_fn(prior.action_dim))
        runs = [rollout_success(pool, fn, episodes, seed, keep_frames=keep_frames, key=key)
                for fn, key in zip(fns, jax.random.split(jax.random.key(seed)))]
    return PriorEvaluation(env_id, *runs, time.perf_counter() - start)
