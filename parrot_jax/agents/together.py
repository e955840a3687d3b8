"""``train_together(configs, workdirs)``: S runs of one agent (seeds, or tasks with the same
spaces) trained by one learner program, each run with its own env pool, replay, random
streams, checkpoints, metrics and evaluation, in the same format as a single run's.

Each pool step, in one dispatch (``agents.seeds``: vmapped, or mapped over the agents),

    (state_s, metrics_s) <- update(state_s, batch_s)    for s = 1..S

where ``batch_s`` is drawn from run s's own replay with the random numbers a single run
would use, so each run follows the updates its single run would (equal up to
floating-point summation order; tested). On an accelerator, small networks leave most
of the device idle at one run's batch; S runs fill it from one process. On a 2-core CPU
it gains nothing (README "Many agents in one program").

The runs stay in lockstep: they share the schedule (env steps, update ratio, intervals),
so every run logs, evaluates and checkpoints at the same env steps. A rerun resumes all
of them from the newest checkpoint step they all have (a kill between two runs' saves
leaves one a checkpoint ahead: that one is moved aside as ``STEP.ahead`` and redone);
runs already finished are skipped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from parrot_jax import checkpoint, parallel
from parrot_jax.agents.seeds import OVER, compile_seed_programs, stack, unstack
from parrot_jax.agents.train import OneLearner, OpenRun, Result, check_inputs, drive, open_run

# What may differ between runs trained together (everything else defines the program or
# the shared schedule).
MAY_DIFFER = ("seed", "env")


def check_together(configs: Sequence[ml_collections.ConfigDict],
                   workdirs: Sequence[str]) -> None:
    """ValueError unless the runs can share one learner: as many workdirs as configs, all
    distinct, configs equal but for ``MAY_DIFFER``, each valid for ``train``, one process."""
    if not configs:
        raise ValueError("no runs to train together; expected at least one config")
    if len(configs) != len(workdirs):
        raise ValueError(f"{len(configs)} configs but {len(workdirs)} workdirs; expected one "
                         "workdir per run")
    if len(set(workdirs)) != len(workdirs):
        raise ValueError(f"workdirs {list(workdirs)} repeat a directory; each run needs its own")
    if jax.process_count() > 1:
        raise ValueError(f"runs trained together use one process; this job has "
                         f"{jax.process_count()} (run a multi-host job per run)")
    first = _shared(configs[0])
    for config, workdir in zip(configs, workdirs):
        check_inputs(config)
        shared = _shared(config)
        differs = sorted(k for k in set(first) | set(shared) if first.get(k) != shared.get(k))
        if differs:
            raise ValueError(f"{workdir}: config differs from {workdirs[0]}'s in {differs}; "
                             f"runs trained together may differ only in {list(MAY_DIFFER)}")


def _shared(config) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k not in MAY_DIFFER}


class StackedLearner:
    """S runs' states stacked on a leading axis and their one update program (``drive``'s
    learner)."""

    def __init__(self, programs, states: list):
        self.programs, self.size = programs, len(states)
        self.state = jax.device_put(stack(states), programs.batch_sharding)
        size = self.size
        # one dispatch for all S (not S x leaves slices), each laid out as a single run's
        self._split = jax.jit(lambda tree: [unstack(tree, i) for i in range(size)],
                              out_shardings=programs.replicated)

    def states(self) -> list:
        return self._split(self.state)

    def acting(self, prior_params: list) -> list[dict[str, Any]]:
        actors = self._split({"actor": self.state.actor_params,
                              "critic": self.state.critic_params})
        return [{**part, **({} if prior is None else {"prior": prior})}
                for part, prior in zip(actors, prior_params)]

    def update(self, batches: list[dict[str, np.ndarray]]) -> list[Mapping]:
        stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
        self.state, metrics = self.programs.update(
            self.state, jax.device_put(stacked, self.programs.batch_sharding))
        shared = _HostMetrics(metrics)
        return [_AgentMetrics(shared, i) for i in range(self.size)]


class _HostMetrics:
    """One update's stacked metrics, copied to the host once, when the first run logs."""

    def __init__(self, metrics: dict[str, jax.Array]):
        self.device, self._host = metrics, None

    def host(self) -> dict[str, np.ndarray]:
        if self._host is None:
            self._host = jax.device_get(self.device)
        return self._host


class _AgentMetrics(Mapping):
    """Run ``index``'s row of one update's stacked metrics (nothing copied per update)."""

    def __init__(self, shared: _HostMetrics, index: int):
        self._shared, self._index = shared, index

    def __getitem__(self, name):
        return self._shared.host()[name][self._index]

    def __iter__(self):
        return iter(self._shared.device)

    def __len__(self):
        return len(self._shared.device)


def train_together(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
                   over: str = "vmap") -> list[Result]:
    """Trains (or resumes, or finds finished) the runs in ``workdirs`` with one learner
    (module docstring); their ``Result``s in order. ``over``: ``"vmap"`` or ``"map"``."""
    if over not in OVER:
        raise ValueError(f"over={over!r}; expected one of {OVER}")
    check_together(configs, workdirs)
    config = configs[0]
    mesh = parallel.make_mesh(config.num_devices or None)
    parallel.check_batch_size(config.batch_size, mesh)
    resume = _resume_steps(workdirs, config.total_env_steps)
    with contextlib.ExitStack() as exits:
        runs = [open_run(c, w, mesh, exits, at) for c, w, at in zip(configs, workdirs, resume)]
        active = [i for i, run in enumerate(runs) if isinstance(run, OpenRun)]
        if active:
            loops = [runs[i].loop for i in active]
            for i, loop in zip(active, loops):
                loop.label = f"{workdirs[i]}: "
            if len(active) == 1:
                results = drive(loops, OneLearner(loops[0].programs, runs[active[0]].state),
                                runs[active[0]].env_steps)
            else:
                _check_one_program(loops, [workdirs[i] for i in active])
                obs_space = loops[0].pool.single_observation_space
                programs = compile_seed_programs(
                    loops[0].agent, mesh, tuple(obs_space.shape), obs_space.dtype.name,
                    loops[0].fused, len(active), config.fast_compile, over)
                steps = {runs[i].env_steps for i in active}
                if len(steps) > 1:  # a damaged checkpoint made one run fall back further
                    raise RuntimeError(
                        f"the runs resumed from different env steps {sorted(steps)} (a damaged "
                        "checkpoint was set aside); rerun the same command to resume them all "
                        "from the older step")
                results = drive(loops, StackedLearner(programs, [runs[i].state for i in active]),
                                steps.pop())
            for i, result in zip(active, results):
                runs[i] = result
        return runs


def _check_one_program(loops: list, workdirs: list[str]) -> None:
    """ValueError unless every run's envs give the same agent and observations (runs that
    differ in ``env`` must have the same spaces to share a program)."""
    first = loops[0]
    for loop, workdir in zip(loops[1:], workdirs[1:]):
        space, first_space = loop.pool.single_observation_space, first.pool.single_observation_space
        if loop.agent != first.agent or space != first_space:
            raise ValueError(
                f"{workdir}: its env {loop.config.env!r} (observations {space}, actions of "
                f"{loop.agent.env_action_dim} dims) needs another program than {workdirs[0]}'s "
                f"{first.config.env!r} (observations {first_space}, actions of "
                f"{first.agent.env_action_dim} dims); train them separately")


def _resume_steps(workdirs: Sequence[str], total_env_steps: int) -> list[int | None]:
    """Per run, the step it may resume from at the latest: the newest checkpoint step
    every unfinished run has (0 if one of them starts fresh: it saves step 0 first); None
    for finished runs and where every run starts fresh."""
    latest = []
    for workdir in workdirs:
        path = os.path.join(workdir, checkpoint.DIRECTORY)
        steps = []
        if _has_checkpoints(path):
            found = checkpoint.Checkpoints(path, read_only=True)
            steps = found.all_steps()
            found.close()
        latest.append(max(steps) if steps else None)
    unfinished = [step for step in latest if step is None or step < total_env_steps]
    if all(step is None for step in unfinished):
        return [None] * len(workdirs)
    common = 0 if None in unfinished else min(unfinished)
    return [None if step is not None and step >= total_env_steps else common
            for step in latest]


def _has_checkpoints(path: str) -> bool:
    return os.path.isdir(path) and any(name.isdigit() for name in os.listdir(path))
