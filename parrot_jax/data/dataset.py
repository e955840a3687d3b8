"""Reading prior datasets: ``load_dataset`` validates and memory-maps one or more datasets.

Images stay on disk (memory-mapped, read only when a batch asks for them); actions,
rewards and episode tables are small and loaded into memory. See ``format.py`` for the
layout.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Literal, Sequence, Union

import numpy as np

from parrot_jax.data import format as fmt
from parrot_jax.data.frames import FrameArray

PathLike = Union[str, os.PathLike]
Verify = Literal["quick", "full"]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Episodes of (image, action) pairs, stored back to back.

    Frames of episode ``e`` are ``episode_starts[e] .. episode_starts[e] +
    episode_lengths[e] - 1``; ``observations[i]`` is the image on which ``actions[i]``
    was taken, and ``final_observations[e]`` the image after episode ``e``'s last action.
    """

    observations: FrameArray  # (N, 48, 48, 3) uint8, lazy
    actions: np.ndarray  # (N, A) float32
    rewards: np.ndarray  # (N,) float32
    episode_starts: np.ndarray  # (E,) int64
    episode_lengths: np.ndarray  # (E,) int64
    episode_tasks: np.ndarray  # (E,) int64, index into env_ids
    episode_seeds: np.ndarray  # (E,) int64
    final_observations: FrameArray  # (E, 48, 48, 3) uint8, lazy
    env_ids: tuple[str, ...]
    paths: tuple[str, ...] = ()
    metadata: tuple[dict, ...] = ()
    # (N, 3) float32 metres from the end effector to the nearest object's grasp point
    # before each action; None when any shard lacks them (collected before they were kept)
    object_offsets: np.ndarray | None = None

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.observations.shape[1:])

    @property
    def action_dim(self) -> int:
        return self.actions.shape[1]

    def episode(self, e: int) -> dict[str, np.ndarray]:
        """Episode ``e``: its T observations, T actions and rewards, and final image."""
        rows = slice(int(self.episode_starts[e]), int(self.episode_starts[e] +
                                                      self.episode_lengths[e]))
        return {"observations": self.observations[rows], "actions": self.actions[rows],
                "rewards": self.rewards[rows], "final_observation": self.final_observations[e],
                "env_id": self.env_ids[self.episode_tasks[e]]}

    def select_episodes(self, episodes: Sequence[int]) -> "Dataset":
        """A dataset of the given episodes (in that order), sharing the image files."""
        episodes = np.asarray(episodes, np.int64)
        lengths = self.episode_lengths[episodes]
        starts = self.episode_starts[episodes]
        rows = (np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
                + np.arange(int(lengths.sum()))) if len(episodes) else np.zeros(0, np.int64)
        offsets = None if self.object_offsets is None else self.object_offsets[rows]
        return dataclasses.replace(
            self, observations=self.observations.view(rows), actions=self.actions[rows],
            object_offsets=offsets,
            rewards=self.rewards[rows], episode_starts=_starts(lengths), episode_lengths=lengths,
            episode_tasks=self.episode_tasks[episodes], episode_seeds=self.episode_seeds[episodes],
            final_observations=self.final_observations.view(episodes))

    def split(self, validation_fraction: float = 0.05,
              seed: int = 0) -> tuple["Dataset", "Dataset"]:
        """(train, validation) split by whole episodes, chosen at random with ``seed``.

        The validation set gets ``round(fraction * E)`` episodes, at least one when the
        fraction is positive; the same seed gives the same split.
        """
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction={validation_fraction}; expected [0, 1)")
        count = int(round(validation_fraction * self.num_episodes))
        count = max(count, 1) if validation_fraction > 0 else 0
        if count >= self.num_episodes:
            raise ValueError(f"validation_fraction={validation_fraction} leaves no training "
                             f"episodes out of {self.num_episodes}")
        order = np.random.default_rng(seed).permutation(self.num_episodes)
        return (self.select_episodes(np.sort(order[count:])),
                self.select_episodes(np.sort(order[:count])))

    def load_into_memory(self) -> "Dataset":
        """The same dataset with its images read into RAM (fast sampling, small datasets)."""
        return dataclasses.replace(
            self, observations=FrameArray([np.asarray(self.observations)]),
            final_observations=FrameArray([np.asarray(self.final_observations)]))

    def __repr__(self) -> str:
        return (f"Dataset({self.num_episodes} episodes, {self.num_steps} steps, images "
                f"{self.image_shape} uint8 ({self.observations.nbytes / 1e9:.2f} GB), "
                f"actions {self.action_dim}-D, tasks {list(self.env_ids)}, "
                f"from {list(self.paths)})")


def read_metadata(path: PathLike) -> dict:
    """The ``metadata.json`` of the dataset directory ``path``, checked for format."""
    file = os.path.join(path, fmt.METADATA)
    if not os.path.isdir(path):
        raise fmt.DatasetError(f"{path}: no such dataset directory")
    try:
        with open(file) as f:
            metadata = json.load(f)
    except FileNotFoundError:
        raise fmt.DatasetError(f"{path}: not a parrot_jax dataset (no {fmt.METADATA})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise fmt.DatasetError(f"{file}: not valid JSON ({e})") from None
    if metadata.get("format") != fmt.FORMAT or metadata.get("format_version") != fmt.FORMAT_VERSION:
        raise fmt.DatasetError(f"{file}: format {metadata.get('format')!r} version "
                               f"{metadata.get('format_version')!r}; expected {fmt.FORMAT!r} "
                               f"version {fmt.FORMAT_VERSION}")
    return metadata


def load_dataset(paths: Union[PathLike, Sequence[PathLike]], verify: Verify = "quick",
                 in_memory: bool = False) -> Dataset:
    """Opens one dataset directory, or several merged in order, and validates it.

    Checks every shard listed in each ``metadata.json``: files present, ``.npy`` headers
    and sizes against ``shard.json`` (truncation), CRC-32 of the actions, rewards and
    episode tables (corruption), their shapes and counts against the metadata, actions
    finite and in [-1, 1]. ``verify="full"`` also checksums every image (reads the whole
    dataset once). Datasets collected with the same seed hold the same trajectories and
    are refused together. Any problem raises ``DatasetError`` naming the file.
    """
    if verify not in ("quick", "full"):
        raise ValueError(f"verify={verify!r}; expected 'quick' or 'full'")
    paths = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else \
        [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("load_dataset needs at least one dataset directory")
    metadatas = [read_metadata(p) for p in paths]
    _check_disjoint(paths, metadatas)
    shards = [_open_shard(os.path.join(p, fmt.SHARDS, s["name"]), s, verify)
              for p, m in zip(paths, metadatas) for s in _listed_shards(p, m)]
    if not shards:
        raise fmt.DatasetError(f"{paths}: no finished shards; collect some data first")
    dataset = _concatenate(shards, tuple(paths), tuple(metadatas))
    return dataset.load_into_memory() if in_memory else dataset


def _listed_shards(path: str, metadata: dict) -> list[dict]:
    listed = metadata.get("shards", [])
    names = {s["name"] for s in listed}
    extra = [os.path.basename(p) for p in fmt.list_shards(path).values()
             if os.path.basename(p) not in names]
    if extra:
        logging.warning("%s: ignoring %d shard(s) not in %s (%s...); rerun the collection "
                        "to finish it", path, len(extra), fmt.METADATA, extra[0])
    return listed


def _check_disjoint(paths: list[str], metadatas: list[dict]) -> None:
    owner = {}
    for path, metadata in zip(paths, metadatas):
        for seed in metadata.get("seeds", []):
            if seed in owner:
                raise fmt.DatasetError(
                    f"{owner[seed]} and {path} were both collected with seed {seed}, so they "
                    "hold the same trajectories; collect with a different --config.seed")
            owner[seed] = path


def _open_shard(path: str, listed: dict, verify: Verify) -> dict:
    header = fmt.read_shard_json(path)
    for key in ("num_episodes", "num_steps"):
        if header[key] != listed[key.removeprefix("num_")]:
            raise fmt.DatasetError(f"{path}: shard.json has {key}={header[key]} but "
                                   f"{fmt.METADATA} lists {listed[key.removeprefix('num_')]}")
    described = header["arrays"]
    arrays = {}
    for key in fmt.ARRAYS:
        if key not in described:
            raise fmt.DatasetError(f"{path}/{fmt.SHARD_JSON}: no entry for {key}")
    for key in [k for k in fmt.ARRAYS + tuple(fmt.OPTIONAL_STEP_ARRAYS) if k in described]:
        check = verify == "full" or key not in fmt.IMAGE_ARRAYS
        arrays[key] = fmt.open_array(path, key, described[key], verify=check,
                                     random_access=key in fmt.IMAGE_ARRAYS)
    fmt.check_shard_arrays(arrays, path)
    if len(arrays["observations"]) != header["num_steps"]:
        raise fmt.DatasetError(f"{path}: {len(arrays['observations'])} steps stored, "
                               f"{header['num_steps']} in shard.json")
    actions = np.asarray(arrays["actions"])
    if not np.all(np.isfinite(actions)) or np.abs(actions).max(initial=0.0) > 1.0:
        raise fmt.DatasetError(f"{path}/actions.npy: actions must be finite and in [-1, 1]")
    tasks = np.asarray(arrays["episode_tasks"])
    if len(tasks) and (tasks.min() < 0 or tasks.max() >= len(header["env_ids"])):
        raise fmt.DatasetError(f"{path}/episode_tasks.npy: task index out of range for "
                               f"{len(header['env_ids'])} env ids")
    return {"arrays": arrays, "env_ids": header["env_ids"]}


def _concatenate(shards: list[dict], paths: tuple[str, ...],
                 metadatas: tuple[dict, ...]) -> Dataset:
    env_ids = list(dict.fromkeys(e for s in shards for e in s["env_ids"]))
    tasks = [np.asarray([env_ids.index(e) for e in s["env_ids"]], np.int64)[
        np.asarray(s["arrays"]["episode_tasks"])] for s in shards]

    def cat(key):
        return np.concatenate([np.asarray(s["arrays"][key]) for s in shards])

    lengths = cat("episode_lengths")
    # An optional array is kept only if every shard has it (a mixed dataset has none).
    offsets = (cat("object_offsets") if all("object_offsets" in s["arrays"] for s in shards)
               else None)
    return Dataset(
        observations=FrameArray([s["arrays"]["observations"] for s in shards]),
        actions=cat("actions"), rewards=cat("rewards"), episode_starts=_starts(lengths),
        episode_lengths=lengths, episode_tasks=np.concatenate(tasks),
        episode_seeds=cat("episode_seeds"),
        final_observations=FrameArray([s["arrays"]["final_observations"] for s in shards]),
        env_ids=tuple(env_ids), paths=paths, metadata=metadatas, object_offsets=offsets)


def _starts(lengths: np.ndarray) -> np.ndarray:
    return (np.cumsum(lengths) - lengths).astype(np.int64)
