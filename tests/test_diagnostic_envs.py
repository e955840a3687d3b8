"""The diagnostic task: success (and reward 1) when any object is grasped."""

import gymnasium as gym
import numpy as np

from experiments import diagnostic_envs


class _Scripted(gym.Env):
    """Reports the given ``grasped`` flags, one step after another."""

    observation_space = gym.spaces.Box(0, 255, (48, 48, 3), np.uint8)
    action_space = gym.spaces.Box(-1, 1, (7,), np.float32)

    def __init__(self, grasped):
        self.grasped = list(grasped)

    def reset(self, seed=None, options=None):
        return np.zeros((48, 48, 3), np.uint8), {}

    def step(self, action):
        grasped = np.asarray(self.grasped.pop(0))
        info = {"grasped": grasped, "success": bool(grasped[0])}  # the target is object 0
        return np.zeros((48, 48, 3), np.uint8), float(grasped[0]), False, False, info


def test_any_object_grasped_succeeds():
    env = diagnostic_envs.AnyObjectGrasped(
        _Scripted([[False, False, False], [False, True, False], [True, False, False]]))
    env.reset()
    outcomes = [env.step(env.action_space.sample()) for _ in range(3)]
    assert [o[1] for o in outcomes] == [0.0, 1.0, 1.0]
    assert [o[4]["success"] for o in outcomes] == [False, True, True]


def test_registered_on_the_suite():
    env = gym.make("experiments.diagnostic_envs:parrot/PickUpAnyNovel-v0")
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (48, 48, 3) and env.action_space.shape == (7,)
        _, reward, _, _, info = env.step(np.zeros(7, np.float32))
        assert reward == float(info["success"]) == float(np.asarray(info["grasped"]).any())
    finally:
        env.close()
