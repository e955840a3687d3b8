"""Random datasets in the real on-disk format, for tests and loader benchmarks."""

from __future__ import annotations

import os

import numpy as np

from parrot_jax import io, provenance
from parrot_jax.data import format as fmt

ENV_IDS = ("synthetic/A-v0", "synthetic/B-v0")


def write_synthetic_dataset(root: str, num_episodes: int, episode_length: int = 25,
                            episodes_per_shard: int = 200, seed: int = 0,
                            image_shape: tuple[int, ...] = (48, 48, 3), action_dim: int = 7,
                            ragged: bool = False, offsets: bool = False) -> dict:
    """Writes ``num_episodes`` random episodes to a new dataset at ``root``.

    Pixels are random, except that the first four bytes of every frame hold its global
    frame index (little-endian uint32), so tests can check which frame they got. With
    ``ragged`` episode lengths vary in [1, episode_length]; with ``offsets`` the shards
    also hold ``object_offsets`` (random, within 10 cm). Returns the metadata.
    """
    rng = np.random.default_rng(seed)
    lengths = (rng.integers(1, episode_length + 1, num_episodes) if ragged
               else np.full(num_episodes, episode_length)).astype(np.int64)
    headers, first_frame = {}, 0
    for k, lo in enumerate(range(0, num_episodes, episodes_per_shard)):
        shard_lengths = lengths[lo:lo + episodes_per_shard]
        arrays = _random_shard(rng, shard_lengths, first_frame, image_shape, action_dim)
        arrays["episode_seeds"] = np.arange(lo, lo + len(shard_lengths), dtype=np.int64) + seed
        if offsets:
            arrays["object_offsets"] = rng.uniform(
                -0.1, 0.1, (int(shard_lengths.sum()), 3)).astype(np.float32)
        fmt.write_shard(root, k, arrays, list(ENV_IDS))
        headers[k] = fmt.read_shard_json(os.path.join(root, fmt.SHARDS, fmt.shard_name(k)))
        first_frame += int(shard_lengths.sum())
    metadata = {"format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION,
                "created": provenance.utc_now(), "synthetic": True, "seeds": [seed],
                "env_ids": list(ENV_IDS), "image_shape": list(image_shape),
                "action_dim": action_dim, "complete": True, **fmt.shard_summary(headers)}
    io.write_json(os.path.join(root, fmt.METADATA), metadata)
    return metadata


def frame_ids(frames: np.ndarray) -> np.ndarray:
    """The global frame index stamped into each frame by ``write_synthetic_dataset``."""
    flat = np.ascontiguousarray(frames).reshape(frames.shape[:-3] + (-1,))  # (..., H, W, C)
    return flat[..., :4].copy().view("<u4")[..., 0].astype(np.int64)


def _random_shard(rng, lengths, first_frame, image_shape, action_dim) -> dict:
    steps, episodes = int(lengths.sum()), len(lengths)
    observations = rng.integers(0, 256, (steps,) + tuple(image_shape), dtype=np.uint8)
    stamp = np.arange(first_frame, first_frame + steps, dtype="<u4").view(np.uint8)
    observations.reshape(steps, -1)[:, :4] = stamp.reshape(steps, 4)
    return {
        "observations": observations,
        "actions": rng.uniform(-0.9, 0.9, (steps, action_dim)).astype(np.float32),
        "rewards": np.zeros(steps, np.float32),
        "episode_lengths": lengths,
        "episode_tasks": rng.integers(0, len(ENV_IDS), episodes).astype(np.int64),
        "final_observations": rng.integers(0, 256, (episodes,) + tuple(image_shape),
                                           dtype=np.uint8),
    }


def write_frames_dataset(root: str, observations: np.ndarray, actions: np.ndarray,
                         episode_length: int, object_offsets: np.ndarray | None = None) -> None:
    """A one-shard dataset at ``root`` holding exactly these frames and actions (and
    offsets, if given), in episodes of ``episode_length`` steps (zero rewards; task
    ``synthetic/A-v0``)."""
    steps = len(actions)
    if steps % episode_length:
        raise ValueError(f"{steps} frames do not split into episodes of {episode_length}")
    lengths = np.full(steps // episode_length, episode_length, np.int64)
    arrays = {"observations": observations, "actions": actions.astype(np.float32),
              "rewards": np.zeros(steps, np.float32), "episode_lengths": lengths,
              "episode_tasks": np.zeros(len(lengths), np.int64),
              "episode_seeds": np.arange(len(lengths), dtype=np.int64),
              "final_observations": observations[lengths.cumsum() - 1]}
    if object_offsets is not None:
        arrays["object_offsets"] = np.asarray(object_offsets, np.float32)
    fmt.write_shard(root, 0, arrays, [ENV_IDS[0]])
    header = fmt.read_shard_json(os.path.join(root, fmt.SHARDS, fmt.shard_name(0)))
    io.write_json(os.path.join(root, fmt.METADATA), {
        "format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION, "seeds": [0],
        "created": provenance.utc_now(), "complete": True, **fmt.shard_summary({0: header})})
