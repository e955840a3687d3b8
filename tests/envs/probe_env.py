"""An env for ``tests/envs/forkserver_main.py`` that reports what its worker process saw."""

import os
import sys

import gymnasium as gym
import numpy as np


class ProbeEnv(gym.Env):
    """Reports at reset whether the worker's parent (the forkserver) has JAX's library mapped,
    and the name of the worker's ``__main__`` (``__mp_main__`` where it ran the main again)."""

    observation_space = gym.spaces.Box(0, 255, (2,), np.uint8)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        with open(f"/proc/{os.getppid()}/maps") as f:
            server_has_jax = "jaxlib" in f.read()
        return np.zeros(2, np.uint8), {"server_has_jax": server_has_jax,
                                       "main": sys.modules["__main__"].__name__}

    def step(self, action):
        return np.zeros(2, np.uint8), 0.0, True, False, {}
