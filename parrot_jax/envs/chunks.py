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
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np


class ActionChunks(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``env`` with ``horizon`` actions per step (module docstring). The action space is
    the inner Box tiled ``horizon`` times, flattened: ``(horizon * A,)``."""

    def __init__(self, env: gym.Env, horizon: int, terminal_at_end: bool = False):
        gym.utils.RecordConstructorArgs.__init__(self, horizon=horizon,
                                                 terminal_at_end=terminal_at_end)
        gym.Wrapper.__init__(self, env)
        space = env.action_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"ActionChunks needs a 1-D Box action space, got {space}")
        if int(horizon) < 1:
            raise ValueError(f"horizon={horizon}; expected >= 1 actions per chunk")
        episode = getattr(env.unwrapped, "horizon", None)  # the suite's episode length
        if isinstance(episode, int) and int(horizon) > episode:
            raise ValueError(f"a plan of horizon={horizon} steps is longer than "
                             f"{env.spec.id if env.spec else env}'s {episode}-step episodes")
        self.horizon, self.terminal_at_end = int(horizon), bool(terminal_at_end)
        self.inner_action_dim = int(space.shape[0])
        self.action_space = gym.spaces.Box(np.tile(space.low, self.horizon),
                                           np.tile(space.high, self.horizon), dtype=space.dtype)

    def step(self, action):
        plan = np.asarray(action).reshape(self.horizon, self.inner_action_dim)
        total, held = 0.0, None
        for t, inner in enumerate(plan):
            obs, reward, terminated, truncated, info = self.env.step(inner)
            total += float(reward)
            if "held" in info:
                now = np.asarray(info["held"], bool)
                held = now if held is None else held | now
            if terminated or truncated:
                break
        info = {**info, "chunk_steps": t + 1}
        if held is not None:
            info["held"] = held
        if self.terminal_at_end and truncated and not terminated:
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


def env_source(env_id: str, horizon: int = 1, terminal_at_end: bool = False):
    """What ``EnvPool`` and the rollouts take for an agent acting ``horizon`` steps at a
    time: the id itself for one step, else a chunking factory."""
    if int(horizon) == 1:
        return env_id
    return functools.partial(make_chunked, env_id, int(horizon), bool(terminal_at_end))
