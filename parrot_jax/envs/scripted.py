"""Randomized scripted policies that produce the prior's data (paper appendix C.2).

Both read the privileged ``info`` of the env, never the image:
- :class:`ScriptedGrasp` (Algorithm 2): move the end effector to the object, close the
  gripper within ``threshold``, lift, then do nothing.
- :class:`ScriptedPickPlace` (Algorithm 3): grasp as above, carry the object to a point
  above the container, open the gripper within ``threshold``, then do nothing. The
  release point is ``drop_margin`` above the container's rim for the bottom of the
  object as it hangs in the gripper.

Every action gets Gaussian noise N(0, ``noise``) on every dimension and is clipped to
[-``clip``, ``clip``] (0.9 in the paper, which keeps atanh finite for the flow).

One deviation from the paper's pseudo-code, for our arm: the open gripper approaches
inside a cone above the object. Its height above the grasp point is at most
``slope`` times its horizontal distance, and it aims no lower than ``clearance`` above
the object's top while it is far, so the fingers come down onto the object instead of
sweeping into it from the side.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from parrot_jax.envs import manipulation, robot, scene

_OPEN, _CLOSE, _KEEP = 1.0, -1.0, 0.0


@dataclasses.dataclass
class ScriptedGrasp:
    """Algorithm 2: reach, close, lift (object index from ``info['target_index']``)."""

    rng: np.random.Generator
    noise: float = 0.1
    clip: float = 0.9
    threshold: float = 0.02
    lift_to: float = 0.16  # end-effector height to lift to, metres
    clearance: float = 0.035  # end effector above the object's top while approaching
    slope: float = 2.0
    object_index: int | None = None  # None: the task's target

    def reset(self) -> None:
        """Starts a new episode (the policies keep no other state)."""

    def __call__(self, info: dict) -> np.ndarray:
        return self._noisy(self._grasp_action(info))

    def _grasp_action(self, info: dict) -> np.ndarray:
        ee = np.asarray(info["ee_pos"])
        index = info["target_index"] if self.object_index is None else self.object_index
        center = np.asarray(info["object_pos"])[index]
        top = 2.0 * center[2] - info["object_bottom"][index]
        target = _grasp_point(center, top)
        if info["gripper_open"]:
            xy_dist = np.linalg.norm(target[:2] - ee[:2])
            if xy_dist > self.threshold:
                above = max(0.0, top + self.clearance - target[2])
                target = target + [0.0, 0.0, min(above, self.slope * xy_dist)]
            if np.linalg.norm(target - ee) > self.threshold:
                return _move(target - ee, _KEEP)
            return _move(np.zeros(3), _CLOSE)
        if ee[2] < self.lift_to:
            return _move(np.array([0.0, 0.0, self.lift_to - ee[2]]), _KEEP)
        return _move(np.zeros(3), _KEEP)

    def _noisy(self, action: np.ndarray) -> np.ndarray:
        action = action + self.rng.normal(0.0, self.noise, size=action.shape)
        return np.clip(action, -self.clip, self.clip).astype(np.float32)


@dataclasses.dataclass
class ScriptedPickPlace(ScriptedGrasp):
    """Algorithm 3: grasp, carry above the container, release, then stay still."""

    drop_margin: float = 0.025
    place_attempted: bool = False

    def reset(self) -> None:
        self.place_attempted = False

    def __call__(self, info: dict) -> np.ndarray:
        if not info["has_container"]:
            raise ValueError("ScriptedPickPlace needs a task with a container (a place task)")
        ee = np.asarray(info["ee_pos"])
        index = info["target_index"] if self.object_index is None else self.object_index
        hang = ee[2] - info["object_bottom"][index]  # object bottom below the grasp point
        drop = np.asarray(info["container_pos"], dtype=np.float64).copy()
        drop[2] = info["container_rim"] + self.drop_margin + max(hang, 0.0)
        drop_dist = np.linalg.norm(drop - ee)
        if self.place_attempted:
            action = _move(np.zeros(3), _KEEP)
        elif not info["held"][index] and drop_dist > self.threshold:
            action = self._grasp_action(info)
        elif drop_dist > self.threshold:
            action = _move(drop - ee, _KEEP)
        else:
            action = _move(np.zeros(3), _OPEN)
            self.place_attempted = True
        return self._noisy(action)


def make_policy(goal: str, rng: np.random.Generator, **kwargs) -> ScriptedGrasp:
    """The scripted policy for a task goal ('grasp' or 'place')."""
    if goal == "grasp":
        return ScriptedGrasp(rng, **kwargs)
    if goal == "place":
        return ScriptedPickPlace(rng, **kwargs)
    raise ValueError(f"unknown goal {goal!r}; expected 'grasp' or 'place'")


def _grasp_point(center: np.ndarray, top: float) -> np.ndarray:
    """Where to put the end effector to grasp an object (AABB centre and top).

    At the centre's height, unless the object is taller than the fingers reach: then
    as low as the palm allows (it stops ``PALM_ABOVE_EE`` above the end effector).
    """
    z = max(center[2], top - robot.PALM_ABOVE_EE + 0.005, scene.WORKSPACE_LOW[2])
    return np.array([center[0], center[1], z])


def _move(delta: np.ndarray, gripper: float) -> np.ndarray:
    """An action that moves the end effector by ``delta`` metres (clipped later)."""
    action = np.zeros(manipulation.ACTION_DIM)
    action[:3] = delta / manipulation.XYZ_SCALE
    action[6] = gripper
    return action
