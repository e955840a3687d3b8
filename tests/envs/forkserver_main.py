"""A main module for ``tests/envs/test_pool.py``, run as ``python -m tests.envs.forkserver_main``
as our binaries are: it imports JAX (which its env never needs) and defines a flag, then
prints what each worker of a default (forkserver) pool saw at reset as one JSON line."""

import json
import os
import sys

import gymnasium as gym
import jax.numpy as jnp  # noqa: F401  (the heavy import the server should make once)
import numpy as np
from absl import flags

from parrot_jax.envs.pool import EnvPool

# Each worker runs this module again as __mp_main__: a second definition in one process
# (the server importing this module under its own name) would raise DuplicateFlagError.
flags.DEFINE_integer("probe", 0, "unused")


class ProbeEnv(gym.Env):
    """Reports whether the worker's parent (the forkserver) has JAX's library mapped."""

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


if __name__ == "__main__":
    with EnvPool(ProbeEnv, 2, 2) as pool:
        _, infos = pool.reset(seed=0)
    print(json.dumps({"server_has_jax": infos["server_has_jax"].tolist(),
                      "main": infos["main"].tolist()}))
