"""Data collection: scripted policies on any task of the suite, kept on success (or all).

Work is cut into shards of ``trajectories_per_shard`` accepted trajectories. Shard ``k``
is a pure function of the collection settings and ``k``: its slot ``i`` runs attempts
``j = 0, 1, ...`` whose env and noise seeds come from
``SeedSequence(seed, spawn_key=(k, i, j))`` until one is accepted. The acceptance rule is
``keep``: "successes" (the prior's data: only successful trials, the default) or "all"
(every slot keeps its first attempt, success or failure, with its per-step rewards:
reward-labelled data for offline RL, its success rate the scripted policy's). Worker processes
take whole shards and write each atomically (``format.write_shard``), so killing the
collector loses only the shards in progress, and rerunning it computes exactly the
missing shards: a resumed collection holds the same data as an uninterrupted one.

The task of each slot follows the configured mix exactly within a shard (largest
remainder, ties rotating with the shard index), so a 50/50 mix of grasp and
pick-and-place gives equal numbers of accepted trajectories of each.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import queue
import signal
import socket
import time
import traceback
from typing import Callable, Mapping, Sequence

import numpy as np
import tqdm

from parrot_jax import forkserver, io, provenance
from parrot_jax.data import format as fmt
from parrot_jax.data import dataset as dataset_lib
from parrot_jax.envs import containers, manipulation, objects, rollout, scripted, tasks
from parrot_jax.envs.manipulation import ManipulationEnv

# Settings that define the data; a resumed collection must use the same ones.
DATA_FIELDS = ("seed", "env_ids", "mix", "horizon", "noise", "clip", "policy_kwargs", "perturb",
               "trajectories_per_shard", "max_attempts", "keep")
# A dataset whose settings lack a field was collected before it existed, with this value.
LEGACY = {"policy_kwargs": {}, "perturb": 0.0, "keep": "successes"}
KEEP = ("successes", "all")  # the acceptance rules


@dataclasses.dataclass(frozen=True)
class Settings:
    seed: int
    env_ids: tuple[str, ...]
    mix: tuple[float, ...]  # fraction of accepted trajectories per env id
    horizon: int
    noise: float
    clip: float
    trajectories_per_shard: int
    max_attempts: int  # attempts per trajectory slot before giving up
    # Scripted policy fields other than noise and clip (scripted.ScriptedGrasp), e.g.
    # {"approach": "over"}; empty: the defaults.
    policy_kwargs: Mapping = dataclasses.field(default_factory=dict)
    # Probability per step of executing a random translation instead of the scripted
    # action while recording the scripted action (rollout.scripted_episode): recovery data.
    perturb: float = 0.0
    keep: str = "successes"  # the acceptance rule (KEEP)

    def __post_init__(self):
        if self.keep not in KEEP:
            raise ValueError(f"keep={self.keep!r}; expected one of {KEEP}")
        unknown = [e for e in self.env_ids if e not in tasks.TASKS]
        if not self.env_ids or unknown:
            raise ValueError(f"env_ids {list(self.env_ids)}: unknown {unknown}; valid ids are "
                             f"{sorted(tasks.TASKS)}")
        if len(self.mix) != len(self.env_ids) or min(self.mix) < 0 or sum(self.mix) <= 0:
            raise ValueError(f"mix {list(self.mix)} must give a non-negative weight to each of "
                             f"the {len(self.env_ids)} env_ids, not all zero")
        for name in ("horizon", "trajectories_per_shard", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; expected >= 1")
        if not 0.0 <= self.perturb < 1.0:
            raise ValueError(f"perturb={self.perturb}; expected a probability in [0, 1)")
        for env_id in self.env_ids:  # bad policy fields fail here, not in a worker
            self.make_policy(tasks.TASKS[env_id].goal, np.random.default_rng(0))

    def policy_fields(self) -> dict:
        """The scripted policies' fields: noise, clip and ``policy_kwargs``."""
        for name in ("noise", "clip", "object_index", "place_attempted"):
            if name in self.policy_kwargs:
                raise ValueError(f"policy_kwargs sets {name!r}, which the collection sets "
                                 f"itself" + (f" (use its {name})" if name in ("noise", "clip")
                                              else ""))
        return {"noise": self.noise, "clip": self.clip, **self.policy_kwargs}

    def make_policy(self, goal: str, rng: np.random.Generator) -> scripted.ScriptedGrasp:
        return scripted.make_policy(goal, rng, **self.policy_fields())

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["env_ids"], d["mix"] = list(self.env_ids), list(self.mix)
        d["policy_kwargs"] = dict(self.policy_kwargs)
        return d


def settings_from_config(config) -> Settings:
    return Settings(seed=int(config.seed), env_ids=tuple(config.env_ids),
                    mix=tuple(float(m) for m in config.mix), horizon=int(config.horizon),
                    noise=float(config.noise), clip=float(config.clip),
                    trajectories_per_shard=int(config.trajectories_per_shard),
                    max_attempts=int(config.max_attempts),
                    policy_kwargs=parse_policy_kwargs(config.get("policy_kwargs", "")),
                    perturb=float(config.get("perturb", 0.0)),
                    keep=str(config.get("keep", "successes")))


def parse_policy_kwargs(value) -> dict:
    """``config.policy_kwargs``: a JSON object (a string, so that it can be given on the
    command line) or a mapping; empty: no fields changed."""
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"policy_kwargs={value!r} is not JSON ({e}); expected an object "
                             "such as '{\"approach\": \"over\"}'") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"policy_kwargs={value!r}; expected a JSON object of scripted "
                         "policy fields")
    return dict(value)


def plan_shards(target: int, per_shard: int, existing: Mapping[int, int]) -> list[tuple[int, int]]:
    """(index, size) of the shards still to collect to reach ``target`` trajectories.

    The plan is shards ``0, 1, ...`` of ``per_shard`` trajectories (the last one smaller).
    Finished shards (``existing``: index -> size) are kept whatever their size; gaps
    below the highest finished index are filled as planned and the rest follows it in
    chunks of ``per_shard``, which is the plan itself when the target did not change.
    """
    last = max(existing, default=-1)
    todo = [(k, min(per_shard, target - k * per_shard))
            for k in range(min(last, math.ceil(target / per_shard))) if k not in existing]
    missing = target - sum(existing.values()) - sum(n for _, n in todo)
    for k in range(last + 1, last + 1 + math.ceil(max(missing, 0) / per_shard)):
        todo.append((k, min(per_shard, missing)))
        missing -= per_shard
    return todo


def slot_tasks(index: int, size: int, mix: Sequence[float]) -> np.ndarray:
    """Task of each of the ``size`` slots of shard ``index``, following ``mix`` exactly."""
    weights = np.asarray(mix, float) / sum(mix)
    counts = np.floor(weights * size).astype(int)
    remainder = weights * size - counts
    rotation = (np.arange(len(mix)) - index) % len(mix)
    order = sorted(range(len(mix)), key=lambda t: (-remainder[t], rotation[t]))
    for t in order[:size - counts.sum()]:
        counts[t] += 1
    return np.repeat(np.arange(len(mix)), counts)


def attempt_seeds(seed: int, shard: int, slot: int, attempt: int) -> tuple[int, int]:
    """(env reset seed, policy noise seed) of one attempt."""
    env_seed, noise_seed = np.random.SeedSequence(seed, spawn_key=(shard, slot, attempt)
                                                  ).generate_state(2)
    return int(env_seed), int(noise_seed)


def collect_shard(settings: Settings, index: int, size: int, envs: dict,
                  on_episode: Callable[[bool, int], None] = lambda ok, steps: None,
                  ) -> tuple[dict, dict]:
    """Runs attempts until shard ``index`` holds ``size`` accepted trajectories.

    ``envs`` caches one env per id; ``on_episode(accepted, steps)`` is called after each
    attempt. Returns the shard's arrays and its bookkeeping for ``shard.json``.
    """
    episodes, attempts = [], {e: 0 for e in settings.env_ids}
    for slot, task in enumerate(slot_tasks(index, size, settings.mix)):
        env_id = settings.env_ids[task]
        if env_id not in envs:
            envs[env_id] = ManipulationEnv(env_id, horizon=settings.horizon)
        for attempt in range(settings.max_attempts):
            env_seed, noise_seed = attempt_seeds(settings.seed, index, slot, attempt)
            episode = rollout.scripted_episode(envs[env_id], env_seed, noise_seed=noise_seed,
                                               perturb=settings.perturb,
                                               **settings.policy_fields())
            attempts[env_id] += 1
            accepted = episode.success or settings.keep == "all"
            on_episode(accepted, len(episode.actions))
            if accepted:
                episodes.append((task, env_seed, episode))
                break
        else:
            raise RuntimeError(f"shard {index} slot {slot}: no success on {env_id} in "
                               f"{settings.max_attempts} attempts; is the scripted policy broken?")
    arrays = {
        "observations": np.concatenate([ep.frames[:-1] for _, _, ep in episodes]),
        "actions": np.concatenate([ep.actions for _, _, ep in episodes]).astype(np.float32),
        "rewards": np.concatenate([ep.rewards for _, _, ep in episodes]).astype(np.float32),
        "episode_lengths": np.asarray([len(ep.actions) for _, _, ep in episodes], np.int64),
        "episode_tasks": np.asarray([t for t, _, _ in episodes], np.int64),
        "episode_seeds": np.asarray([s for _, s, _ in episodes], np.int64),
        "final_observations": np.stack([ep.frames[-1] for _, _, ep in episodes]),
        "object_offsets": np.concatenate([ep.object_offset for _, _, ep in episodes]
                                         ).astype(np.float32),
    }
    accepted = {e: int(np.sum(arrays["episode_tasks"] == t))
                for t, e in enumerate(settings.env_ids)}
    return arrays, {"attempts": sum(attempts.values()), "attempts_per_task": attempts,
                    "episodes_per_task": accepted, "seed": settings.seed}


def check_config(config) -> Settings:
    """The collection's settings; ValueError naming the first invalid config field."""
    settings = settings_from_config(config)
    if int(config.num_trajectories) < 1:
        raise ValueError(f"config.num_trajectories={config.num_trajectories}; expected >= 1")
    if int(config.num_workers) < 0:
        raise ValueError(f"config.num_workers={config.num_workers}; expected >= 0 (0: one "
                         "per core)")
    return settings


def collect(config, workdir: str) -> dict:
    """Collects (or resumes collecting) ``config.num_trajectories`` into ``workdir``.

    Returns the final metadata. Raises ValueError if ``workdir`` holds a dataset collected
    with different settings.
    """
    settings = check_config(config)
    target = int(config.num_trajectories)
    os.makedirs(workdir, exist_ok=True)
    metadata = _initial_metadata(workdir, settings, target)
    fmt.remove_partial_shards(workdir)
    headers = {k: fmt.read_shard_json(p) for k, p in fmt.list_shards(workdir).items()}
    _write_metadata(workdir, metadata, headers, target)
    jobs = plan_shards(target, settings.trajectories_per_shard,
                       {k: h["num_episodes"] for k, h in headers.items()})
    workers = min(int(config.num_workers) or os.cpu_count() or 1, max(len(jobs), 1))
    done = sum(h["num_episodes"] for h in headers.values())
    with _Progress(target, done, enabled=bool(config.progress)) as progress:
        for index in _run(settings, workdir, jobs, workers, progress):
            headers[index] = fmt.read_shard_json(os.path.join(workdir, fmt.SHARDS,
                                                              fmt.shard_name(index)))
            _write_metadata(workdir, metadata, headers, target)
    return metadata  # written after the last shard (or above, when nothing was left)


def _initial_metadata(workdir: str, settings: Settings, target: int) -> dict:
    path = os.path.join(workdir, fmt.METADATA)
    if os.path.exists(path):
        old = dataset_lib.read_metadata(workdir)
        before, now = {**LEGACY, **old.get("collection", {})}, settings.as_dict()
        diff = {k: (before.get(k), now[k]) for k in DATA_FIELDS if before.get(k) != now[k]}
        if diff:
            raise ValueError(f"{workdir} holds a dataset collected with other settings "
                             f"(field: (existing, requested)) {diff}; use a new --workdir or "
                             "the same settings to resume")
        return old
    return {
        "format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION,
        "created": provenance.utc_now(), "host": socket.gethostname(),
        "collection": settings.as_dict(),
        "seeds": [settings.seed], "env_ids": list(settings.env_ids),
        "tasks": {e: _task_description(e) for e in settings.env_ids},
        "policy": _policy_description(settings),
        "image_shape": [48, 48, 3], "action_dim": 7,
        "versions": provenance.versions("parrot_jax", "pybullet", "numpy", "gymnasium"),
    }


def _write_metadata(workdir: str, metadata: dict, headers: Mapping[int, dict], target: int) -> dict:
    per_task = {}
    for env_id in metadata["env_ids"]:
        ok = sum(h["episodes_per_task"].get(env_id, 0) for h in headers.values())
        tried = sum(h["attempts_per_task"].get(env_id, 0) for h in headers.values())
        per_task[env_id] = {"episodes": ok, "attempts": tried,
                            "acceptance_rate": ok / tried if tried else None}
    summary = fmt.shard_summary(headers)
    metadata.update(summary, updated=provenance.utc_now(), target_trajectories=target,
                    per_task=per_task, complete=summary["num_episodes"] >= target)
    io.write_json(os.path.join(workdir, fmt.METADATA), metadata)
    return metadata


def _task_description(env_id: str) -> dict:
    spec = tasks.TASKS[env_id]
    library = objects.TRAIN_OBJECTS if spec.split == "train" else objects.TEST_OBJECTS
    boxes = containers.TRAIN_CONTAINERS if spec.split == "train" else containers.TEST_CONTAINERS
    return {"goal": spec.goal, "split": spec.split, "target": spec.target,
            "container": spec.container, "objects": [o.name for o in library],
            "containers": [c.name for c in boxes] if spec.goal == "place" else []}


def _policy_description(settings: Settings) -> dict:
    out = {}
    for goal in sorted({tasks.TASKS[e].goal for e in settings.env_ids}):
        policy = settings.make_policy(goal, np.random.default_rng(0))
        params = {f.name: getattr(policy, f.name) for f in dataclasses.fields(policy)
                  if f.name != "rng" and f.init}
        out[goal] = {"class": type(policy).__name__, **params}
    return out


class _Progress:
    """tqdm bar over accepted trajectories, with attempts, acceptance and steps/s."""

    def __init__(self, target: int, done: int, enabled: bool):
        self.bar = tqdm.tqdm(total=target, initial=done, unit="traj", disable=not enabled,
                             dynamic_ncols=True, desc="collect")
        self.attempts, self.accepted, self.steps, self.start = 0, 0, 0, time.perf_counter()

    def episode(self, accepted: bool, steps: int) -> None:
        self.attempts += 1
        self.accepted += int(accepted)
        self.steps += steps
        if accepted:
            self.bar.update(1)
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix(attempted=self.attempts, accept=f"{self.accepted / self.attempts:.0%}",
                             steps_s=f"{self.steps / elapsed:.0f}", refresh=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def _run(settings: Settings, workdir: str, jobs: list[tuple[int, int]], workers: int,
         progress: _Progress):
    """Collects ``jobs`` on ``workers`` processes (in this process if 1); yields the index
    of each shard as soon as it is on disk."""
    if workers <= 1:
        envs = {}
        try:
            for index, size in jobs:
                arrays, info = collect_shard(settings, index, size, envs, progress.episode)
                fmt.write_shard(workdir, index, arrays, list(settings.env_ids), info)
                yield index
        finally:
            for env in envs.values():
                env.close()
        return
    # The workers' imports, made once by the server; they need nothing from the main module
    ctx = forkserver.context(__name__, *manipulation.WORKER_IMPORTS, main=False)
    todo, events = ctx.Queue(), ctx.Queue()
    for job in jobs:
        todo.put(job)
    for _ in range(workers):
        todo.put(None)
    procs = [ctx.Process(target=_worker, args=(settings, workdir, todo, events, os.getpid()),
                         daemon=True, name=f"collect-{w}") for w in range(workers)]
    with forkserver.without_main():
        for p in procs:
            p.start()
    try:
        remaining = len(jobs)
        while remaining:
            try:
                event = events.get(timeout=1.0)
            except queue.Empty:
                _check_alive(procs)
                continue
            if event[0] == "episode":
                progress.episode(*event[1:])
            elif event[0] == "shard":
                remaining -= 1
                yield event[1]
            else:
                raise RuntimeError(f"collection worker failed on shard {event[1]}:\n{event[2]}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


def _check_alive(procs) -> None:
    for p in procs:
        if p.exitcode not in (None, 0):
            raise RuntimeError(f"collection worker {p.name} died with exit code {p.exitcode}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _worker(settings: Settings, workdir: str, todo, events, collector: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the collector's to handle
    envs = {}

    def on_episode(accepted: bool, steps: int) -> None:
        # The collector is gone (killed by a signal it could not clean up after): stop
        # rather than run on orphaned. Its pid, not our parent's: a forkserver worker's
        # parent is the fork server, which outlives a killed collector.
        if not _alive(collector):
            raise SystemExit(0)
        events.put(("episode", accepted, steps))

    index = None
    try:
        for index, size in iter(todo.get, None):
            arrays, info = collect_shard(settings, index, size, envs, on_episode)
            fmt.write_shard(workdir, index, arrays, list(settings.env_ids), info)
            events.put(("shard", index))
    except Exception:  # reported to the collector, which stops everything
        events.put(("error", index, traceback.format_exc()))
    finally:
        for env in envs.values():
            env.close()
