"""Random batches of frames, or of windows of consecutive frames, from a prior dataset.

``BatchSampler.batch(k)`` is a pure function of ``(seed, k, process_index)``: streams are
reproducible, training resumed at step ``k`` asks for batch ``k`` and gets what it would
have got, and several threads may build different batches at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def valid_starts(episode_starts: np.ndarray, episode_lengths: np.ndarray,
                 window: int) -> np.ndarray:
    """Every frame ``t`` such that ``t .. t + window - 1`` lie in one episode (sorted int64).

    Episode ``e`` contributes ``max(0, len_e - window + 1)`` starts:
    ``starts_e, starts_e + 1, ..., starts_e + len_e - window``.
    """
    starts = np.asarray(episode_starts, dtype=np.int64)
    counts = np.maximum(np.asarray(episode_lengths, dtype=np.int64) - window + 1, 0)
    # Position of each start inside its episode: 0, 1, ..., counts_e - 1 for each e.
    offsets = np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts,
                                                                   counts)
    return np.repeat(starts, counts) + offsets


def gather(array, indices: np.ndarray) -> np.ndarray:
    """``array[indices]`` for any index shape: a plain ndarray, or a lazy ``FrameArray``
    (which sorts the rows itself so each shard file is read in order)."""
    flat = np.asarray(indices).reshape(-1)
    values = np.asarray(array[flat])
    return values.reshape(indices.shape + values.shape[1:])


class BatchSampler:
    """Uniform random batches ``{"observations", "actions"}`` from a dataset.

    Without ``window``: ``B`` frames drawn uniformly with replacement from all frames of
    all episodes; observations ``(B, 48, 48, 3)`` uint8, actions ``(B, A)`` float32.
    With ``window=H``: ``B`` windows of ``H`` consecutive frames of one episode, their
    start drawn uniformly with replacement from ``valid_starts(..., H)``; observations
    ``(B, H, 48, 48, 3)``, actions ``(B, H, A)``. With ``images=False``: the actions
    alone (``{"actions"}``), for models of actions that never read a frame; with
    ``images="first"`` (windows only): each window's first image, ``(B, 48, 48, 3)``, for
    models conditioned on the state a window starts from.

    ``B = batch_size // process_count`` is this process's share of the global batch: rows
    ``[process_index * B, (process_index + 1) * B)`` of the batch a single process would
    draw, so a multi-process run trains on exactly the batches of a one-process run.

    ``extras`` names per-step arrays of the dataset (attributes, e.g. ``"object_offsets"``)
    gathered at the same frames as the actions and added to every batch under their name.
    """

    def __init__(self, dataset, batch_size: int, seed: int, window: int | None = None,
                 process_index: int = 0, process_count: int = 1,
                 images: bool | str = True, extras: tuple[str, ...] = ()):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        if window is not None and window < 1:
            raise ValueError(f"window={window} must be >= 1 (or None for single frames)")
        if seed < 0:
            raise ValueError(f"seed={seed} must be a non-negative integer")
        if images not in (True, False, "first") or (images == "first" and window is None):
            raise ValueError(f"images={images!r}; expected True, False or 'first' (the "
                             "first image of each window, with a window)")
        if process_count < 1 or not 0 <= process_index < process_count:
            raise ValueError(f"process_index={process_index} must be in "
                             f"[0, process_count={process_count}) with process_count >= 1")
        for name in extras:
            if getattr(dataset, name, None) is None:
                raise ValueError(f"the dataset has no per-step {name!r} array (datasets "
                                 f"from {list(getattr(dataset, 'paths', ()))}); collect it "
                                 "again with experiments.collect_data, which stores it")
        if batch_size % process_count:
            raise ValueError(f"batch_size={batch_size} is not divisible by "
                             f"process_count={process_count}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.local_batch_size = batch_size // process_count
        self.seed = seed
        self.window = window
        self.images = images
        self.extras = tuple(extras)
        self.process_index = process_index
        self.process_count = process_count
        self.starts = valid_starts(dataset.episode_starts, dataset.episode_lengths,
                                   window or 1)
        if self.starts.size == 0:
            longest = int(np.max(dataset.episode_lengths, initial=0))
            raise ValueError(f"no episode is at least window={window} frames long "
                             f"(the longest has {longest})")

    def indices(self, k: int) -> np.ndarray:
        """Frame indices of batch ``k``: shape ``(B,)``, or ``(B, H)`` with a window."""
        if k < 0:
            raise ValueError(f"batch number k={k} must be >= 0")
        # The whole global batch's draw (cheap: integers), then this process's rows; the
        # trailing 0 keeps the draws of runs made before multi-process sharing existed.
        rng = np.random.default_rng([self.seed, k, 0])
        rows = rng.integers(self.starts.size, size=self.batch_size)
        local = slice(self.process_index * self.local_batch_size,
                      (self.process_index + 1) * self.local_batch_size)
        starts = self.starts[rows[local]]
        if self.window is None:
            return starts
        return starts[:, None] + np.arange(self.window, dtype=np.int64)

    def batch(self, k: int) -> dict[str, np.ndarray]:
        """Batch number ``k`` (a pure function of ``seed``, ``k`` and ``process_index``)."""
        idx = self.indices(k)
        batch = {"actions": gather(self.dataset.actions, idx)}
        batch.update((name, gather(getattr(self.dataset, name), idx)) for name in self.extras)
        if not self.images:  # a model of actions alone: no image is read from disk
            return batch
        observations = self.dataset.observations
        if self.images == "first":
            return {"observations": gather(observations, idx[:, 0]), **batch}
        if self.window is not None and hasattr(observations, "windows"):
            images = observations.windows(idx[:, 0], self.window)  # one block per window
        else:
            images = gather(observations, idx)
        return {"observations": images, **batch}

    def iterate(self, start: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Batches ``start, start + 1, ...`` forever."""
        k = start
        while True:
            yield self.batch(k)
            k += 1

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self.iterate()
