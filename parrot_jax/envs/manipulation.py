"""The gymnasium env: a 6-DoF arm manipulating objects, seen through a 48x48 camera.

Action ``a`` in ``Box(-1, 1, (7,), float32)``; values outside [-1, 1] are clipped:
- ``a[0:3]``: end-effector translation, ``XYZ_SCALE * a[0:3]`` metres from the current
  end-effector position; the target is clipped to the workspace box
  (``scene.WORKSPACE_LOW``/``WORKSPACE_HIGH``).
- ``a[3:6]``: roll, pitch, yaw change of the gripper, ``ROT_SCALE * a[3:6]`` radians,
  accumulated and clipped to ``RPY_LIMIT`` around the gripper-down pose.
- ``a[6]``: gripper, with hysteresis: ``> 0.5`` opens, ``< -0.5`` closes, otherwise
  the gripper keeps its state.
Each step solves IK for the target pose and simulates ``SUBSTEPS`` physics steps of
1/240 s (``GRIPPER_SUBSTEPS`` when the gripper changes state, so it can finish).

Observation: the RGB camera image, ``Box(0, 255, (48, 48, 3), uint8)``, nothing else,
drawn by ``renderer`` ("tiny": PyBullet's CPU TinyRenderer, the default; "egl": OpenGL
through the EGL plugin; None: ``$PARROT_JAX_RENDERER`` or "tiny"; ``scene.RENDERERS``).
Privileged state (poses, target, grasp and place flags) is returned in ``info`` for
scripted policies and tests. Reward is 1.0 when the task succeeds, else 0.0; episodes
are truncated after ``horizon`` steps and terminate early on success only if
``terminate_on_success`` is set.

``container_rgba=(r, g, b[, a])`` draws a place task's container in that colour instead of
its own (the same scenes otherwise: a perception experiment); a task whose
``TaskSpec.recolour_objects`` / ``recolour_container`` is set draws them in random colours.

Every ``reset`` rebuilds the simulation from scratch, so an episode is a function of
its seed and actions alone: ``reset(seed=s)`` reproduces the scene and image exactly,
however many episodes the env has run before.
"""

from __future__ import annotations

import colorsys
import dataclasses
from typing import Any, Optional

import gymnasium as gym
import numpy as np
import pybullet as p

from parrot_jax.envs import containers, objects, scene, tasks
from parrot_jax.envs.robot import Robot

# What this module's envs import on their first reset (the meshes' convex hulls), which
# `import parrot_jax.envs` leaves out; an EnvPool's forkserver imports it once for every
# worker (0.2 s each otherwise).
WORKER_IMPORTS = ("scipy.spatial",)

XYZ_SCALE = 0.05  # metres per unit action
ROT_SCALE = np.deg2rad(20.0)  # radians per unit action, as in the original suite
RPY_LIMIT = np.array([0.5, 0.5, 1.57])
GRIPPER_THRESHOLD = 0.5
SUBSTEPS = 10
GRIPPER_SUBSTEPS = 40
SETTLE_SUBSTEPS = 25
HOME_EE_POS = np.array([0.42, 0.0, 0.22])
ACTION_DIM = 7


class ManipulationEnv(gym.Env):
    """One task of the suite; see the module docstring for spaces and dynamics."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, task: tasks.TaskSpec | str, horizon: int = 25,
                 terminate_on_success: bool = False, render_mode: Optional[str] = None,
                 camera: scene.Camera = scene.Camera(), renderer: Optional[str] = None,
                 container_rgba: Optional[tuple] = None):
        if isinstance(task, str):
            task = tasks.TASKS.get(task) or _unknown_task(task)
        # the container (and its accent, e.g. the checkerboard's tiles) in this colour
        # instead of its own: the same scenes for a perception experiment
        self.container_rgba = check_container_rgba(container_rgba, task)
        if horizon < 1:
            raise ValueError(f"horizon must be a positive number of steps, got {horizon}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = task
        self.horizon = int(horizon)
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        self.camera = camera
        self._camera_matrices = camera.matrices()
        self.observation_space = gym.spaces.Box(0, 255, (camera.size, camera.size, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        # None: $PARROT_JAX_RENDERER, else "tiny" (scene.RENDERERS)
        self.renderer = scene.check_renderer(renderer or scene.default_renderer())
        self._cid = p.connect(p.DIRECT)
        if self.renderer == "egl":
            scene.enable_egl(self._cid)
        self._home_joints = self._solve_home_joints()
        self._obs: Optional[np.ndarray] = None
        self.scene_objects: tuple[str, ...] = ()
        self.scene_container: Optional[str] = None

    # --- gymnasium API -----------------------------------------------------------------

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        rng = self.np_random
        cid = self._cid
        p.resetSimulation(physicsClientId=cid)
        scene.configure_physics(cid)
        scene.build_table(cid)
        self._robot = Robot(cid)
        self._robot.reset(self._home_joints, gripper_open=True)
        specs, self._container = self._draw_scene(rng)
        self.scene_objects = tuple(s.name for s in specs)
        self.scene_container = self._container.name if self._container else None
        footprints = [_footprint(s) for s in specs]
        if self._container is not None:
            footprints.append(self._container.radius)
        xy = scene.sample_positions(rng, footprints)
        yaws = rng.uniform(-np.pi, np.pi, size=len(footprints))
        if self.task.recolour_objects or self.task.recolour_container:
            value = self.task.recolour_value
            specs = [_recolour(rng, self.task.recolour_objects, s, value) for s in specs]
            self._container = _recolour(rng, self.task.recolour_container, self._container,
                                        value)
        if self.container_rgba is not None:
            self._container = dataclasses.replace(self._container, rgba=self.container_rgba,
                                                  accent_rgba=self.container_rgba)
        self._drawn_specs = tuple(specs)  # as spawned (in their colours)
        self._bodies = [objects.spawn_object(s, xy[i], yaws[i], cid) for i, s in enumerate(specs)]
        self._container_xy = np.zeros(2)
        if self._container is not None:
            self._container_xy = xy[-1]
            containers.spawn_container(self._container, xy[-1], yaws[-1], cid)
        for _ in range(SETTLE_SUBSTEPS):
            p.stepSimulation(physicsClientId=cid)
        self._rpy = np.zeros(3)
        self._t = 0
        self._obs = scene.render(cid, self.camera, self._camera_matrices, self.renderer)
        return self._obs.copy(), self._info()

    def step(self, action):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        a = _check_action(action)
        state = self._robot.state()
        target = np.clip(state.ee_pos + XYZ_SCALE * a[:3], scene.WORKSPACE_LOW, scene.WORKSPACE_HIGH)
        self._rpy = np.clip(self._rpy + ROT_SCALE * a[3:6], -RPY_LIMIT, RPY_LIMIT)
        changed = False
        if a[6] > GRIPPER_THRESHOLD:
            changed = self._robot.set_gripper(True)
        elif a[6] < -GRIPPER_THRESHOLD:
            changed = self._robot.set_gripper(False)
        self._robot.move_to(target, self._rpy)
        for _ in range(GRIPPER_SUBSTEPS if changed else SUBSTEPS):
            p.stepSimulation(physicsClientId=self._cid)
        self._t += 1
        self._obs = scene.render(self._cid, self.camera, self._camera_matrices,
                                 self.renderer)
        info = self._info()
        success = bool(info["success"])
        terminated = success and self.terminate_on_success
        truncated = self._t >= self.horizon and not terminated
        return self._obs.copy(), float(success), terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array" and self._obs is not None:
            return self._obs.copy()
        return None

    def close(self):
        if getattr(self, "_cid", None) is not None and p.isConnected(self._cid):
            scene.disconnect(self._cid)
        self._cid = None

    # --- scene ---------------------------------------------------------------------------

    def _draw_scene(self, rng: np.random.Generator):
        """Draws the three objects (target first) and the container of this episode."""
        pool = objects.TRAIN_OBJECTS if self.task.split == "train" else objects.TEST_OBJECTS
        if self.task.target is None:
            picks = rng.choice(len(pool), size=tasks.NUM_OBJECTS, replace=False)
            specs = [pool[i] for i in picks]
        else:
            target = objects.get_object(self.task.target)
            others = [o for o in pool if o.name != target.name]
            picks = rng.choice(len(others), size=tasks.NUM_OBJECTS - 1, replace=False)
            specs = [target] + [others[i] for i in picks]
        container = None
        if self.task.goal == "place":
            if self.task.container is not None:
                container = containers.get_container(self.task.container)
            else:
                cpool = (containers.TRAIN_CONTAINERS if self.task.split == "train"
                         else containers.TEST_CONTAINERS)
                container = cpool[rng.integers(len(cpool))]
        return specs, container

    def _solve_home_joints(self) -> np.ndarray:
        scene.configure_physics(self._cid)
        robot = Robot(self._cid)
        joints = robot.home_joints(HOME_EE_POS, np.zeros(3))
        p.resetSimulation(physicsClientId=self._cid)
        return joints

    # --- privileged state ------------------------------------------------------------

    def _info(self) -> dict[str, Any]:
        cid = self._cid
        state = self._robot.state()
        centers = np.zeros((tasks.NUM_OBJECTS, 3))
        bottoms = np.zeros(tasks.NUM_OBJECTS)
        for i, body in enumerate(self._bodies):
            lo, hi = p.getAABB(body, physicsClientId=cid)
            centers[i] = 0.5 * (np.asarray(lo) + np.asarray(hi))
            bottoms[i] = lo[2]
        near = np.linalg.norm(centers - state.ee_pos, axis=1) < tasks.HOLD_DISTANCE
        held = near & (not self._robot.gripper_open) & (bottoms > tasks.HELD_CLEARANCE)
        grasped = near & (bottoms >= self.task.lift_height)
        placed = np.zeros(tasks.NUM_OBJECTS, dtype=bool)
        container_pos = np.zeros(3)
        container_rim = container_radius = 0.0
        if self._container is not None:
            c = self._container
            container_pos = np.array([*self._container_xy, c.top_z])
            container_rim, container_radius = c.height, c.radius
            inside = np.linalg.norm(centers[:, :2] - self._container_xy, axis=1) < c.radius
            placed = inside & (bottoms <= c.top_z + tasks.PLACE_TOLERANCE)
        success = bool(placed[0] if self.task.goal == "place" else grasped[0])
        return {
            "success": success,
            "ee_pos": state.ee_pos,
            "ee_rpy": state.ee_rpy,
            "gripper_open": self._robot.gripper_open,
            "finger_width": state.finger_width,
            "object_pos": centers,
            "object_bottom": bottoms,
            "target_index": 0,
            "target_pos": centers[0].copy(),
            "held": held,
            "grasped": grasped,
            "placed": placed,
            "container_pos": container_pos,
            "container_rim": container_rim,
            "container_radius": container_radius,
            "has_container": self._container is not None,
            "timestep": self._t,
        }


def _recolour(rng: np.random.Generator, share: float, spec, value: tuple[float, float]):
    """``spec`` (an object's or the container's; None stays None) in a random colour with
    probability ``share`` (``tasks.TaskSpec.recolour_*``): hue and saturation uniform, HSV
    value uniform in ``value`` (``TaskSpec.recolour_value``). Geometry is cached by name,
    so a recoloured spec spawns as fast as its library one."""
    if spec is None or not share or rng.random() >= share:
        return spec
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.random(), rng.uniform(*value))
    return dataclasses.replace(spec, rgba=(*rgb, 1.0))


def check_container_rgba(rgba, task: tasks.TaskSpec) -> Optional[tuple]:
    """``rgba`` as 4 floats (3 get alpha 1), each in [0, 1], for a place task's container;
    None stays None. ValueError naming the bad value otherwise."""
    if rgba is None:
        return None
    values = tuple(float(v) for v in rgba)
    if len(values) == 3:
        values += (1.0,)
    if len(values) != 4 or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"container_rgba={tuple(rgba)!r}; expected 3 or 4 values in [0, 1] "
                         "(red, green, blue[, alpha])")
    if task.goal != "place":
        raise ValueError(f"container_rgba given for {task.env_id}, which has no container; "
                         "expected a place task")
    return values


def _footprint(spec) -> float:
    """Radius of the disc an object occupies on the table at any yaw."""
    return 0.5 * float(np.hypot(spec.length, spec.width))


def _check_action(action) -> np.ndarray:
    a = np.asarray(action)
    if a.shape != (ACTION_DIM,):
        raise ValueError(f"action must have shape ({ACTION_DIM},), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"action must be a float array, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action must be finite, got {a.tolist()}")
    return np.clip(a.astype(np.float64), -1.0, 1.0)


def _unknown_task(name: str):
    valid = ", ".join(sorted(tasks.TASKS))
    raise ValueError(f"unknown task {name!r}; valid env ids: {valid}")
