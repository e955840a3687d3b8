"""The jobs of an experiment sweep, and a local scheduler that runs them in dependency order.

A job is data: ``Job(name, kind, config, deps)``. Its name is also its output directory
under the sweep's workdir (``rl/parrot/PickUpCan/seed0``), and ``kind`` picks the library
call that runs it, the same call as the kind's own binary:

- ``collect``: ``parrot_jax.data.collect.collect(config, out)`` (``experiments.collect_data``);
- ``prior``: ``parrot_jax.flows.train.train_and_evaluate(config, out)`` (``train_prior``);
- ``pretrain``: ``parrot_jax.pretrained.train.train_and_evaluate(config, out)``
  (``pretrain``: a baseline's model, e.g. VAE-features' VAE);
- ``rl``: ``parrot_jax.agents.train.train(config, out)`` (``train_rl``);
- ``prior_rollouts``: ``experiments.prior_rollouts.run`` (``evaluate_prior``).

``run_jobs`` runs them in this process one at a time (``processes=0``) or as up to
``processes`` child processes (``python -m experiments.sweep --job=SPEC``) at once. Every
kind is resumable, so a killed sweep rerun with the same command continues where it
stopped. Files under the sweep's workdir:

- ``jobs/NAME.json``: the job's spec (kind, deps, full config); a child runs exactly this;
- ``jobs/NAME.done.json``: written when the job finished (seconds, time, the spec's
  digest). A rerun skips a job whose digest matches, and runs again (resuming or
  extending its output) a job whose spec changed;
- ``jobs/NAME.lock``: held (``flock``) by the process running the job, so two sweeps
  sharing a workdir never run one job at once: the second reports it as running in
  another process, and its dependents as blocked;
- ``logs/NAME.log``: a child process's output.

A failed job does not stop the others: the jobs that need it are reported as blocked,
and the rest run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import fnmatch
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from typing import Callable

import ml_collections

from parrot_jax import io, legacy, provenance

KINDS = ("collect", "prior", "pretrain", "rl", "prior_rollouts")
TOGETHER = "rl_together"  # the kind of a group of RL runs trained together (group_seeds)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds experiments/


@dataclasses.dataclass(frozen=True)
class Job:
    name: str  # output directory relative to the sweep's workdir
    kind: str  # one of KINDS
    config: ml_collections.ConfigDict  # the kind's config (its binary's config file)
    deps: tuple[str, ...] = ()  # names of jobs whose outputs this one reads

    def spec(self) -> dict:
        """JSON-ready description; ``job_from_spec`` rebuilds the job from it."""
        return {"name": self.name, "kind": self.kind, "deps": list(self.deps),
                "config": json.loads(json.dumps(self.config.to_dict()))}


def digest(spec: dict) -> str:
    """A short hash of the spec. Config fields added since a job was recorded done, holding
    the value it ran with (``parrot_jax.legacy``), are left out, so adding them does not
    make the sweep run finished jobs again."""
    added = legacy.JOB_FIELDS.get(spec.get("kind"))
    if added and isinstance(spec.get("config"), dict):
        spec = {**spec, "config": legacy.without_added_defaults(spec["config"], added)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _tuples(value):
    """JSON lists back to the tuples the config files use (sizes, env ids, mixes)."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def job_from_spec(spec: dict) -> Job:
    return Job(spec["name"], spec["kind"], ml_collections.ConfigDict(_tuples(spec["config"])),
               tuple(spec["deps"]))


def spec_path(workdir: str, name: str) -> str:
    return os.path.join(workdir, "jobs", name + ".json")


def done_path(workdir: str, name: str) -> str:
    return os.path.join(workdir, "jobs", name + ".done.json")


def log_path(workdir: str, name: str) -> str:
    return os.path.join(workdir, "logs", name + ".log")


def is_done(workdir: str, job: Job) -> bool:
    """The job finished with exactly this spec (a changed config runs it again); a group
    of runs trained together when each of them did."""
    if job.kind == TOGETHER:
        return all(is_done(workdir, member) for member in members(job))
    try:
        with open(done_path(workdir, job.name)) as f:
            return json.load(f).get("digest") == digest(job.spec())
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def check_jobs(jobs: list[Job]) -> None:
    """ValueError for a duplicate name, an unknown kind or dependency, or a cycle."""
    names = [j.name for j in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate job names: {', '.join(duplicates)}")
    known = set(names)
    for job in jobs:
        if job.kind not in KINDS:
            raise ValueError(f"job {job.name!r} has unknown kind {job.kind!r}; expected one "
                             f"of {', '.join(KINDS)}")
        missing = [d for d in job.deps if d not in known]
        if missing:
            raise ValueError(f"job {job.name!r} depends on unknown jobs: {', '.join(missing)}")
    order(jobs)


def order(jobs: list[Job]) -> list[Job]:
    """The jobs with every job after its dependencies (stable otherwise); ValueError on a
    cycle."""
    by_name = {j.name: j for j in jobs}
    placed, out, visiting = set(), [], []

    def visit(job):
        if job.name in placed:
            return
        if job.name in visiting:
            cycle = visiting[visiting.index(job.name):] + [job.name]
            raise ValueError(f"jobs depend on each other in a cycle: {' -> '.join(cycle)}")
        visiting.append(job.name)
        for dep in job.deps:
            visit(by_name[dep])
        visiting.pop()
        placed.add(job.name)
        out.append(job)

    for job in jobs:
        visit(job)
    return out


def select(jobs: list[Job], patterns: list[str]) -> list[Job]:
    """Jobs whose names match any glob pattern, with everything they depend on."""
    if not patterns:
        return jobs
    by_name = {j.name: j for j in jobs}
    wanted = [j.name for j in jobs if any(fnmatch.fnmatchcase(j.name, p) for p in patterns)]
    if not wanted:
        raise ValueError(f"no job matches {', '.join(patterns)}; jobs: "
                         f"{', '.join(by_name)}")
    keep, stack = set(), list(wanted)
    while stack:
        name = stack.pop()
        if name not in keep:
            keep.add(name)
            stack.extend(by_name[name].deps)
    return [j for j in jobs if j.name in keep]


def group_seeds(jobs: list[Job]) -> list[Job]:
    """``jobs`` with every set of two or more RL jobs that differ only in their seed (one
    method, one task, the same dependencies) replaced by one ``TOGETHER`` job, where
    the first of them was: one process trains them with one learner (``agents.together``),
    each into its own directory with its own done marker."""
    key = lambda job: json.dumps([os.path.dirname(job.name), sorted(job.deps), {
        k: v for k, v in job.spec()["config"].items() if k != "seed"}], sort_keys=True)
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        if job.kind == "rl":
            groups.setdefault(key(job), []).append(job)
    out = []
    for job in jobs:
        group = groups.get(key(job), []) if job.kind == "rl" else []
        if len(group) < 2:
            out.append(job)
        elif job is group[0]:
            seeds = "-".join(str(m.config.seed) for m in group)
            name = f"{os.path.dirname(job.name)}/together-seeds-{seeds}"
            config = ml_collections.ConfigDict(
                {f"member{i}": m.spec() for i, m in enumerate(group)})
            out.append(Job(name, TOGETHER, config, job.deps))
    return out


def members(job: Job) -> list[Job]:
    """The jobs a job stands for: a group's runs, or the job itself."""
    if job.kind != TOGETHER:
        return [job]
    return [job_from_spec(job.config[f"member{i}"].to_dict())
            for i in range(len(job.config))]


# --- running one job ---------------------------------------------------------------------


def _collect(config, out):
    from parrot_jax.data import collect

    collect.collect(config, out)


def _prior(config, out):
    from parrot_jax.flows.train import train_and_evaluate

    train_and_evaluate(config, out)


def _pretrain(config, out):
    from parrot_jax.pretrained.train import train_and_evaluate

    train_and_evaluate(config, out)


def _rl(config, out):
    from parrot_jax.agents.train import train

    train(config, out)


def _prior_rollouts(config, out):
    from experiments import prior_rollouts

    prior_rollouts.run(config.prior, config.env, config.episodes, config.seed,
                       config.num_envs, config.workers, out, gif_episodes=config.gif_episodes)


RUNNERS: dict[str, Callable] = {"collect": _collect, "prior": _prior, "pretrain": _pretrain,
                                "rl": _rl, "prior_rollouts": _prior_rollouts}


class JobLocked(RuntimeError):
    """The job is running in another process (another sweep) right now."""


LOCKED_EXIT_CODE = 75  # a child that found its job locked (EX_TEMPFAIL)


def lock_path(workdir: str, name: str) -> str:
    return os.path.join(workdir, "jobs", name + ".lock")


@contextlib.contextmanager
def job_lock(workdir: str, name: str):
    """Holds ``jobs/NAME.lock`` (an exclusive ``flock``) while the job runs, so two sweeps
    never run one job at once; JobLocked if another process holds it. The kernel releases
    the lock when its holder dies, kill -9 included (on a shared filesystem, flock needs
    one that supports it, as NFSv4 and Lustre do)."""
    path = lock_path(workdir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise JobLocked(f"job {name} is running in another process ({holder}; lock "
                            f"{path}); rerun the sweep when it is done") from None
        try:
            f.truncate(0)
            f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_one(workdir: str, job: Job) -> float:
    """Runs (or resumes) one job here, under its lock, and marks it done; returns its
    seconds (0 if another sweep finished it meanwhile). A group's runs are each locked
    and marked done."""
    if job.kind == TOGETHER:
        return _run_together(workdir, members(job))
    with job_lock(workdir, job.name), _ctrl_c_noted() as interrupted:
        if is_done(workdir, job):
            return 0.0
        start = time.perf_counter()
        RUNNERS[job.kind](job.config, os.path.join(workdir, job.name))
        seconds = time.perf_counter() - start
        _unless_interrupted(interrupted, job.name)
        _mark_done(workdir, job, seconds)
    return seconds


@contextlib.contextmanager
def _ctrl_c_noted():
    """Yields an event set by any Ctrl-C (SIGINT) while the block runs; the signal still
    raises ``KeyboardInterrupt`` as Python's own handler does.

    Why: an exception raised inside a ``__del__`` or a callback is printed and dropped, so a
    Ctrl-C that lands there lets the job run on; the event keeps such a job from being
    marked done (the sweep's ``_stop`` waits 30 s for its children, enough to finish).
    Outside the main thread, or where SIGINT is not Python's default handler (ignored, or
    the caller's own), nothing is installed and the event stays clear.
    """
    interrupted = threading.Event()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield interrupted
        return

    def note(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _unless_interrupted(interrupted: threading.Event, name: str) -> None:
    if interrupted.is_set():  # the interrupt was swallowed below us: stop here
        raise KeyboardInterrupt(f"job {name} was interrupted; not marked done")


def _mark_done(workdir: str, job: Job, seconds: float) -> None:
    io.write_json(done_path(workdir, job.name), {
        "digest": digest(job.spec()), "seconds": seconds, "finished": provenance.utc_now()})


def _run_together(workdir: str, runs: list[Job]) -> float:
    from parrot_jax.agents.together import train_together

    with contextlib.ExitStack() as locks:
        for run in runs:
            locks.enter_context(job_lock(workdir, run.name))
        interrupted = locks.enter_context(_ctrl_c_noted())
        runs = [run for run in runs if not is_done(workdir, run)]
        if not runs:
            return 0.0
        start = time.perf_counter()
        train_together([run.config for run in runs],
                       [os.path.join(workdir, run.name) for run in runs])
        seconds = time.perf_counter() - start
        _unless_interrupted(interrupted, ", ".join(run.name for run in runs))
        for run in runs:
            _mark_done(workdir, run, seconds)
    return seconds


def run_spec_file(path: str, workdir: str) -> float:
    """A child process's work: the job in ``path`` (written by ``run_jobs``)."""
    with open(path) as f:
        return run_one(workdir, job_from_spec(json.load(f)))


# --- the scheduler -----------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    ran: dict[str, float] = dataclasses.field(default_factory=dict)  # name -> seconds
    skipped: list[str] = dataclasses.field(default_factory=list)  # already done
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> error
    blocked: list[str] = dataclasses.field(default_factory=list)  # a dependency failed

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


class _Progress:
    """Records what happened to each pending job in the outcome, with a numbered line."""

    def __init__(self, outcome: Outcome, total: int, echo):
        self.outcome, self.total, self.echo, self.count = outcome, total, echo, 0

    def _line(self, text: str) -> None:
        self.count += 1
        self.echo(f"[{self.count}/{self.total}] {text}")

    def ready(self, job: Job) -> bool:
        return all(d in self.outcome.ran or d in self.outcome.skipped for d in job.deps)

    def block_if_needed(self, job: Job) -> bool:
        """True (and the job recorded as blocked) if a dependency failed or was blocked."""
        o = self.outcome
        bad = [d for d in job.deps if d in o.failed or d in o.blocked]
        if bad:
            o.blocked.extend(m.name for m in members(job))
            self._line(f"blocked {job.name}: needs {', '.join(bad)}")
        return bool(bad)

    def done(self, job: Job, seconds: float) -> None:
        for member in members(job):
            self.outcome.ran[member.name] = seconds
        self._line(f"done {job.name} ({seconds:.0f} s)")

    def fail(self, job: Job, error: str) -> None:
        for member in members(job):
            self.outcome.failed[member.name] = error
        self._line(f"FAILED {job.name}: {error}")


def child_command(workdir: str, name: str) -> list[str]:
    return [sys.executable, "-m", "experiments.sweep", f"--job={spec_path(workdir, name)}",
            f"--workdir={workdir}"]


def _launch(workdir: str, job: Job) -> subprocess.Popen:
    log = log_path(workdir, job.name)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    with open(log, "ab") as f:
        return subprocess.Popen(child_command(workdir, job.name), stdout=f,
                                stderr=subprocess.STDOUT, env=env)


def run_jobs(jobs: list[Job], workdir: str, processes: int = 0,
             launch: Callable[[str, Job], subprocess.Popen] = _launch, poll: float = 0.5,
             echo: Callable[[str], None] = print, together: bool = False) -> Outcome:
    """Runs every job not already done, each after its dependencies.

    ``processes=0``: one at a time in this process (progress bars on the terminal);
    ``processes=N``: up to N child processes at once, output in ``logs/NAME.log``.
    ``launch(workdir, job)`` starts a child (tests replace it). ``together``: the pending
    RL jobs that differ only in their seed run as one job each (``group_seeds``).
    """
    if processes < 0:
        raise ValueError(f"processes={processes}; expected 0 (this process) or a positive "
                         "number of child processes")
    check_jobs(jobs)
    outcome, pending = Outcome(), []
    for job in order(jobs):
        io.write_json(spec_path(workdir, job.name), job.spec())
        if is_done(workdir, job):
            outcome.skipped.append(job.name)
        else:
            pending.append(job)
    if together:
        pending = group_seeds(pending)
        for job in pending:
            if job.kind == TOGETHER:
                io.write_json(spec_path(workdir, job.name), job.spec())
    echo(f"{len(jobs)} jobs: {len(outcome.skipped)} done before, {len(pending)} to run"
         + (f", up to {processes} at a time (logs in {os.path.join(workdir, 'logs')})"
            if processes else ""))
    progress = _Progress(outcome, len(pending), echo)
    if processes == 0:
        _run_here(pending, workdir, progress)
    else:
        _run_children(pending, workdir, processes, launch, poll, progress)
    return outcome


def _run_here(pending: list[Job], workdir: str, progress: _Progress) -> None:
    for job in pending:  # in dependency order
        if progress.block_if_needed(job):
            continue
        progress.echo(f"-- {job.kind} {job.name}")
        try:
            seconds = run_one(workdir, job)
        except Exception as e:  # noqa: BLE001 (one job's failure must not stop the sweep)
            progress.echo(traceback.format_exc())
            progress.fail(job, f"{type(e).__name__}: {e}")
        else:
            progress.done(job, seconds)


def _run_children(pending, workdir, processes, launch, poll, progress: _Progress) -> None:
    running: dict[str, tuple[Job, subprocess.Popen, float]] = {}
    waiting = list(pending)
    try:
        while waiting or running:
            for job in list(waiting):
                if progress.block_if_needed(job):
                    waiting.remove(job)
                elif len(running) < processes and progress.ready(job):
                    waiting.remove(job)
                    running[job.name] = (job, launch(workdir, job), time.perf_counter())
                    progress.echo(f"-- started {job.kind} {job.name}")
            if waiting and not running:  # unreachable: order() puts dependencies first
                raise RuntimeError(f"jobs {', '.join(j.name for j in waiting)} wait on jobs "
                                   "that will not run")
            for name, (job, proc, start) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                if proc.returncode == 0 and is_done(workdir, job):
                    progress.done(job, time.perf_counter() - start)
                elif proc.returncode == LOCKED_EXIT_CODE:
                    progress.fail(job, f"running in another process (lock "
                                       f"{lock_path(workdir, name)})")
                else:
                    progress.fail(job, f"exit code {proc.returncode}; see "
                                       f"{log_path(workdir, name)}")
            if running:
                time.sleep(poll)
    except KeyboardInterrupt:
        _stop([proc for _, proc, _ in running.values()])
        raise


def _stop(procs: list[subprocess.Popen]) -> None:
    """Ctrl-C: the children get SIGINT (each saves nothing half-written), then SIGKILL."""
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    deadline = time.time() + 30
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
