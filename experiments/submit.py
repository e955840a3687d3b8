"""Sweep jobs on a cluster, through submitit: SLURM, or submitit's local executor.

    python -m experiments.sweep --config=experiments/configs/paper.py:fig5 \
        --workdir=runs/paper --backend=slurm --slurm_partition=gpu --slurm_gpus_per_node=1

``submit_jobs`` submits every job that is not done, in dependency order, as one
submitit job each (``SweepJob``: ``jobs.run_one`` under the job's lock, as a child of the
local scheduler would run it). On SLURM each waits for its pending dependencies through
the scheduler (``--dependency=afterok:ID[:ID...]``, and ``--kill-on-invalid-dep=yes`` so
a failed dependency cancels its dependents instead of leaving them pending forever); the
sweep then exits, or with ``wait`` follows them to the end. Executors without
dependencies (submitit's local executor) get each job once its dependencies are done,
so the sweep waits for them.

Preemption and time limits: submitit signals the job, calls ``SweepJob.checkpoint``,
which asks for the same call again, and requeues it; every kind resumes from its last
checkpoint, so a preempted job loses at most one checkpoint interval.

``jobs/NAME.submitted.json`` records each submission (backend, job id, submitit folder,
spec digest). A rerun of the sweep leaves alone the jobs still queued or running,
resubmits those that ended without finishing (failed, cancelled, lost), skips the done
ones, and aggregates once everything is done.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable

import submitit

from experiments import jobs
from parrot_jax import io

FOLDER = "submitit"  # under the sweep's workdir: submitit's scripts, pickles and logs
BACKENDS = ("slurm", "submitit_local")
# SLURM states in which a job will still run (or is running): never resubmitted.
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED",
          "RESIZING", "REQUEUE_HOLD", "REQUEUE_FED", "STAGE_OUT", "SIGNALING"}


class SweepJob(submitit.helpers.Checkpointable):
    """One sweep job as a submitit callable: ``SweepJob()(workdir, spec)``.

    ``Checkpointable.checkpoint`` resubmits this same call when the scheduler preempts
    the job or its time runs out; the job resumes from its own checkpoints."""

    def __call__(self, workdir: str, spec: dict) -> float:
        return jobs.run_one(workdir, jobs.job_from_spec(spec))


def submitted_path(workdir: str, name: str) -> str:
    return os.path.join(workdir, "jobs", name + ".submitted.json")


def make_executor(backend: str, workdir: str, parameters: dict[str, Any] | None = None):
    """A submitit executor for ``backend`` with its files in ``WORKDIR/submitit``.

    ``parameters`` go to the executor's ``update_parameters``: for ``slurm``, sbatch's
    (``partition``, ``time`` in minutes, ``gpus_per_node``, ``cpus_per_task``, ``mem``,
    ``setup`` lines, ``additional_parameters``, ...); for ``submitit_local``,
    ``timeout_min`` (default a day: submitit's own is 2 minutes) and ``signal_delay_s``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; expected one of {', '.join(BACKENDS)}")
    folder = os.path.join(os.path.abspath(workdir), FOLDER, "%j")
    if backend == "slurm":
        executor = submitit.SlurmExecutor(folder=folder)
        parameters = dict(parameters or {})
        extra = {"kill_on_invalid_dep": "yes", **parameters.pop("additional_parameters", {})}
        executor.update_parameters(additional_parameters=extra, **parameters)
    else:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(**{"timeout_min": 24 * 60, **(parameters or {})})
    return executor


def _supports_dependencies(executor) -> bool:
    return isinstance(executor, submitit.SlurmExecutor)


def _job_handle(executor, record: dict):
    """A submitit job object for a recorded submission (its state, its logs)."""
    if isinstance(executor, submitit.SlurmExecutor):
        return submitit.SlurmJob(folder=record["folder"], job_id=record["job_id"])
    return submitit.LocalJob(folder=record["folder"], job_id=record["job_id"])


def _state(handle) -> str:
    try:
        return str(handle.state).upper()
    except Exception:  # noqa: BLE001 (a scheduler that forgot the job)
        return "UNKNOWN"


def _last_error(handle) -> str:
    try:
        lines = [line for line in (handle.stderr() or "").splitlines() if line.strip()]
    except Exception:  # noqa: BLE001
        lines = []
    return lines[-1] if lines else "no error output"


@dataclasses.dataclass
class Submission:
    submitted: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> job id
    queued: dict[str, str] = dataclasses.field(default_factory=dict)  # left alone, active
    outcome: jobs.Outcome = dataclasses.field(default_factory=jobs.Outcome)


def submit_jobs(planned: list[jobs.Job], workdir: str, executor, wait: bool = False,
                poll: float = 5.0, echo: Callable[[str], None] = print) -> Submission:
    """Submits the jobs not done (module docstring); with ``wait`` (always, for an
    executor without dependencies) follows them until each is done or failed."""
    jobs.check_jobs(planned)
    wait = wait or not _supports_dependencies(executor)
    result = Submission()
    outcome = result.outcome
    handles: dict[str, Any] = {}  # name -> submitit job, while it may still run
    waiting: list[jobs.Job] = []
    for job in jobs.order(planned):
        io.write_json(jobs.spec_path(workdir, job.name), job.spec())
        if jobs.is_done(workdir, job):
            outcome.skipped.append(job.name)
            continue
        record = _read_record(workdir, job.name)
        if record and record["digest"] == jobs.digest(job.spec()):
            handle = _job_handle(executor, record)
            state = _state(handle)
            if state in ACTIVE:
                result.queued[job.name] = record["job_id"]
                handles[job.name] = handle
                echo(f"{job.name}: {state.lower()} as job {record['job_id']}")
                continue
            echo(f"{job.name}: job {record['job_id']} ended ({state}) without finishing; "
                 "submitting it again")
        waiting.append(job)
    echo(f"{len(planned)} jobs: {len(outcome.skipped)} done before, {len(result.queued)} "
         f"queued or running, {len(waiting)} to submit")

    def submit_ready() -> None:
        for job in list(waiting):
            bad = [d for d in job.deps if d in outcome.failed or d in outcome.blocked]
            if bad:
                waiting.remove(job)
                outcome.blocked.append(job.name)
                echo(f"blocked {job.name}: needs {', '.join(bad)}")
                continue
            pending = [d for d in job.deps if d not in outcome.skipped and d not in outcome.ran]
            if pending and not (_supports_dependencies(executor)
                                and all(d in handles for d in pending)):
                continue  # submitted once its dependencies are done (or submitted)
            waiting.remove(job)
            handles[job.name] = _submit(executor, workdir, job,
                                        [handles[d].job_id for d in pending])
            result.submitted[job.name] = handles[job.name].job_id
            echo(f"submitted {job.name} as job {handles[job.name].job_id}"
                 + (f" (after {', '.join(pending)})" if pending else ""))

    submit_ready()
    while wait and (handles or waiting):
        for name, handle in list(handles.items()):
            job = next(j for j in planned if j.name == name)
            if jobs.is_done(workdir, job):
                del handles[name]
                outcome.ran[name] = _seconds(workdir, name)
                echo(f"done {name}")
            elif _state(handle) not in ACTIVE | {"UNKNOWN"}:
                del handles[name]
                outcome.failed[name] = (f"job {handle.job_id} ended ({_state(handle)}): "
                                        f"{_last_error(handle)}")
                echo(f"FAILED {name}: {outcome.failed[name]}")
        submit_ready()
        if waiting and not handles:  # unreachable: order() puts dependencies first
            raise RuntimeError(f"jobs {', '.join(j.name for j in waiting)} wait on jobs "
                               "that will not run")
        if handles:
            time.sleep(poll)
    return result


def _submit(executor, workdir: str, job: jobs.Job, after: list[str]):
    if _supports_dependencies(executor):
        executor.update_parameters(
            dependency=("afterok:" + ":".join(after)) if after else None,
            job_name=job.name.replace("/", "."))
    # the job imports `experiments` wherever it runs (the scheduler copies the environment)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in dict.fromkeys([jobs.ROOT, *os.environ.get("PYTHONPATH", "").split(
            os.pathsep)]) if p)
    handle = executor.submit(SweepJob(), os.path.abspath(workdir), job.spec())
    io.write_json(submitted_path(workdir, job.name), {
        "backend": "slurm" if _supports_dependencies(executor) else "submitit_local",
        "job_id": str(handle.job_id), "folder": str(handle.paths.folder),
        "digest": jobs.digest(job.spec()), "after": after})
    return handle


def _read_record(workdir: str, name: str) -> dict | None:
    try:
        with open(submitted_path(workdir, name)) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _seconds(workdir: str, name: str) -> float:
    with open(jobs.done_path(workdir, name)) as f:
        return float(json.load(f).get("seconds", 0.0))
