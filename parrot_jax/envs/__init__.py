"""The PyBullet manipulation suite: gymnasium envs registered under ``parrot/``."""

from __future__ import annotations

import gymnasium as gym

from parrot_jax.envs.tasks import TASKS, TEST_TASKS, TRAIN_TASKS, TRAINING_SETS, TaskSpec

ENV_IDS = tuple(TASKS)
TRAIN_ENV_IDS = tuple(t.env_id for t in TRAIN_TASKS)
TEST_ENV_IDS = tuple(t.env_id for t in TEST_TASKS)


def register() -> None:
    """Registers every task with gymnasium (idempotent; runs on import)."""
    for env_id, task in TASKS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="parrot_jax.envs.manipulation:ManipulationEnv",
                         kwargs={"task": task.env_id})


def check_env_id(env_id: str) -> None:
    """ValueError unless gymnasium knows ``env_id`` (a ``"module:id"`` imports its module
    first, as ``gymnasium.make`` does); the message lists the suite's ids."""
    module, _, name = env_id.rpartition(":")
    if module:
        __import__(module)
    if name not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}: gymnasium does not know it. The "
                         f"suite's ids are {', '.join(ENV_IDS)}; any registered gymnasium "
                         "id with Box spaces (e.g. Pendulum-v1) also works")


def make(env_id: str, **kwargs) -> gym.Env:
    """``gymnasium.make`` with an error that lists the valid ids for an unknown one."""
    if env_id not in TASKS:
        raise ValueError(f"unknown env id {env_id!r}; valid ids: {', '.join(ENV_IDS)}")
    return gym.make(env_id, **kwargs)


register()

__all__ = ["ENV_IDS", "TEST_ENV_IDS", "TRAINING_SETS", "TRAIN_ENV_IDS", "TaskSpec",
           "check_env_id", "make", "register"]
