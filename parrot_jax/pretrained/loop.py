"""The training loop shared by every model pretrained from the prior dataset (the flow
prior, the VAE of VAE-features, ...): ``fit(config, workdir, model)``.

A model supplies its description (what ``WORKDIR/config.json`` records) and its jitted
programs (``Programs``); the loop does the rest the same way for all of them: the
train/validation split, checkpoints of the whole train state (Orbax, in
``WORKDIR/checkpoints``), metrics (``parrot_jax.metrics``), evaluation on fixed
validation batches, and exact resume. Update ``k`` always uses
``BatchSampler(train_split, batch_size, seed).batch(k)``, so a run killed and rerun with
the same workdir resumes from its last checkpoint and ends bit-identical to an
uninterrupted run (on CPU); rerunning a finished run does nothing.

``Programs.evaluate(params, batch)`` returns *summed* per-sample quantities and their
``count``; the loop reports each as ``eval/NAME`` = sum / count over the fixed batches.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import os
import time
from typing import Any, Callable, Protocol

import jax
import numpy as np
import tqdm
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from parrot_jax import checkpoint, parallel, run_config
from parrot_jax.data import load_dataset
from parrot_jax.data.prefetch import Prefetcher
from parrot_jax.data.sampling import BatchSampler
from parrot_jax.metrics import MetricWriter

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
# Dispatches the loop lets run ahead of the host before it waits for the oldest. Unbounded,
# hundreds of VAE updates queued on 4 host CPU devices (the tests' mesh, 2 cores) hung in
# XLA:CPU's in-process all-reduce ("Expected 4 threads to join the rendezvous", then an
# abort after 40 s); 2 or 8 ahead ran 300 updates at the same speed (38-39 s).
MAX_IN_FLIGHT = 8


@dataclasses.dataclass(frozen=True)
class Programs:
    init: Callable  # rng -> train state at step 0, replicated
    update: Callable  # (state, batch) -> (state, metrics); donates the state
    evaluate: Callable  # (params, batch) -> summed per-sample metrics and their "count"
    all_finite: Callable  # pytree -> bool scalar
    batch_sharding: NamedSharding  # of update's batch
    eval_sharding: NamedSharding  # of evaluate's batch


def jit_programs(mesh: Mesh, init: Callable, step: Callable, fused_step: Callable,
                 eval_step: Callable, all_finite: Callable, steps_per_dispatch: int,
                 fast_compile: bool = False) -> Programs:
    """Jits a model's pure functions: parameters and optimizer state replicated over
    ``mesh``, a batch split over its ``"data"`` axis on the leading (batch) axis, or on
    the second axis when ``steps_per_dispatch = K > 1`` stacks K batches for one
    ``fused_step`` (a ``lax.scan``) dispatch.

    ``fast_compile`` turns XLA's backend (LLVM) optimisations off: compiling takes about a
    third of the time and steps about 1.5x longer on CPU, right for tests.
    """
    jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE if fast_compile else None)
    replicated = parallel.replicated(mesh)
    fused = steps_per_dispatch > 1
    data = NamedSharding(mesh, P(None, parallel.DATA_AXIS)) if fused else \
        parallel.batch_sharding(mesh)
    return Programs(
        init=jit(init, out_shardings=replicated),
        update=jit(fused_step if fused else step, in_shardings=(replicated, data),
                   out_shardings=replicated, donate_argnums=0),
        evaluate=jit(eval_step, in_shardings=(replicated, parallel.batch_sharding(mesh)),
                     out_shardings=replicated),
        all_finite=jit(all_finite, out_shardings=replicated),
        batch_sharding=data, eval_sharding=parallel.batch_sharding(mesh))


class StackedSampler:
    """``batch(j)``: batches ``jK .. jK + K - 1`` of ``sampler`` stacked on a new leading
    axis, the input of ``K`` updates fused into one dispatch."""

    def __init__(self, sampler, steps: int):
        self.sampler, self.steps, self.batch_size = sampler, steps, sampler.batch_size

    def batch(self, j: int) -> dict[str, np.ndarray]:
        batches = [self.sampler.batch(j * self.steps + i) for i in range(self.steps)]
        return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


class Model(Protocol):
    """What a pretrained model tells ``fit``."""

    def check_inputs(self, config) -> None:
        """ValueError naming the first invalid setting (before the dataset is read)."""

    def describe(self, config, dataset) -> dict[str, Any]:
        """``config.json``'s contents: the config plus what the dataset decided."""

    def check_and_write(self, workdir: str, description: dict[str, Any]) -> None:
        """Refuses a workdir holding a different run; writes ``config.json``."""

    def programs(self, description: dict[str, Any], mesh: Mesh, config) -> Programs:
        """The jitted programs of this run."""

    def sampling(self, config) -> dict[str, Any]:
        """``BatchSampler``'s ``window`` and ``images`` for this model's batches (``{}``:
        single frames with their images)."""


def fit(config, workdir: str, model: Model):
    """Trains (or resumes, or finds finished) ``model``'s run in ``workdir`` on
    ``config.dataset``; returns the final train state (with ``.step`` and ``.params``)."""
    if config.distributed:
        parallel.initialize_distributed()
    model.check_inputs(config)
    dataset = first_episodes(load_dataset(run_config.dataset_paths(config.dataset)),
                             config.max_episodes)
    if config.in_memory:  # after the selection: only the episodes trained on
        dataset = dataset.load_into_memory()
    train_set, validation_set = dataset.split(config.validation_fraction, config.seed)
    description = model.describe(config, dataset)
    mesh = parallel.make_mesh(config.num_devices or None)
    parallel.check_batch_size(config.batch_size, mesh)
    lead = jax.process_index() == 0
    if lead:
        os.makedirs(workdir, exist_ok=True)
        model.check_and_write(workdir, description)
    programs = model.programs(description, mesh, config)
    checkpoints = checkpoint.Checkpoints(os.path.join(workdir, checkpoint.DIRECTORY),
                                         config.max_checkpoints)
    try:
        state, resumed = _initial_state(programs, checkpoints, config)
        if int(state.step) >= config.num_steps:
            logging.info("%s: finished at step %d (num_steps=%d); nothing to do", workdir,
                         int(state.step), config.num_steps)
            return state
        sampling = model.sampling(config)
        sampler = BatchSampler(train_set, config.batch_size, config.seed,
                               process_index=jax.process_index(),
                               process_count=jax.process_count(), **sampling)
        eval_batches = _eval_batches(validation_set, config, programs.eval_sharding,
                                     sampling)
        with MetricWriter(workdir, resumed, enabled=lead) as writer:
            return _train_loop(config, state, programs, sampler, eval_batches, writer,
                               checkpoints)
    finally:
        checkpoints.close()


def check_loop_config(config) -> None:
    """ValueError naming the first invalid setting of the loop's own fields (steps,
    intervals, batch, optimizer, split, devices, prefetching)."""
    for name in ("num_steps", "batch_size", "steps_per_dispatch", "log_every", "eval_every",
                 "checkpoint_every", "max_checkpoints"):
        if int(config[name]) < 1:
            raise ValueError(f"config.{name}={config[name]}; expected a positive integer")
    if config.eval_batches < 0:
        raise ValueError(f"config.eval_batches={config.eval_batches}; expected >= 0")
    n = config.steps_per_dispatch
    for name in ("num_steps", "log_every", "eval_every", "checkpoint_every"):
        if config[name] % n:
            raise ValueError(f"config.{name}={config[name]} is not a multiple of "
                             f"config.steps_per_dispatch={n} (steps run {n} at a time)")
    if not config.learning_rate > 0:
        raise ValueError(f"config.learning_rate={config.learning_rate}; expected a positive "
                         "number")
    if config.grad_clip_norm is not None and not config.grad_clip_norm >= 0:
        raise ValueError(f"config.grad_clip_norm={config.grad_clip_norm}; expected None or "
                         ">= 0 (0: off)")
    if not 0.0 <= config.validation_fraction < 1.0:
        raise ValueError(f"config.validation_fraction={config.validation_fraction}; expected "
                         "a fraction in [0, 1) of the episodes")
    for name in ("seed", "num_devices"):  # max_episodes: first_episodes, with the dataset
        if int(config[name]) < 0:
            raise ValueError(f"config.{name}={config[name]}; expected an integer >= 0")
    for name in ("prefetch", "prefetch_threads"):
        if int(config[name]) < 1:
            raise ValueError(f"config.{name}={config[name]}; expected a positive integer")


def first_episodes(dataset, max_episodes: int):
    """The dataset's first ``max_episodes`` episodes in stored order (0: all of them).

    A collection's shards hold an exact task mix, so a prefix of whole shards is the
    dataset a smaller collection with the same seed would have written (paper Figure 6
    trains priors on prefixes of one dataset).
    """
    if max_episodes < 0 or max_episodes > dataset.num_episodes:
        raise ValueError(f"config.max_episodes={max_episodes}; expected 0 (all) or at most "
                         f"the dataset's {dataset.num_episodes} episodes")
    if max_episodes in (0, dataset.num_episodes):
        return dataset
    return dataset.select_episodes(range(max_episodes))


def _initial_state(programs: Programs, checkpoints: checkpoint.Checkpoints,
                   config) -> tuple[Any, int | None]:
    """The fresh state, or the newest good checkpoint's (and its step) if there is one (a
    torn or corrupt newer one is moved aside: ``Checkpoints.restore_newest_good``)."""
    rng = jax.random.key(config.seed)
    if checkpoints.latest_step() is None:
        return programs.init(rng), None
    # Shapes, dtypes and (replicated) shardings of the state, without computing it.
    abstract = jax.eval_shape(programs.init, rng)
    state, step = checkpoints.restore_newest_good(
        lambda s: checkpoints.restore_state(s, abstract))
    if int(state.step) != step:
        raise ValueError(f"{checkpoints.directory}: checkpoint {step} holds a state at step "
                         f"{int(state.step)}")
    if step % config.steps_per_dispatch:
        raise ValueError(f"resuming at step {step}, which is not a multiple of "
                         f"config.steps_per_dispatch={config.steps_per_dispatch}")
    logging.info("resuming from %s at step %d", checkpoints.directory, step)
    return state, step


def _eval_batches(validation_set, config, sharding, sampling: dict[str, Any]) -> list:
    """``eval_batches`` fixed validation batches on the devices (empty without a split)."""
    if not config.validation_fraction or not config.eval_batches:
        return []
    sampler = BatchSampler(validation_set, config.batch_size, config.seed,
                           process_index=jax.process_index(),
                           process_count=jax.process_count(), **sampling)
    return [parallel.place_batch(sampler.batch(k), sharding)
            for k in range(config.eval_batches)]


def evaluate(programs: Programs, params, batches) -> dict[str, float]:
    """``eval/NAME``: the per-sample mean of each summed quantity over the fixed batches."""
    totals = [programs.evaluate(params, b) for b in batches]
    total = jax.tree.map(lambda *x: float(np.sum(x)), *totals)
    return {f"eval/{k}": v / total["count"] for k, v in total.items() if k != "count"}


def _train_loop(config, state, programs: Programs, sampler, eval_batches,
                writer: MetricWriter, checkpoints: checkpoint.Checkpoints):
    """Runs updates from ``state.step`` to ``num_steps``, logging, evaluating and saving."""
    n = config.steps_per_dispatch
    step = int(state.step)
    if step == 0 and eval_batches:
        writer.write(0, evaluate(programs, state.params, eval_batches))
    source = StackedSampler(sampler, n) if n > 1 else sampler
    pending = _Pending(step)
    in_flight = collections.deque()
    with Prefetcher(source, programs.batch_sharding, start=step // n,
                    buffer_size=config.prefetch, num_threads=config.prefetch_threads) as batches, \
            tqdm.tqdm(total=config.num_steps, initial=step, unit="step", dynamic_ncols=True,
                      disable=not (config.progress and jax.process_index() == 0)) as bar:
        while step < config.num_steps:
            state, metrics = programs.update(state, next(batches))
            step += n
            pending.add(metrics)
            in_flight.append(metrics["loss"])
            if len(in_flight) > MAX_IN_FLIGHT:
                in_flight.popleft().block_until_ready()
            bar.update(n)
            last = step == config.num_steps
            row = {}
            if step % config.log_every == 0 or last:
                row.update(pending.summary(checkpoints))
                bar.set_postfix(loss=f"{row['train/loss']:.3f}")
            if eval_batches and (step % config.eval_every == 0 or last):
                row.update(evaluate(programs, state.params, eval_batches))
            writer.write(step, row)
            if row:
                _report(bar, step, row)
            if step % config.checkpoint_every == 0 or last:
                pending.check(checkpoints)
                _save(programs, checkpoints, state, step)
    return state


def _report(bar: tqdm.tqdm, step: int, row: dict[str, float]) -> None:
    """One line per logged step: above the progress bar, or in the log without one."""
    line = f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items())
    if bar.disable:
        logging.info(line)
    else:
        bar.write(line)


def _save(programs: Programs, checkpoints: checkpoint.Checkpoints, state, step: int) -> None:
    if not bool(programs.all_finite(state.params)):
        raise FloatingPointError(f"non-finite parameters at step {step}; not saving them. "
                                 f"{_last_good(checkpoints)}")
    checkpoints.save(step, state, state.params)


def _last_good(checkpoints: checkpoint.Checkpoints) -> str:
    checkpoints.wait()
    step = checkpoints.latest_step()
    if step is None:
        return "No checkpoint was saved; a rerun starts from scratch."
    return (f"The last good checkpoint is step {step} in {checkpoints.directory}; a rerun "
            "resumes from it (lower config.learning_rate or set config.grad_clip_norm).")


class _Pending:
    """Per-step metrics since the last log, kept on the device until they are needed
    (fetching them every step would stall the asynchronous dispatch)."""

    def __init__(self, step: int):
        self.first_step, self.metrics = step, []
        self.time = time.perf_counter()

    def add(self, metrics) -> None:
        self.metrics.append(metrics)

    def values(self) -> dict[str, np.ndarray]:
        """name -> (steps,) values, oldest first."""
        return {k: np.concatenate([np.atleast_1d(np.asarray(m[k])) for m in self.metrics])
                for k in self.metrics[0]} if self.metrics else {}

    def check(self, checkpoints) -> dict[str, np.ndarray]:
        """Raises ``FloatingPointError`` at the first step with a non-finite loss."""
        values = self.values()
        if values:
            bad = np.flatnonzero(~np.isfinite(values["loss"]))
            if bad.size:
                k = self.first_step + int(bad[0])
                raise FloatingPointError(
                    f"the loss is {values['loss'][bad[0]]} at step {k} (batch {k}). "
                    f"{_last_good(checkpoints)}")
        return values

    def summary(self, checkpoints) -> dict[str, float]:
        """Means since the last summary, and steps per second (wall clock, evaluation and
        the first compilation included); then starts afresh."""
        values = self.check(checkpoints)
        now = time.perf_counter()
        steps = len(values["loss"])
        row = {f"train/{k}": float(np.mean(v)) for k, v in values.items()}
        row["train/steps_per_sec"] = steps / max(now - self.time, 1e-9)
        self.first_step, self.metrics, self.time = self.first_step + steps, [], now
        return row
