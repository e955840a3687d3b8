"""Diagnostic variants of the suite's tasks, outside the paper's suite.

    --config.env=experiments.diagnostic_envs:parrot/PickUpAnyNovel-v0

- ``parrot/PickUpAnyNovel-v0``: PickUpCan's scenes (the novel can and two novel
  distractors) where success, and the reward of 1, is any of the three objects grasped
  (lifted ``lift_height`` off the table, within ``HOLD_DISTANCE`` of the end effector),
  not only the can. A prior trained on many objects does this several times as often as
  it picks up the can, so RL on it asks whether the learner climbs when its prior
  succeeds in a fifth of its episodes rather than a twentieth (``docs/rl_diagnosis.md``).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import parrot_jax.envs  # noqa: F401 (registers the suite)


class AnyObjectGrasped(gym.Wrapper):
    """Success (and reward 1) when any object is grasped (``info["grasped"].any()``)."""

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        success = bool(np.asarray(info["grasped"]).any())
        info = {**info, "success": success}
        return obs, float(success), terminated, truncated, info


def pick_up_any_novel(**kwargs) -> gym.Env:
    return AnyObjectGrasped(gym.make("parrot/PickUpCan-v0", **kwargs))


if "parrot/PickUpAnyNovel-v0" not in gym.registry:
    gym.register(id="parrot/PickUpAnyNovel-v0",
                 entry_point="experiments.diagnostic_envs:pick_up_any_novel")
