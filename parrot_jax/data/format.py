"""On-disk layout of prior datasets: shards of plain ``.npy`` arrays, written atomically.

A dataset is a directory::

    DATASET/
      metadata.json              what was collected, how, and the list of finished shards
      shards/shard-000000/       one shard: a whole number of episodes
        observations.npy         uint8   (N, 48, 48, 3)  image before each action
        actions.npy              float32 (N, 7)          action taken on that image
        rewards.npy              float32 (N,)            reward after each action
        episode_lengths.npy      int64   (E,)            steps per episode, sum = N
        episode_tasks.npy        int64   (E,)            index into shard.json "env_ids"
        episode_seeds.npy        int64   (E,)            env reset seed of each episode
        final_observations.npy   uint8   (E, 48, 48, 3)  image after each episode's last action
        object_offsets.npy       float32 (N, 3)          optional: metres from the end
                                 effector to the nearest object's grasp point before each
                                 action (privileged state, for auxiliary losses; written by
                                 collections since 2026-12, absent from older shards)
        shard.json               counts, env ids, and for every array its shape, dtype,
                                 byte size and CRC-32 of the raw data

Episodes are stored back to back: episode ``e`` of a shard owns frames
``sum(lengths[:e]) .. sum(lengths[:e+1]) - 1``. Every file is a standard NumPy ``.npy``
(readable memory-mapped with ``np.load(path, mmap_mode="r")``); there is no pickle.

A shard is written into a temporary sibling directory, each file fsynced, ``shard.json``
last, then renamed into place, so a shard directory either is complete or does not exist.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import tempfile
import zlib
from typing import Mapping

import numpy as np

from parrot_jax import io

FORMAT = "parrot_jax.dataset"
FORMAT_VERSION = 1
METADATA = "metadata.json"
SHARDS = "shards"
SHARD_JSON = "shard.json"

STEP_ARRAYS = ("observations", "actions", "rewards")
EPISODE_ARRAYS = ("episode_lengths", "episode_tasks", "episode_seeds", "final_observations")
ARRAYS = STEP_ARRAYS + EPISODE_ARRAYS
IMAGE_ARRAYS = ("observations", "final_observations")
DTYPES = {"observations": np.uint8, "actions": np.float32, "rewards": np.float32,
          "episode_lengths": np.int64, "episode_tasks": np.int64, "episode_seeds": np.int64,
          "final_observations": np.uint8}
RANKS = {"observations": 4, "actions": 2, "rewards": 1, "episode_lengths": 1,
         "episode_tasks": 1, "episode_seeds": 1, "final_observations": 4}
# Per-step arrays a shard may hold or lack (readers treat a missing one as unavailable):
# name -> (dtype, shape of one row).
OPTIONAL_STEP_ARRAYS = {"object_offsets": (np.float32, (3,))}
_CRC_CHUNK = 1 << 24


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupt or inconsistent with its metadata."""


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def shard_index(name: str) -> int | None:
    """The index in a shard directory's name, or None if the name is not a shard's."""
    prefix = "shard-"
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    return None


def crc32(array: np.ndarray) -> int:
    """CRC-32 of an array's raw bytes (C order), in chunks so memmaps stay lazy."""
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    crc = 0
    for start in range(0, flat.size, _CRC_CHUNK):
        crc = zlib.crc32(flat[start:start + _CRC_CHUNK], crc)
    return crc


def check_shard_arrays(arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Raises DatasetError unless ``arrays`` form a consistent shard."""
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise DatasetError(f"{where}: missing arrays {missing}; a shard needs {list(ARRAYS)}")
    for key in ARRAYS:
        a = arrays[key]
        if a.dtype != DTYPES[key] or a.ndim != RANKS[key]:
            raise DatasetError(f"{where}: {key} has dtype {a.dtype} and shape {a.shape}; "
                               f"expected dtype {np.dtype(DTYPES[key])} with rank {RANKS[key]}")
    lengths = arrays["episode_lengths"]
    steps, episodes = len(arrays["observations"]), len(lengths)
    for key in STEP_ARRAYS:
        if len(arrays[key]) != steps:
            raise DatasetError(f"{where}: {key} has {len(arrays[key])} rows but observations "
                               f"has {steps}")
    for key in EPISODE_ARRAYS:
        if len(arrays[key]) != episodes:
            raise DatasetError(f"{where}: {key} has {len(arrays[key])} rows but there are "
                               f"{episodes} episodes")
    if episodes and (lengths.min() < 1 or int(lengths.sum()) != steps):
        raise DatasetError(f"{where}: episode lengths (min {lengths.min()}, sum "
                           f"{int(lengths.sum())}) do not cover the {steps} steps")
    if arrays["final_observations"].shape[1:] != arrays["observations"].shape[1:]:
        raise DatasetError(f"{where}: final_observations frames "
                           f"{arrays['final_observations'].shape[1:]} differ from observations "
                           f"frames {arrays['observations'].shape[1:]}")
    for key, (dtype, row) in OPTIONAL_STEP_ARRAYS.items():
        if key in arrays and (arrays[key].dtype != dtype or arrays[key].shape != (steps,) + row):
            raise DatasetError(f"{where}: {key} has dtype {arrays[key].dtype} and shape "
                               f"{arrays[key].shape}; expected dtype {np.dtype(dtype)} and "
                               f"shape {(steps,) + row}")


def write_shard(root: str, index: int, arrays: Mapping[str, np.ndarray], env_ids: list[str],
                info: Mapping | None = None) -> bool:
    """Writes shard ``index`` of the dataset in ``root`` atomically.

    Returns False, leaving the existing shard untouched, if the shard already exists (a
    concurrent or orphaned writer finished it first; shard contents are deterministic).
    """
    unknown = set(arrays) - set(ARRAYS) - set(OPTIONAL_STEP_ARRAYS)
    if unknown:
        raise DatasetError(f"shard {index}: unknown arrays {sorted(unknown)}; a shard holds "
                           f"{list(ARRAYS)} and optionally {list(OPTIONAL_STEP_ARRAYS)}")
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    check_shard_arrays(arrays, f"shard {index}")
    shards = os.path.join(root, SHARDS)
    os.makedirs(shards, exist_ok=True)
    final = os.path.join(shards, shard_name(index))
    if os.path.exists(final):
        return False
    tmp = tempfile.mkdtemp(dir=shards, prefix=f".tmp-{shard_name(index)}-")
    try:
        os.chmod(tmp, 0o777 & ~io.current_umask())  # mkdtemp makes 0700
        described = {}
        for key in [k for k in ARRAYS + tuple(OPTIONAL_STEP_ARRAYS) if k in arrays]:
            path = os.path.join(tmp, key + ".npy")
            with open(path, "wb") as f:
                np.save(f, arrays[key], allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            described[key] = {"shape": list(arrays[key].shape), "dtype": arrays[key].dtype.str,
                              "bytes": int(arrays[key].nbytes), "crc32": crc32(arrays[key])}
        header = {"format": FORMAT, "format_version": FORMAT_VERSION, "index": index,
                  "num_episodes": len(arrays["episode_lengths"]),
                  "num_steps": len(arrays["observations"]), "env_ids": list(env_ids),
                  "arrays": described, **(info or {})}
        with open(os.path.join(tmp, SHARD_JSON), "w") as f:
            json.dump(header, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.rename(tmp, final)
        except OSError:
            if os.path.isdir(final):  # lost a race to an identical shard
                return False
            raise
        _fsync_dir(shards)
        return True
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def shard_summary(headers: Mapping[int, dict]) -> dict:
    """The ``metadata.json`` fields that list finished shards (index -> shard.json)."""
    shards = [{"name": shard_name(k), "episodes": h["num_episodes"], "steps": h["num_steps"],
               "attempts": h.get("attempts", h["num_episodes"])}
              for k, h in sorted(headers.items())]
    episodes = sum(s["episodes"] for s in shards)
    attempts = sum(s["attempts"] for s in shards)
    return {"shards": shards, "num_episodes": episodes,
            "num_steps": sum(s["steps"] for s in shards), "attempts": attempts,
            "acceptance_rate": episodes / attempts if attempts else None}


def remove_partial_shards(root: str) -> list[str]:
    """Deletes temporary shard directories left by interrupted writers; returns them."""
    shards = os.path.join(root, SHARDS)
    if not os.path.isdir(shards):
        return []
    stale = [n for n in sorted(os.listdir(shards)) if n.startswith(".tmp-")]
    for name in stale:
        shutil.rmtree(os.path.join(shards, name), ignore_errors=True)
    return stale


def list_shards(root: str) -> dict[int, str]:
    """Finished shard directories of a dataset: index -> path."""
    shards = os.path.join(root, SHARDS)
    if not os.path.isdir(shards):
        return {}
    # Names that are not finished shards (a writer's temporary directory) have no index;
    # they are dropped before sorting, which cannot order None against ints.
    found = {i: os.path.join(shards, n) for n in os.listdir(shards)
             if (i := shard_index(n)) is not None}
    return {i: p for i, p in sorted(found.items()) if os.path.isdir(p)}


def read_shard_json(path: str) -> dict:
    file = os.path.join(path, SHARD_JSON)
    try:
        with open(file) as f:
            header = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{file}: missing; the shard was not written by parrot_jax or "
                           "was damaged after writing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{file}: not valid JSON ({e})") from None
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{file}: format {header.get('format')!r} version "
                           f"{header.get('format_version')!r}; expected {FORMAT!r} version "
                           f"{FORMAT_VERSION}")
    return header


def open_array(path: str, key: str, expected: Mapping, verify: bool,
               random_access: bool = False) -> np.ndarray:
    """Memory-maps ``key`` of the shard at ``path`` after checking it against ``expected``
    (its shard.json entry): header shape and dtype, file size (truncation) and, when
    ``verify``, the CRC-32 of the data (corruption).

    ``random_access`` advises the kernel that rows will be read in random order
    (``MADV_RANDOM``): a page fault then reads the few pages of one frame instead of the
    read-ahead window around it (8 MB on some machines), which is what makes cold random
    frames cheap.
    """
    file = os.path.join(path, key + ".npy")
    try:
        with open(file, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
    except FileNotFoundError:
        raise DatasetError(f"{file}: missing") from None
    except (ValueError, OSError, SyntaxError) as e:
        raise DatasetError(f"{file}: unreadable .npy header ({e})") from None
    if list(shape) != list(expected["shape"]) or dtype.str != expected["dtype"] or fortran:
        raise DatasetError(f"{file}: header says shape {tuple(shape)} dtype {dtype.str}; "
                           f"shard.json says shape {tuple(expected['shape'])} dtype "
                           f"{expected['dtype']}")
    size = os.path.getsize(file)
    if size != offset + expected["bytes"]:
        raise DatasetError(f"{file}: {size} bytes but {offset + expected['bytes']} expected "
                           f"(truncated or overwritten)")
    if not expected["bytes"]:
        return np.zeros(shape, dtype)
    with open(file, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if random_access and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)
    array = np.frombuffer(mapped, dtype, int(np.prod(shape)), offset).reshape(shape)
    if verify and crc32(array) != expected["crc32"]:
        raise DatasetError(f"{file}: CRC-32 mismatch, the data is corrupt")
    return array


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
