"""The behavioral prior as a gymnasium wrapper: any image env, acted on in the prior's z-space.

    env = PriorActionWrapper(gym.make("parrot/PickUpCan-v0"), load_prior("runs/prior"))
    env = prior_env("parrot/PickUpCan-v0", "runs/prior")  # the same

The wrapped env's action is a latent ``z`` in ``Box(-z_bound, z_bound, (A,))``; a step
executes ``a = f(z; s)`` for the current observation ``s``: the action our PARROT agent
takes for the same ``z`` (``Agent.act`` samples ``z`` from its policy, then the prior maps
it). Observations, rewards, termination and ``info`` are the env's, with the executed
action added as ``info["prior_action"]``. So any RL library's agent (an SB3 SAC, a
CleanRL script) learns in PARROT's action space without our training loop.

``z_bound``: finite because most libraries squash their policy into the action box (SB3's
SAC does). The prior's base distribution is N(0, I), so the default 4 leaves out 6e-5 of
each coordinate's mass, while our agent's policy mean stays within ``z_mean_bound`` = 3.
"""

from __future__ import annotations

import gymnasium as gym
import jax
import numpy as np

from parrot_jax.flows.evaluate import check_compatible
from parrot_jax.flows.prior import BehavioralPrior, load_prior


class PriorActionWrapper(gym.Wrapper):
    """``env`` with actions ``z``, executed as ``a = f(z; s)`` (module docstring)."""

    def __init__(self, env: gym.Env, prior: BehavioralPrior, z_bound: float = 4.0):
        super().__init__(env)
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        check_compatible(prior, name, env.observation_space, env.action_space)
        low, high = np.asarray(env.action_space.low), np.asarray(env.action_space.high)
        if not (np.all(low == -1.0) and np.all(high == 1.0)):
            raise ValueError(f"{name}'s actions span [{low.min()}, {high.max()}]; the prior's "
                             "actions are in (-1, 1), so the env must take Box(-1, 1) actions")
        if not z_bound > 0:
            raise ValueError(f"z_bound={z_bound}; expected a positive bound on |z|")
        self.prior = prior
        self.action_space = gym.spaces.Box(-z_bound, z_bound, (prior.action_dim,), np.float32)
        self._sample = jax.jit(lambda params, z, images: prior.apply(params, z, images))
        self._obs = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, z):
        action = self.action(z)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._obs = obs
        return obs, reward, terminated, truncated, {**info, "prior_action": action}

    def action(self, z) -> np.ndarray:
        """The env action ``f(z; s)`` for the current observation (float32, in (-1, 1))."""
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        z = np.asarray(z, np.float32)
        if z.shape != self.action_space.shape:
            raise ValueError(f"z has shape {z.shape}; expected {self.action_space.shape}")
        return np.asarray(self._sample(self.prior.params, z[None],
                                       np.asarray(self._obs)[None]))[0]


def prior_env(env_id: str, prior_dir: str, z_bound: float = 4.0, **env_kwargs) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` in the z-space of the prior in ``prior_dir``."""
    return PriorActionWrapper(gym.make(env_id, **env_kwargs), load_prior(prior_dir), z_bound)
