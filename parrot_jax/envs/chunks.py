"""Actions that span several env steps: ``ActionChunks(env, horizon)`` executes a whole
sequence of ``horizon`` actions per ``step``, for agents that choose open-loop plans
(TrajRL: one plan per 25-step episode) rather than one action per step.

One step of the wrapped env, given the flattened plan ``(a_0, ..., a_{H-1})``:

    r = sum_{t < T} r_t,   T = H, or the first t + 1 at which the inner episode ends,

returns the observation after the last executed action and the inner env's last ``info``,
with ``info["chunk_steps"] = T`` and, where the inner env reports it, ``info["held"]``
true for an object held at any of the T steps. The rewards inside a chunk are summed
undiscounted: the agent's discount applies between chunks. With ``terminal_at_end`` the
inner episode's time limit ends the agent's MDP (``terminated``, so SAC does not
bootstrap from a state it never acts in): TrajRL's transition is ``(s_0, z, R, done=1)``.

``LatentSkills(env, decoder, horizon, bound)`` is the closed-loop counterpart (SPiRL's
closed-loop skills): its action is a latent ``z`` in ``[-bound, bound]^d``, and each of
the ``horizon`` inner actions is ``decoder(z, s_t)``, decoded from the observation that
step starts from; rewards, ``info`` and the episode's end as for ``ActionChunks``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import gymnasium as gym
import numpy as np


class ActionChunks(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``env`` with ``horizon`` actions per step (module docstring). The action space is
    the inner Box tiled ``horizon`` times, flattened: ``(horizon * A,)``."""

    def __init__(self, env: gym.Env, horizon: int, terminal_at_end: bool = False):
        gym.utils.RecordConstructorArgs.__init__(self, horizon=horizon,
                                                 terminal_at_end=terminal_at_end)
        gym.Wrapper.__init__(self, env)
        _check_horizon(env, horizon, "ActionChunks")
        space = env.action_space
        self.horizon, self.terminal_at_end = int(horizon), bool(terminal_at_end)
        self.inner_action_dim = int(space.shape[0])
        self.action_space = gym.spaces.Box(np.tile(space.low, self.horizon),
                                           np.tile(space.high, self.horizon), dtype=space.dtype)

    def step(self, action):
        plan = np.asarray(action).reshape(self.horizon, self.inner_action_dim)
        return _run_chunk(self.env, lambda t, obs: plan[t], None, self.horizon,
                          self.terminal_at_end)


class LatentSkills(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``env`` acting in skills: the action is a latent ``z`` (``Box(-bound, bound,
    (latent_dim,))``), and each of up to ``horizon`` inner steps executes
    ``decoder(z, obs_t)`` (module docstring)."""

    def __init__(self, env: gym.Env, decoder: Callable[[np.ndarray, Any], np.ndarray],
                 horizon: int, latent_dim: int, bound: float, terminal_at_end: bool = False):
        gym.utils.RecordConstructorArgs.__init__(self, decoder=decoder, horizon=horizon,
                                                 latent_dim=latent_dim, bound=bound,
                                                 terminal_at_end=terminal_at_end)
        gym.Wrapper.__init__(self, env)
        _check_horizon(env, horizon, "LatentSkills")
        if int(latent_dim) < 1 or not float(bound) > 0:
            raise ValueError(f"latent_dim={latent_dim}, bound={bound}; expected a positive "
                             "dimension and bound")
        self.decoder, self.horizon = decoder, int(horizon)
        self.terminal_at_end = bool(terminal_at_end)
        self.action_space = gym.spaces.Box(-float(bound), float(bound), (int(latent_dim),),
                                           np.float32)
        self._obs = None

    def reset(self, **kwargs):
        self._obs, info = self.env.reset(**kwargs)
        return self._obs, info

    def step(self, action):
        z = np.asarray(action, np.float32)
        out = _run_chunk(self.env, lambda t, obs: self.decoder(z, obs), self._obs,
                         self.horizon, self.terminal_at_end)
        self._obs = out[0]
        return out


def _check_horizon(env: gym.Env, horizon: int, what: str) -> None:
    """ValueError for an env without a 1-D Box of actions, ``horizon < 1``, or a horizon
    longer than the suite's episodes."""
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"{what} needs a 1-D Box action space, got {space}")
    if int(horizon) < 1:
        raise ValueError(f"horizon={horizon}; expected >= 1 actions per chunk")
    episode = getattr(env.unwrapped, "horizon", None)  # the suite's episode length
    if isinstance(episode, int) and int(horizon) > episode:
        raise ValueError(f"a plan of horizon={horizon} steps is longer than "
                         f"{env.spec.id if env.spec else env}'s {episode}-step episodes")


def _run_chunk(env: gym.Env, inner_action, obs, horizon: int, terminal_at_end: bool):
    """Up to ``horizon`` steps of ``env`` from observation ``obs``, step ``t`` executing
    ``inner_action(t, obs_t)`` (module docstring): ``(obs, summed reward, terminated,
    truncated, info)``."""
    total, held = 0.0, None
    for t in range(horizon):
        obs, reward, terminated, truncated, info = env.step(inner_action(t, obs))
        total += float(reward)
        if "held" in info:
            now = np.asarray(info["held"], bool)
            held = now if held is None else held | now
        if terminated or truncated:
            break
    info = {**info, "chunk_steps": t + 1}
    if held is not None:
        info["held"] = held
    if terminal_at_end and truncated and not terminated:
        terminated, truncated = True, False
    return obs, total, terminated, truncated, info


def make_chunked(env_id: str, horizon: int, terminal_at_end: bool = False,
                 **kwargs) -> ActionChunks:
    """``ActionChunks(gym.make(env_id, **kwargs), ...)``: a picklable env factory for
    ``EnvPool`` (``functools.partial(make_chunked, env_id, horizon)``)."""
    module, _, name = env_id.rpartition(":")
    if module:
        __import__(module)
    return ActionChunks(gym.make(name, **kwargs), horizon, terminal_at_end)


def make_skills(env_id: str, decoder, horizon: int, latent_dim: int, bound: float,
                terminal_at_end: bool = False, **kwargs) -> LatentSkills:
    """``LatentSkills(gym.make(env_id, **kwargs), ...)``: a picklable env factory for
    ``EnvPool`` (``decoder`` must pickle too, e.g. ``pretrained.spirl.StepDecoder``)."""
    module, _, name = env_id.rpartition(":")
    if module:
        __import__(module)
    return LatentSkills(gym.make(name, **kwargs), decoder, horizon, latent_dim, bound,
                        terminal_at_end)


def env_source(env_id: str, horizon: int = 1, terminal_at_end: bool = False,
               skills: tuple | None = None):
    """What ``EnvPool`` and the rollouts take for an agent acting ``horizon`` steps at a
    time: the id itself for one step, else a chunking factory; ``skills = (decoder,
    latent_dim, bound)``: a ``LatentSkills`` factory (closed-loop skills)."""
    if skills is not None:
        return functools.partial(make_skills, env_id, skills[0], int(horizon),
                                 int(skills[1]), float(skills[2]), bool(terminal_at_end))
    if int(horizon) == 1:
        return env_id
    return functools.partial(make_chunked, env_id, int(horizon), bool(terminal_at_end))
