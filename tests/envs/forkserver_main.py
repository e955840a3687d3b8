"""A main module for ``tests/envs/test_pool.py``, run as ``python -m tests.envs.forkserver_main
library|main`` as our binaries are: it imports JAX (which its env never needs) and defines a
flag, then prints what each worker of a default (forkserver) pool saw at reset as one JSON
line. ``library``: the pool's env class comes from a library module (as in our binaries);
``main``: it is defined here, in the main module."""

import json
import sys

import jax.numpy as jnp  # noqa: F401  (the heavy import the workers should not pay for)
from absl import flags

from parrot_jax.envs.pool import EnvPool
from tests.envs.probe_env import ProbeEnv

# A worker that runs this module again (as __mp_main__) defines the flag once; a second
# definition in one process (the server importing this module under its own name) would
# raise DuplicateFlagError.
flags.DEFINE_integer("probe", 0, "unused")


class MainProbeEnv(ProbeEnv):
    """The same env, defined in the main module."""


if __name__ == "__main__":
    env = {"library": ProbeEnv, "main": MainProbeEnv}[sys.argv[1]]
    with EnvPool(env, 2, 2) as pool:
        _, infos = pool.reset(seed=0)
    print(json.dumps({"server_has_jax": infos["server_has_jax"].tolist(),
                      "main": infos["main"].tolist()}))
