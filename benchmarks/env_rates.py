"""Env step rates: one env, the env pool, gymnasium's AsyncVectorEnv (random actions).

Shared by ``benchmarks.env_throughput`` and the suite (``benchmarks.run``). Every step
includes IK, physics and the 48x48 render; resets are included in the time.
"""

from __future__ import annotations

import numpy as np

from benchmarks import common
from parrot_jax.envs.manipulation import ManipulationEnv
from parrot_jax.envs.pool import EnvPool


def single_env_rate(env_id: str, steps: int, repeats: int,
                    renderer: str = "tiny") -> tuple[float, list[float]]:
    env = ManipulationEnv(env_id, renderer=renderer)
    rng = np.random.default_rng(0)
    env.reset(seed=0)

    def run() -> int:
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
            if terminated or truncated:
                env.reset()
        return steps

    try:
        return common.median_rate(run, repeats)
    finally:
        env.close()


def pool_rate(env_id: str, workers: int, per_worker: int, steps: int,
              repeats: int) -> tuple[float, list[float]]:
    rng = np.random.default_rng(0)
    n = workers * per_worker
    with EnvPool(env_id, num_envs=n, num_workers=workers) as pool:
        pool.reset(seed=0)

        def run() -> int:
            for _ in range(steps // per_worker):
                pool.step(rng.uniform(-1, 1, (n, 7)).astype(np.float32))
            return (steps // per_worker) * n

        return common.median_rate(run, repeats)


def async_vector_rate(env_id: str, n: int, steps: int, repeats: int) -> tuple[float, list[float]]:
    """gymnasium's AsyncVectorEnv (one env per process, shared memory) for comparison."""
    import gymnasium as gym

    rng = np.random.default_rng(0)
    envs = gym.vector.AsyncVectorEnv(
        [lambda: gym.make(env_id)] * n, shared_memory=True, context="forkserver",
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    try:
        envs.reset(seed=0)

        def run() -> int:
            for _ in range(steps):
                envs.step(rng.uniform(-1, 1, (n, 7)).astype(np.float32))
            return steps * n

        return common.median_rate(run, repeats)
    finally:
        envs.close()
