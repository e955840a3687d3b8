"""Merging datasets collected separately (other machines, other seeds) into one directory."""

from __future__ import annotations

import os
import shutil
from typing import Sequence

from parrot_jax import io, provenance
from parrot_jax.data import dataset as dataset_lib
from parrot_jax.data import format as fmt


def merge_datasets(inputs: Sequence[str], output: str, verify: dataset_lib.Verify = "full") -> dict:
    """Copies the shards of ``inputs`` (in order) into the new dataset ``output``.

    Every input is validated first (``verify="full"`` checksums the images too) and inputs
    collected with the same seed are refused. Shards are hard-linked when ``output`` is on
    the same file system, else copied, each through a temporary directory and a rename;
    shard files are not rewritten, so their checksums stay valid. Returns the metadata.
    """
    if len(inputs) < 1:
        raise ValueError("merge needs at least one input dataset")
    if os.path.exists(output) and os.listdir(output):
        raise ValueError(f"{output} exists and is not empty; merge into a new directory")
    merged = dataset_lib.load_dataset(list(inputs), verify=verify)
    shards, index = [], 0
    for path, metadata in zip(merged.paths, merged.metadata):
        for listed in metadata["shards"]:
            _copy_shard(os.path.join(path, fmt.SHARDS, listed["name"]), output, index)
            shards.append({**listed, "name": fmt.shard_name(index), "source": path})
            index += 1
    metadata = _merged_metadata(merged, shards)
    io.write_json(os.path.join(output, fmt.METADATA), metadata)
    return metadata


def _copy_shard(source: str, output: str, index: int) -> None:
    shards = os.path.join(output, fmt.SHARDS)
    os.makedirs(shards, exist_ok=True)
    tmp = os.path.join(shards, f".tmp-{fmt.shard_name(index)}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=_link_or_copy)
    os.rename(tmp, os.path.join(shards, fmt.shard_name(index)))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _merged_metadata(merged: dataset_lib.Dataset, shards: list[dict]) -> dict:
    per_task = {}
    for metadata in merged.metadata:
        for env_id, t in metadata.get("per_task", {}).items():
            acc = per_task.setdefault(env_id, {"episodes": 0, "attempts": 0})
            acc["episodes"] += t["episodes"]
            acc["attempts"] += t["attempts"]
    for t in per_task.values():
        t["acceptance_rate"] = t["episodes"] / t["attempts"] if t["attempts"] else None
    attempts = sum(s["attempts"] for s in shards)
    return {
        "format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION, "created": provenance.utc_now(),
        "merged_from": [
            {"path": p, **{k: v for k, v in m.items() if k != "shards"}}
            for p, m in zip(merged.paths, merged.metadata)],
        "seeds": [s for m in merged.metadata for s in m.get("seeds", [])],
        "env_ids": list(merged.env_ids),
        "tasks": {k: v for m in merged.metadata for k, v in m.get("tasks", {}).items()},
        "image_shape": list(merged.image_shape), "action_dim": merged.action_dim,
        "shards": shards, "num_episodes": merged.num_episodes, "num_steps": merged.num_steps,
        "attempts": attempts,
        "acceptance_rate": merged.num_episodes / attempts if attempts else None,
        "per_task": per_task, "complete": all(m.get("complete", True) for m in merged.metadata),
    }
