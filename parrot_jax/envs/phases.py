"""Phase-resolved episode outcomes: how far a policy got with each object.

A grasp is reach -> close -> lift; a pick-and-place adds carry -> release inside. For
every episode and every object ``j`` of the scene, :class:`PhaseTracker` records from
the env's privileged ``info`` (after each step):

- ``reached``: the end effector came within ``REACH`` m of the object's grasp point
  (:func:`parrot_jax.envs.scripted.grasp_point`, where the scripted policies close);
- ``closed_near``: the gripper closed (open before the step, closed after) with the end
  effector within ``REACH`` of that grasp point;
- ``lifted``: ``info["held"][j]`` at some step (closed gripper, object near the end
  effector and at least ``tasks.HELD_CLEARANCE`` off the table);
- ``carried``: held while its centre was over the container (within its radius in xy);
  place tasks only, False elsewhere;
- ``grasped``: ``info["grasped"][j]`` at the final step (a grasp task's success
  condition for that object);
- ``placed``: ``info["placed"][j]`` at the final step (a place task's success
  condition for that object); False without a container;

and per episode ``closed_away``: the gripper closed at a step where no object's grasp
point was within ``REACH`` (a grasp of nothing), and ``close_offset``: the end
effector's position relative to the nearest grasp point when the gripper first closed
(NaN if it never closed): how far off, and in which direction, a premature close was. Object 0 is the task's target, so
``target(name)`` is the task's phase, ``any_object(name)`` the skill with *some*
object: a task-agnostic prior cannot know which object a test task wants.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from parrot_jax.envs import scripted

REACH = 0.04  # metres between the end effector and an object's grasp point
OBJECT_PHASES = ("reached", "closed_near", "lifted", "carried", "grasped", "placed")
PLACE_ONLY = ("carried", "placed")


@dataclasses.dataclass(frozen=True)
class Phases:
    """Outcomes of ``episodes`` episodes: (episodes, objects) flags per phase, object 0 the
    target, (episodes,) ``closed_away`` and ``has_container``, and (episodes, 3)
    ``close_offset``."""

    reached: np.ndarray
    closed_near: np.ndarray
    lifted: np.ndarray
    carried: np.ndarray
    grasped: np.ndarray
    placed: np.ndarray
    closed_away: np.ndarray
    close_offset: np.ndarray  # (episodes, 3)
    has_container: np.ndarray

    def target(self, name: str) -> np.ndarray:
        """(episodes,) the phase ``name`` for the task's target object."""
        return getattr(self, name)[:, 0]

    def any_object(self, name: str) -> np.ndarray:
        """(episodes,) the phase ``name`` for at least one object."""
        return getattr(self, name).any(axis=1)

    def __len__(self) -> int:
        return len(self.closed_away)

    @staticmethod
    def concatenate(parts: list[Phases]) -> Phases:
        return Phases(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                         for f in dataclasses.fields(Phases)})

    def take(self, count: int) -> Phases:
        """The first ``count`` episodes."""
        return Phases(**{f.name: getattr(self, f.name)[:count]
                         for f in dataclasses.fields(Phases)})

    def rates(self) -> dict[str, dict[str, float]]:
        """phase -> {"target": share of episodes, "any": share of episodes}, and
        ``closed_away``'s share; place-only phases are left out without a container."""
        out = {}
        for name in OBJECT_PHASES:
            if name in PLACE_ONLY and not self.has_container.any():
                continue
            out[name] = {"target": float(self.target(name).mean()),
                         "any": float(self.any_object(name).mean())}
        out["closed_away"] = {"any": float(self.closed_away.mean())}
        closed = self.close_offset[~np.isnan(self.close_offset[:, 0])]
        median = (lambda x: float(np.median(x)) if closed.size else None)
        out["close_offset"] = {"closed": float(len(closed) / max(len(self), 1)),
                               "median_distance": median(np.linalg.norm(closed, axis=1)),
                               "median_xy": median(np.linalg.norm(closed[:, :2], axis=1)),
                               "median_z": median(closed[:, 2])}
        return out


class PhaseTracker:
    """Accumulates :class:`Phases` for a batch of ``num_envs`` envs stepped together.

    ``start(infos)`` with the reset infos (batched: every value has a leading axis of
    ``num_envs``), then ``update(infos, live, ended)`` after every step: ``live`` envs
    were still in their episode before the step, ``ended`` ones finished with it. Envs
    that do not report the suite's privileged keys cannot be tracked
    (:func:`trackable`).
    """

    def __init__(self, num_envs: int, num_objects: int):
        shape = (num_envs, num_objects)
        self._flags = {name: np.zeros(shape, bool) for name in OBJECT_PHASES}
        self._closed_away = np.zeros(num_envs, bool)
        self._close_offset = np.full((num_envs, 3), np.nan)
        self._has_container = np.zeros(num_envs, bool)
        self._was_open = np.ones(num_envs, bool)

    def start(self, infos: Mapping[str, np.ndarray]) -> None:
        self._was_open = np.asarray(infos["gripper_open"], bool).copy()
        self._has_container = np.asarray(infos["has_container"], bool).copy()
        self._observe(infos, np.ones_like(self._was_open), closing=None)

    def update(self, infos: Mapping[str, np.ndarray], live: np.ndarray,
               ended: np.ndarray) -> None:
        is_open = np.asarray(infos["gripper_open"], bool)
        closing = live & self._was_open & ~is_open
        self._was_open = np.where(live, is_open, self._was_open)
        self._observe(infos, live, closing)
        for name, key in (("grasped", "grasped"), ("placed", "placed")):
            self._flags[name][ended] = np.asarray(infos[key], bool)[ended]

    def result(self) -> Phases:
        return Phases(**{k: v.copy() for k, v in self._flags.items()},
                      closed_away=self._closed_away.copy(),
                      close_offset=self._close_offset.copy(),
                      has_container=self._has_container.copy())

    def _observe(self, infos, live, closing) -> None:
        ee = np.asarray(infos["ee_pos"], np.float64)  # (n, 3)
        centers = np.asarray(infos["object_pos"], np.float64)  # (n, objects, 3)
        bottoms = np.asarray(infos["object_bottom"], np.float64)  # (n, objects)
        points = scripted.grasp_point(centers, bottoms)
        distance = np.linalg.norm(points - ee[:, None], axis=-1)
        near = distance < REACH
        held = np.asarray(infos["held"], bool)
        radius = np.asarray(infos["container_radius"], np.float64)[:, None]
        container_xy = np.asarray(infos["container_pos"], np.float64)[:, None, :2]
        over = (np.linalg.norm(centers[..., :2] - container_xy, axis=-1) < radius)
        over &= self._has_container[:, None]
        live = live[:, None]
        self._flags["reached"] |= live & near
        self._flags["lifted"] |= live & held
        self._flags["carried"] |= live & held & over
        if closing is not None:
            self._flags["closed_near"] |= closing[:, None] & near
            self._closed_away |= closing & ~near.any(axis=1)
            first = closing & np.isnan(self._close_offset[:, 0])
            nearest = points[np.arange(len(ee)), distance.argmin(axis=1)]
            self._close_offset[first] = (ee - nearest)[first]


TRACKED_KEYS = ("ee_pos", "object_pos", "object_bottom", "gripper_open", "held", "grasped",
                "placed", "has_container", "container_pos", "container_radius")


def trackable(infos: Mapping) -> bool:
    """Whether the infos carry every key the tracker reads (the suite's envs do)."""
    return all(k in infos for k in TRACKED_KEYS)


def batch_info(info: Mapping) -> dict[str, np.ndarray]:
    """One env's info as a batch of one (for single-env rollouts)."""
    return {k: np.asarray(info[k])[None] for k in TRACKED_KEYS}
