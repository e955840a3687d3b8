"""A small vector-observation task for SAC's learning check: move a point to a goal.

Observation ``[x, y, goal_x, goal_y]``, action a 2-D velocity in [-1, 1]^2 (0.2 per
step), reward ``-distance to the goal`` each step, 20 steps. Random actions score about
-17; reaching the goal in a few steps and staying scores about -3.
"""

import gymnasium as gym
import numpy as np


class PointReach(gym.Env):
    observation_space = gym.spaces.Box(-2.0, 2.0, (4,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    horizon = 20

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(-1, 1, 2)
        self._goal = self.np_random.uniform(-1, 1, 2)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self._pos = np.clip(self._pos + 0.2 * np.clip(action, -1, 1), -1.5, 1.5)
        self._t += 1
        distance = float(np.linalg.norm(self._pos - self._goal))
        return self._obs(), -distance, False, self._t >= self.horizon, {
            "success": distance < 0.1}

    def _obs(self):
        return np.concatenate([self._pos, self._goal]).astype(np.float32)


if "PointReach-v0" not in gym.registry:
    gym.register("PointReach-v0", entry_point="tests.agents.point_env:PointReach")
