"""``train_and_evaluate(config, workdir)``: fit the flow prior by maximum likelihood.

Writes ``WORKDIR/config.json`` (read by ``load_prior``), Orbax checkpoints of the whole
train state in ``WORKDIR/checkpoints``, and metrics (``parrot_jax.metrics``). Batches are
split over every device on the ``"data"`` mesh axis with parameters replicated. Update
``k`` always uses ``BatchSampler(train_split, batch_size, seed).batch(k)``, so a run
killed and rerun with the same workdir resumes from its last checkpoint and ends
bit-identical to an uninterrupted run (on CPU); rerunning a finished run does nothing.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import ml_collections
import numpy as np
import tqdm

from parrot_jax import checkpoint, parallel
from parrot_jax.data import load_dataset
from parrot_jax.data.prefetch import Prefetcher
from parrot_jax.data.sampling import BatchSampler
from parrot_jax.flows import run_config, train_state
from parrot_jax.flows.prior import make_flow
from parrot_jax.flows.programs import Programs, StackedSampler, compile_programs
from parrot_jax.metrics import MetricWriter


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> train_state.TrainState:
    """Trains (or resumes, or finds finished) the run in ``workdir``; returns its state."""
    if config.distributed:
        parallel.initialize_distributed()
    run_config.check_inputs(config)
    dataset = run_config.first_episodes(load_dataset(run_config.dataset_paths(config.dataset)),
                                        config.max_episodes)
    if config.in_memory:  # after the selection: only the episodes trained on
        dataset = dataset.load_into_memory()
    train_set, validation_set = dataset.split(config.validation_fraction, config.seed)
    description = run_config.describe_run(config, dataset)
    mesh = parallel.make_mesh(config.num_devices or None)
    parallel.check_batch_size(config.batch_size, mesh)
    lead = jax.process_index() == 0
    if lead:
        os.makedirs(workdir, exist_ok=True)
        run_config.check_and_write(workdir, description)
    programs = compile_programs(
        make_flow(description["model"]), mesh, dataset.image_shape, config.learning_rate,
        config.grad_clip_norm, config.steps_per_dispatch, config.max_abs_action,
        config.fast_compile, config.augment_pad,
        config.num_steps if config.lr_schedule == "cosine" else 0, config.final_lr_fraction)
    checkpoints = checkpoint.Checkpoints(os.path.join(workdir, checkpoint.DIRECTORY),
                                         config.max_checkpoints)
    try:
        state, resumed = _initial_state(programs, checkpoints, config)
        if int(state.step) >= config.num_steps:
            logging.info("%s: finished at step %d (num_steps=%d); nothing to do", workdir,
                         int(state.step), config.num_steps)
            return state
        sampler = BatchSampler(train_set, config.batch_size, config.seed,
                               process_index=jax.process_index(),
                               process_count=jax.process_count())
        eval_batches = _eval_batches(validation_set, config, programs.eval_sharding)
        with MetricWriter(workdir, resumed, enabled=lead) as writer:
            return _train_loop(config, state, programs, sampler, eval_batches, writer,
                               checkpoints)
    finally:
        checkpoints.close()


def _initial_state(programs: Programs, checkpoints: checkpoint.Checkpoints,
                   config) -> tuple[train_state.TrainState, int | None]:
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


def _eval_batches(validation_set, config, sharding) -> list:
    """``eval_batches`` fixed validation batches on the devices (empty without a split)."""
    if not config.validation_fraction or not config.eval_batches:
        return []
    sampler = BatchSampler(validation_set, config.batch_size, config.seed,
                           process_index=jax.process_index(),
                           process_count=jax.process_count())
    return [parallel.place_batch(sampler.batch(k), sharding)
            for k in range(config.eval_batches)]


def evaluate(programs: Programs, params, batches) -> dict[str, float]:
    """Mean validation NLL (per action, nats) over the fixed batches."""
    totals = [programs.evaluate(params, b) for b in batches]
    total = jax.tree.map(lambda *x: float(np.sum(x)), *totals)
    return {"eval/nll": total["nll"] / total["count"],
            "eval/nll_atanh": total["nll_atanh"] / total["count"]}


def _train_loop(config, state, programs: Programs, sampler, eval_batches,
                writer: MetricWriter, checkpoints: checkpoint.Checkpoints):
    """Runs updates from ``state.step`` to ``num_steps``, logging, evaluating and saving."""
    n = config.steps_per_dispatch
    step = int(state.step)
    if step == 0 and eval_batches:
        writer.write(0, evaluate(programs, state.params, eval_batches))
    source = StackedSampler(sampler, n) if n > 1 else sampler
    pending = _Pending(step)
    with Prefetcher(source, programs.batch_sharding, start=step // n,
                    buffer_size=config.prefetch, num_threads=config.prefetch_threads) as batches, \
            tqdm.tqdm(total=config.num_steps, initial=step, unit="step", dynamic_ncols=True,
                      disable=not (config.progress and jax.process_index() == 0)) as bar:
        while step < config.num_steps:
            state, metrics = programs.update(state, next(batches))
            step += n
            pending.add(metrics)
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
