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

How the algorithms are carried out is set by a few fields. The defaults are the data of
the README's measurements (and of every dataset collected without overrides):
``gain = 1`` (the translation command is the whole remaining error, so an axis
saturates beyond 4.5 cm and about a quarter of the xyz components of a dataset sit
exactly on the clip bound); ``approach = "cone"`` (the open gripper approaches inside a
cone above the object: its height above the grasp point is at most ``slope`` times its
horizontal distance and no lower than ``clearance`` above the object's top while it is
far, so the fingers come down onto the object instead of sweeping into it from the
side); ``gripper = "toggle"`` (the gripper is commanded, +-``gripper_command``, only on
the step that closes or opens it, 0 otherwise: the paper's pseudo-code). Alternatives,
measured in "Diagnosing the prior" (README) and selectable per dataset
(``experiments/configs/collect.py``, ``policy_kwargs``): ``gain < 1`` (a share of the
error per step); ``approach = "over"`` (the original roboverse scripts: move over the
object at the current height, rising to ``clearance`` above its top if lower, and
descend once within ``over_radius`` in xy); ``gripper = "state"`` (every step commands
the state the algorithm wants, open or closed; the env's hysteresis makes the executed
behaviour the same, the data differs).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from parrot_jax.envs import manipulation, robot, scene


APPROACHES = ("cone", "over")
GRIPPER_MODES = ("toggle", "state")


@dataclasses.dataclass
class ScriptedGrasp:
    """Algorithm 2: reach, close, lift (object index from ``info['target_index']``)."""

    rng: np.random.Generator
    noise: float = 0.1
    clip: float = 0.9
    threshold: float = 0.02
    lift_to: float = 0.16  # end-effector height to lift to, metres
    clearance: float = 0.035  # end effector above the object's top while approaching
    slope: float = 2.0  # "cone": height above the grasp point per metre of xy distance
    approach: str = "cone"  # "cone" or "over" (module docstring)
    over_radius: float = 0.03  # "over": descend once this close in xy, metres
    gain: float = 1.0  # share of the remaining translation error commanded per step
    gripper: str = "toggle"  # "toggle" or "state" (module docstring)
    gripper_command: float = 1.0  # magnitude of an open or close command
    object_index: int | None = None  # None: the task's target

    def __post_init__(self):
        if self.approach not in APPROACHES:
            raise ValueError(f"approach={self.approach!r}; expected one of {APPROACHES}")
        if self.gripper not in GRIPPER_MODES:
            raise ValueError(f"gripper={self.gripper!r}; expected one of {GRIPPER_MODES}")
        if not 0.0 < self.gain <= 1.0:
            raise ValueError(f"gain={self.gain}; expected a share in (0, 1]")
        if not 0.5 < self.gripper_command <= 1.0:
            raise ValueError(f"gripper_command={self.gripper_command}; expected a value in "
                             "(0.5, 1] (the env acts on |a_6| > 0.5)")

    def reset(self) -> None:
        """Starts a new episode (the policies keep no other state)."""

    def __call__(self, info: dict) -> np.ndarray:
        return self.act(info)[0]

    def act(self, info: dict) -> tuple[np.ndarray, np.ndarray]:
        """(the noisy, clipped action to execute, the noise-free action it came from)."""
        mean = self._mean_action(info)
        return self._noisy(mean), mean

    def _mean_action(self, info: dict) -> np.ndarray:
        return self._grasp_action(info)

    def _grasp_action(self, info: dict) -> np.ndarray:
        ee = np.asarray(info["ee_pos"])
        index = info["target_index"] if self.object_index is None else self.object_index
        center = np.asarray(info["object_pos"])[index]
        top = 2.0 * center[2] - info["object_bottom"][index]
        target = grasp_point(center, info["object_bottom"][index])
        if info["gripper_open"]:
            xy_dist = np.linalg.norm(target[:2] - ee[:2])
            if self.approach == "over" and xy_dist > self.over_radius:
                height = max(ee[2], top + self.clearance)  # hold height, above the object
                return self._move(np.array([*(target[:2] - ee[:2]), height - ee[2]]), True)
            if self.approach == "cone" and xy_dist > self.threshold:
                above = max(0.0, top + self.clearance - target[2])
                target = target + [0.0, 0.0, min(above, self.slope * xy_dist)]
            if np.linalg.norm(target - ee) > self.threshold:
                return self._move(target - ee, True)
            return self._close()
        if ee[2] < self.lift_to:
            return self._move(np.array([0.0, 0.0, self.lift_to - ee[2]]), False)
        return self._move(np.zeros(3), False)

    def _move(self, delta: np.ndarray, gripper_open: bool) -> np.ndarray:
        """Translates ``gain * delta`` metres (clipped later); the gripper per the mode:
        "state" commands its current state, "toggle" no change."""
        command = 0.0
        if self.gripper == "state":
            command = self.gripper_command if gripper_open else -self.gripper_command
        return _move(self.gain * delta, command)

    def _close(self) -> np.ndarray:
        return _move(np.zeros(3), -self.gripper_command)

    def _open(self) -> np.ndarray:
        return _move(np.zeros(3), self.gripper_command)

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

    def _mean_action(self, info: dict) -> np.ndarray:
        if not info["has_container"]:
            raise ValueError("ScriptedPickPlace needs a task with a container (a place task)")
        ee = np.asarray(info["ee_pos"])
        index = info["target_index"] if self.object_index is None else self.object_index
        hang = ee[2] - info["object_bottom"][index]  # object bottom below the grasp point
        drop = np.asarray(info["container_pos"], dtype=np.float64).copy()
        drop[2] = info["container_rim"] + self.drop_margin + max(hang, 0.0)
        drop_dist = np.linalg.norm(drop - ee)
        if self.place_attempted:
            action = self._move(np.zeros(3), True)
        elif not info["held"][index] and drop_dist > self.threshold:
            action = self._grasp_action(info)
        elif drop_dist > self.threshold:
            action = self._move(drop - ee, False)
        else:
            action = self._open()
            self.place_attempted = True
        return action


def make_policy(goal: str, rng: np.random.Generator, **kwargs) -> ScriptedGrasp:
    """The scripted policy for a task goal ('grasp' or 'place'); ``kwargs`` set its fields.

    A field only the other goal's policy has (``drop_margin`` for a grasp) is ignored, so
    one set of fields serves a dataset of both; an unknown field raises ``ValueError``.
    """
    classes = {"grasp": ScriptedGrasp, "place": ScriptedPickPlace}
    if goal not in classes:
        raise ValueError(f"unknown goal {goal!r}; expected 'grasp' or 'place'")
    known = {f.name for f in dataclasses.fields(ScriptedPickPlace) if f.init} - {"rng"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"unknown scripted policy fields {unknown}; expected some of "
                         f"{sorted(known)}")
    own = {f.name for f in dataclasses.fields(classes[goal])}
    return classes[goal](rng, **{k: v for k, v in kwargs.items() if k in own})


def grasp_point(center: np.ndarray, bottom) -> np.ndarray:
    """Where to put the end effector to grasp an object, from its AABB centre (..., 3)
    and bottom (...): (..., 3).

    At the centre's height, unless the object is taller than the fingers reach: then
    as low as the palm allows (it stops ``PALM_ABOVE_EE`` above the end effector).
    """
    center = np.asarray(center, np.float64)
    top = 2.0 * center[..., 2] - np.asarray(bottom, np.float64)
    z = np.maximum(np.maximum(center[..., 2], top - robot.PALM_ABOVE_EE + 0.005),
                   scene.WORKSPACE_LOW[2])
    return np.concatenate([center[..., :2], z[..., None]], axis=-1)


def _move(delta: np.ndarray, gripper: float) -> np.ndarray:
    """An action that moves the end effector by ``delta`` metres (clipped later)."""
    action = np.zeros(manipulation.ACTION_DIM)
    action[:3] = delta / manipulation.XYZ_SCALE
    action[6] = gripper
    return action
