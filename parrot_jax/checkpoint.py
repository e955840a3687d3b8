"""Orbax checkpoints: the full training state plus the parameters on their own.

Each step directory holds two items: ``state`` (everything needed to resume training:
params, optimizer state, step, rng) and ``params`` (what a user of the trained model
needs), so loading a model never needs the optimizer that trained it. Orbax writes each
checkpoint to a temporary directory and renames it when complete, so a killed run
leaves the previous checkpoints intact.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Callable, Sequence

import jax
import orbax.checkpoint as ocp

DIRECTORY = "checkpoints"


class Checkpoints:
    """A ``CheckpointManager`` over ``directory`` keeping the last ``max_to_keep`` steps,
    and every step in ``keep_steps`` besides (e.g. step 0, the model before any update,
    which a comparison of the start with the end needs long after it would rotate out)."""

    def __init__(self, directory: str, max_to_keep: int = 3, read_only: bool = False,
                 keep_steps: Sequence[int] = ()):
        self.directory = os.path.abspath(directory)
        policy = ocp.checkpoint_managers
        retention = (dict(preservation_policy=policy.AnyPreservationPolicy(
            [policy.LatestN(max_to_keep), policy.CustomSteps(list(keep_steps))]))
            if keep_steps else dict(max_to_keep=max_to_keep))
        options = ocp.CheckpointManagerOptions(create=not read_only, read_only=read_only,
                                               **retention)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "params"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def resolve_step(self, step: int | None) -> int:
        """``step`` if it was saved, the latest step if None; else FileNotFoundError."""
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"{self.directory}: no checkpoint saved yet")
        if step is None:
            return max(steps)
        if step not in steps:
            raise FileNotFoundError(f"{self.directory}: no checkpoint at step {step}; saved "
                                    f"steps are {sorted(steps)}")
        return step

    def save(self, step: int, state: Any, params: Any) -> None:
        """Saves asynchronously; call ``wait()`` before relying on it."""
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), params=ocp.args.StandardSave(params)),
            force=True)

    def restore_state(self, step: int, abstract_state: Any) -> Any:
        """The training state at ``step``, with the structure (and shardings) of
        ``abstract_state`` (e.g. ``jax.eval_shape`` of the init, or a live state)."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_placed(abstract_state))))
        return restored["state"]

    def restore_params(self, step: int, abstract_params: Any) -> Any:
        restored = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(_placed(abstract_params))))
        return restored["params"]

    def restore_newest_good(self, restore: Callable[[int], Any]) -> tuple[Any, int]:
        """``(restore(step), step)`` for the newest step that restores.

        A step whose files are torn or corrupt is reported with a warning naming its
        directory and the next older one is tried; once an older step restores, the newer
        damaged ones are moved aside (``STEP.corrupt``, kept for inspection) so training can
        write those steps again. If no step restores, nothing is moved and the newest step's
        error is raised (a change in the state's structure fails every step alike).
        """
        failed: list[tuple[int, Exception]] = []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                value = restore(step)
            except Exception as error:  # Orbax raises many kinds for damaged files
                logging.warning("checkpoint %s cannot be restored (%s: %s); trying the one "
                                "before", os.path.join(self.directory, str(step)),
                                type(error).__name__, error)
                failed.append((step, error))
                continue
            for bad, _ in failed:
                self._set_aside(bad, "corrupt", "damaged")
            if failed:
                self.manager.reload()
            return value, step
        if failed:
            step, error = failed[0]
            raise RuntimeError(f"no checkpoint in {self.directory} could be restored; the "
                               f"newest, step {step}, failed with: {error}") from error
        raise FileNotFoundError(f"{self.directory}: no checkpoint saved yet")

    def set_aside_after(self, step: int, suffix: str) -> list[int]:
        """Moves every checkpoint newer than ``step`` aside (``STEP.SUFFIX``, kept for
        inspection), so training resumes from ``step`` and can write those steps again;
        returns the steps moved."""
        newer = sorted(s for s in self.all_steps() if s > step)
        for later in newer:
            self._set_aside(later, suffix, f"newer than step {step}")
        if newer:
            self.manager.reload()
        return newer

    def _set_aside(self, step: int, suffix: str, why: str) -> None:
        path = os.path.join(self.directory, str(step))
        aside = f"{path}.{suffix}"
        while os.path.exists(aside):
            aside += "_"
        os.replace(path, aside)
        logging.warning("moved the checkpoint %s (%s) to %s", path, why, aside)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _placed(abstract: Any) -> Any:
    """``abstract`` with a sharding on every array leaf: those without one go to this
    process's first device. Without it Orbax would lay them out as they were saved, which
    fails when the checkpoint comes from other devices (a multi-host run, a GPU)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def place(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct) and leaf.sharding is None:
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device)
        return leaf

    return jax.tree.map(place, abstract)


@contextlib.contextmanager
def _reading(directory: str, step: int | None):
    """``(manager, step)`` over ``directory`` opened read-only, ``step`` resolved (latest
    if None); FileNotFoundError if there is no such checkpoint."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no checkpoint saved yet")
    manager = Checkpoints(directory, read_only=True)
    try:
        yield manager, manager.resolve_step(step)
    finally:
        manager.close()


def saved_step(directory: str, step: int | None = None) -> int:
    """``step`` if ``directory`` holds it, its latest step if None; FileNotFoundError
    otherwise (what ``load_params`` would restore, without restoring it)."""
    with _reading(directory, step) as (_, step):
        return step


def load_params(directory: str, abstract_params: Any, step: int | None = None
                ) -> tuple[Any, int]:
    """``(params, step)`` from the ``params`` item of ``directory``'s checkpoint at ``step``
    (latest if None), opened read-only; FileNotFoundError if there is none."""
    with _reading(directory, step) as (manager, step):
        return manager.restore_params(step, abstract_params), step
