"""PyBullet's own sparse-reward pixel grasping task as a gymnasium env, to check our pixel
SAC on a task nobody here designed:

    --config.env=parrot_jax.envs.kuka_grasping:pybullet/KukaDiverseObjectGrasping-v0

The task is ``pybullet_envs.bullet.kuka_diverse_object_gym_env.KukaDiverseObjectEnv``,
run from pybullet's installed files unchanged: a Kuka arm over a tray of 5 objects drawn
from pybullet's 1,000 procedurally generated ones (900 "train", 100 "test"), seen as a
48x48 RGB image from a fixed camera. The action (dx, dy, d_angle) in [-1, 1]^3 moves the
gripper 6 cm x action per step while it descends 6 cm on its own (the task's "height
hack"); once the end effector is down to 0.1 m it closes and lifts, and the
episode ends. Reward 1 if an object is then above 0.2 m, else 0; at most 8 steps. Here,
``terminated`` is the task's ``done`` (the episode is over, nothing to bootstrap), and
``info["success"]`` is reward 1.

Loading. pybullet_envs is written for the old ``gym`` (unmaintained, no NumPy 2) and
``pkg_resources`` (gone from setuptools 81), and its package ``__init__`` registers 50 envs
with gym. We execute just the task's three modules (``kuka``, ``kukaGymEnv``,
``kuka_diverse_object_gym_env``), supplying the few names they import from those
(``gym.Env``, ``gym.spaces``, ``gym.utils.seeding``, ``pkg_resources.parse_version``)
from gymnasium and packaging for the duration of the import only: nothing is left in
``sys.modules``. Each env gets its own copy of the modules, whose ``p`` is a pybullet client
of its own (the task calls pybullet's module functions, i.e. the process's default client,
so two envs in one process would otherwise share one simulation) and whose ``random`` and
``np.random`` are the env's own generators (the task draws the objects and their
placement from the process-global ones), reseeded by ``reset(seed=...)``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import random
import sys
import types

import gymnasium as gym
import numpy as np
import packaging.version
import pybullet
from pybullet_utils import bullet_client

ENV_ID = "pybullet/KukaDiverseObjectGrasping-v0"
_PACKAGE = "pybullet_envs.bullet"
_MODULES = ("kuka", "kukaGymEnv", "kuka_diverse_object_gym_env")


class _Client(bullet_client.BulletClient):
    """A DIRECT pybullet client whose ``connect()`` (which the task calls in its constructor)
    answers this client's id instead of opening another simulation."""

    def __init__(self):
        super().__init__(pybullet.DIRECT)

    def connect(self, *args, **kwargs) -> int:
        return self._client

    def loadURDF(self, fileName, *args, **kwargs):  # noqa: N802 (pybullet's name)
        # The task also uses pybullet's flat form loadURDF(file, x, y, z, qx, qy, qz, qw),
        # which takes no keyword: the same call with position and orientation as lists.
        if len(args) == 7:
            args = (list(args[:3]), list(args[3:]))
        return pybullet.loadURDF(fileName, *args, physicsClientId=self._client, **kwargs)

    @property
    def id(self) -> int:
        return self._client


class _Numpy(types.ModuleType):
    """numpy, except that ``np.random`` is one generator's (a legacy ``RandomState``, which
    has the ``uniform`` and ``choice`` the task calls)."""

    def __init__(self, state: np.random.RandomState):
        super().__init__("numpy")
        self.random = state

    def __getattr__(self, name):
        return getattr(np, name)


@contextlib.contextmanager
def _old_names():
    """``gym`` and ``pkg_resources`` as the task imports them, and the two packages without
    their ``__init__`` (which imports the whole old-gym registry); ``sys.modules`` as it was
    afterwards."""
    gym_stub = types.ModuleType("gym")
    gym_stub.__version__ = "0.26.2"  # the task compares it with 0.9.6 (old method names)
    gym_stub.Env, gym_stub.spaces = gym.Env, gym.spaces
    gym_stub.utils = types.ModuleType("gym.utils")
    gym_stub.utils.seeding = gym.utils.seeding
    pkg_resources = types.ModuleType("pkg_resources")
    pkg_resources.parse_version = packaging.version.parse
    # found, not imported: its __init__ imports gym
    root = importlib.util.find_spec("pybullet_envs").submodule_search_locations[0]
    envs_pkg = types.ModuleType("pybullet_envs")
    envs_pkg.__path__ = [root]
    bullet_pkg = types.ModuleType(_PACKAGE)
    bullet_pkg.__path__ = [os.path.join(root, "bullet")]
    bullet_pkg.__package__ = _PACKAGE
    names = ["gym", "gym.spaces", "gym.utils", "gym.utils.seeding", "pkg_resources",
             "pybullet_envs", _PACKAGE] + [f"{_PACKAGE}.{m}" for m in _MODULES]
    saved = {n: sys.modules[n] for n in names if n in sys.modules}
    sys.modules.update({"gym": gym_stub, "gym.spaces": gym.spaces, "gym.utils": gym_stub.utils,
                        "gym.utils.seeding": gym.utils.seeding,
                        "pkg_resources": pkg_resources, "pybullet_envs": envs_pkg,
                        _PACKAGE: bullet_pkg})
    for m in _MODULES:
        sys.modules.pop(f"{_PACKAGE}.{m}", None)
    try:
        yield
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def _task_modules() -> list[types.ModuleType]:
    """A fresh copy of the task's three modules, in import order."""
    # kukaGymEnv prints its directory on import
    with _old_names(), contextlib.redirect_stdout(io.StringIO()):
        return [importlib.import_module(f"{_PACKAGE}.{m}") for m in _MODULES]


class KukaDiverseObjectGrasping(gym.Env):
    """pybullet's ``KukaDiverseObjectEnv``, continuous actions, in gymnasium's API.

    Keyword arguments are the task's own (``isTest``, ``numObjects``, ``maxSteps``,
    ``removeHeightHack``, ``blockRandom``, ``cameraRandom``, ``width``, ``height``,
    ``dv``, ``actionRepeat``); ``renders`` and ``isDiscrete`` are refused (no GUI in
    workers; our agents act in a ``Box``).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode: str | None = None, **task_kwargs):
        for name in ("renders", "isDiscrete"):
            if task_kwargs.get(name):
                raise ValueError(f"{name}={task_kwargs[name]!r} is not supported here; "
                                 "expected False (a headless env with a Box action space)")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; expected None or 'rgb_array'")
        self.render_mode = render_mode
        self._client = _Client()
        self._random, self._np_random_state = random.Random(), np.random.RandomState()
        modules = _task_modules()
        for module in modules:
            module.p = self._client
        task_module = modules[-1]
        task_module.random = self._random
        task_module.np = _Numpy(self._np_random_state)

        class Task(task_module.KukaDiverseObjectEnv):
            def __del__(self):  # the task's disconnects; our close() does it once
                pass

        try:
            self._task = Task(**task_kwargs)
        except TypeError as error:
            self._client.disconnect()
            raise ValueError(f"bad keyword for {ENV_ID}: {error}") from None
        self.observation_space = gym.spaces.Box(
            0, 255, (self._task._height, self._task._width, 3), np.uint8)
        dims = self._task.action_space.shape[0]
        self.action_space = gym.spaces.Box(-1.0, 1.0, (dims,), np.float32)
        self._last = None

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            placement, choice = np.random.SeedSequence(seed).generate_state(2)
            self._random.seed(int(placement))
            self._np_random_state.seed(int(choice))
        self._last = np.asarray(self._task.reset(), np.uint8)
        return self._last, {}

    def step(self, action):
        action = np.asarray(action, np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action of shape {action.shape}; expected "
                             f"{self.action_space.shape}")
        obs, reward, done, _ = self._task.step(action)
        self._last = np.asarray(obs, np.uint8)
        return self._last, float(reward), bool(done), False, {"success": bool(reward > 0)}

    def render(self):
        return None if self._last is None else self._last.copy()

    def close(self):
        if self._client.id >= 0:
            self._client.disconnect()


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID,
                 entry_point="parrot_jax.envs.kuka_grasping:KukaDiverseObjectGrasping")
