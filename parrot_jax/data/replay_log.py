"""A replay buffer kept on disk beside the checkpoints, so a resumed RL run continues
with the very buffer it had.

Every ``start`` / ``add`` call goes through ``ReplayLog``, which forwards it to the
``ReplayBuffer`` and keeps its arguments. ``commit(S)`` (at the checkpoint of env step S)
writes them to ``DIRECTORY``:

- ``chunk_{S}.npz``: the calls since the previous commit (observations, actions, rewards,
  flags, and the final frames of the episodes that ended);
- ``base_{S}.npz``: the whole buffer (``ReplayBuffer.state_dict``), written in place of a
  chunk once the chunks since the last base hold more frames than the buffer can. Files
  that precede the newest base at or before the oldest kept checkpoint are deleted, so
  the directory holds at most three buffers' worth plus two checkpoint intervals of
  frames (one buffer's worth while the buffer has not filled).

``restore(S)`` rebuilds the buffer of step S: the newest base at or before S, then the
chunks after it up to S, replayed through the buffer's own ``start`` and ``add`` (the
same calls in the same order give the same arrays). Files are written under a temporary
name, flushed and renamed, so a kill leaves each whole or absent; files after S (a run
killed between its replay commit and its checkpoint) are deleted by ``restore(S)``. A
file that is torn anyway raises ``ValueError`` naming it.

In a multi-process run every process keeps the same buffer (the same envs, seeds and
actions) and only one, ``write=True``, writes and deletes files; the others only read.
"""

from __future__ import annotations

import io
import os
import re
import zipfile

import numpy as np

from parrot_jax.io import atomic_write_bytes

from parrot_jax.data.replay import ReplayBuffer

_FILE = re.compile(r"^(base|chunk)_(\d{12})\.npz$")
_START, _ADD = 0, 1


class ReplayLog:
    """The ``ReplayBuffer``'s writes, recorded and committed to ``directory``."""

    def __init__(self, directory: str, buffer: ReplayBuffer, write: bool = True):
        self.directory = os.path.abspath(directory)
        self.buffer = buffer
        self.write = write
        self._calls: list[tuple] = []
        self._frames_since_base = 0
        os.makedirs(self.directory, exist_ok=True)

    # --- recording -------------------------------------------------------------------------

    def start(self, observations) -> None:
        self.buffer.start(observations)
        self._calls.append((_START, np.array(observations)))

    def add(self, actions, rewards, terminated, truncated, observations,
            final_observations) -> None:
        self.buffer.add(actions, rewards, terminated, truncated, observations,
                        final_observations)
        done = np.asarray(terminated) | np.asarray(truncated)
        self._calls.append((_ADD, np.array(observations), np.array(actions),
                            np.array(rewards), np.array(terminated), np.array(truncated),
                            np.array(np.asarray(final_observations)[done])))

    # --- files -----------------------------------------------------------------------------

    def files(self) -> list[tuple[int, str, str]]:
        """``(step, kind, path)`` of every committed file, in step order."""
        found = []
        for name in os.listdir(self.directory):
            match = _FILE.match(name)
            if match:
                found.append((int(match.group(2)), match.group(1),
                              os.path.join(self.directory, name)))
        return sorted(found, key=lambda f: (f[0], f[1] == "chunk"))

    def disk_bytes(self) -> int:
        return sum(os.path.getsize(path) for _, _, path in self.files())

    def commit(self, step: int, keep_from: int | None = None) -> None:
        """Writes the calls since the last commit as step ``step``'s file; then deletes the
        files no restore of a step ``>= keep_from`` needs (the oldest checkpoint kept)."""
        frames = sum(call[1].shape[0] + (call[6].shape[0] if call[0] == _ADD else 0)
                     for call in self._calls)
        if not self.write:
            self._calls = []
            return
        if self._frames_since_base + frames > self.buffer.capacity_frames:
            self._write("base", step, self.buffer.state_dict())
            self._frames_since_base = 0
        else:
            self._write("chunk", step, _pack(self._calls, self.buffer))
            self._frames_since_base += frames
        self._calls = []
        if keep_from is not None:
            self._prune(min(keep_from, step))

    def restore(self, step: int) -> bool:
        """Rebuilds the buffer (empty before) as it was at the commit of ``step``; False if
        the directory holds no file for it (a run written before replay logs existed)."""
        self._calls = []
        files = self.files()
        if self.write:
            for name in os.listdir(self.directory):
                if name.startswith(".tmp-") or name.endswith(".tmp"):  # a write a kill cut
                    os.remove(os.path.join(self.directory, name))
            for s, _, path in files:
                if s > step:  # committed by a run that died before its checkpoint completed
                    os.remove(path)
        files = [f for f in files if f[0] <= step]
        if not any(s == step for s, _, _ in files) and step > 0:
            return False
        bases = [f for f in files if f[1] == "base"]
        first = 0
        if bases:
            base_step, _, path = bases[-1]
            self.buffer.load_state_dict(_read(path))
            first = base_step + 1
        self._frames_since_base = 0
        for s, kind, path in files:
            if kind == "chunk" and s >= first:
                self._frames_since_base += _replay(_read(path), self.buffer)
        return True

    def _write(self, kind: str, step: int, arrays: dict[str, np.ndarray]) -> None:
        data = io.BytesIO()
        np.savez(data, **arrays)
        atomic_write_bytes(os.path.join(self.directory, f"{kind}_{step:012d}.npz"),
                           data.getvalue())

    def _prune(self, keep_from: int) -> None:
        """Deletes what precedes the newest base at or before ``keep_from``."""
        files = self.files()
        bases = [s for s, kind, _ in files if kind == "base" and s <= keep_from]
        if not bases:
            return
        for s, kind, path in files:
            if s < bases[-1]:
                os.remove(path)


def _pack(calls: list[tuple], buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    """The recorded calls as arrays: one row per call, final frames concatenated."""
    n, obs_shape = buffer.num_envs, buffer.observation_shape
    kinds = np.array([c[0] for c in calls], np.int8)
    obs = np.stack([c[1] for c in calls]) if calls else np.zeros((0, n) + obs_shape,
                                                                   buffer.observation_dtype)
    adds = [c for c in calls if c[0] == _ADD]

    def column(i, shape, dtype):
        return np.stack([c[i] for c in adds]) if adds else np.zeros((0,) + shape, dtype)

    return {"kinds": kinds, "observations": obs,
            "actions": column(2, (n,) + buffer.action_shape, buffer.action_dtype),
            "rewards": column(3, (n,), np.float32),
            "terminated": column(4, (n,), bool), "truncated": column(5, (n,), bool),
            "final_observations": (np.concatenate([c[6] for c in adds]) if adds
                                   else np.zeros((0,) + obs_shape, buffer.observation_dtype))}


def _replay(chunk: dict[str, np.ndarray], buffer: ReplayBuffer) -> int:
    """Re-applies a chunk's calls to ``buffer``; returns the frames it held."""
    add, final = 0, 0
    for i, kind in enumerate(chunk["kinds"]):
        obs = chunk["observations"][i]
        if kind == _START:
            buffer.start(obs)
            continue
        terminated, truncated = chunk["terminated"][add], chunk["truncated"][add]
        done = np.flatnonzero(terminated | truncated)
        final_obs = obs.copy()
        final_obs[done] = chunk["final_observations"][final:final + len(done)]
        buffer.add(chunk["actions"][add], chunk["rewards"][add], terminated, truncated, obs,
                   final_obs)
        add, final = add + 1, final + len(done)
    return chunk["observations"].shape[0] * buffer.num_envs + final


def _read(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"replay file {path} is torn or corrupt ({e}); delete the run's "
                         "newest checkpoint and this file to resume from the one before") from e
