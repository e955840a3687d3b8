"""Runs the paper's experiments (or some of them) as a sweep of resumable jobs.

    python -m experiments.sweep --config=experiments/configs/paper.py:fig5,cpu \
        --workdir=runs/paper [--processes=2] [--only='rl/parrot/*'] [--dry_run]

Plans the jobs of the config's figures (``experiments.paper``: datasets, priors, RL runs,
prior rollouts), runs those not finished yet in dependency order (``experiments.jobs``):
as up to N child processes at once (``--processes=N``, default 1: each job in a fresh
process, its output in ``WORKDIR/logs/``), or one at a time in this process
(``--processes=0``). Then writes the figures (``experiments.aggregate``).
Rerun the same command after a kill or a failure: finished jobs are skipped and the
others resume from their last checkpoint. ``--dry_run`` lists the jobs, their state and
the total work. Exits with status 1 if a job failed. ``--together`` runs the RL jobs of
one method and task (their seeds) as one job training them with one learner program
(``agents.together``): for a GPU, which one small run leaves mostly idle.

On a cluster (``experiments.submit``): ``--backend=slurm`` submits every job not done
through submitit, each waiting for its dependencies in SLURM's queue
(``--dependency=afterok``), requeued on preemption; the sweep exits (``--wait``: follows
them). Rerun it to see their states, resubmit failed ones and aggregate when all are done::

    python -m experiments.sweep --config=experiments/configs/paper.py:fig5 \
        --workdir=/shared/runs/paper --backend=slurm \
        --slurm=partition=gpu,gpus_per_node=1,cpus_per_task=16,time=1440

``--backend=submitit_local`` runs the same path on this machine (submitit's local
executor), waiting for each job's dependencies itself.
"""

import json
import sys

from absl import app, flags
from ml_collections import config_flags

from experiments import figures, jobs, paper, submit
from experiments.common import quiet_orbax

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/paper.py",
                                          "Sweep config (experiments/configs/paper.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (created or resumed).",
                               required=True)
_PROCESSES = flags.DEFINE_integer("processes", 1, "N: up to N jobs at once, each in a child "
                                  "process (output in WORKDIR/logs/); 0: one at a time in "
                                  "this process, progress bars on the terminal.")
_ONLY = flags.DEFINE_list("only", [], "Glob patterns of job names to run (with the jobs "
                          "they need), e.g. 'rl/*/PickUpCan/*'.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "List the jobs and the total work; run none.")
_AGGREGATE = flags.DEFINE_bool("aggregate", True, "Write the figures when the jobs end.")
_BACKEND = flags.DEFINE_enum("backend", "local", ("local",) + submit.BACKENDS,
                             "local: this machine (--processes); slurm: submit to SLURM "
                             "through submitit; submitit_local: submitit's local executor.")
_SLURM = flags.DEFINE_list("slurm", [], "KEY=VALUE parameters of the submitit executor, "
                           "e.g. partition=gpu,gpus_per_node=1,time=1440 (sbatch's, for "
                           "slurm) or timeout_min=60 (submitit_local); numbers as numbers.")
_WAIT = flags.DEFINE_bool("wait", False, "slurm: follow the submitted jobs to their end, "
                          "then aggregate (default: submit and exit).")
_TOGETHER = flags.DEFINE_bool("together", False, "local backend: the RL jobs that differ "
                               "only in their seed (one method, one task) run as one job "
                               "that trains them with one learner program "
                               "(agents.together); for a GPU, where one run leaves it idle.")
_JOB = flags.DEFINE_string("job", None, "Run one job spec (jobs/NAME.json) here; used by "
                           "the sweep's child processes.")


def dry_run(workdir, planned) -> None:
    print(f"{'job':<44} {'kind':<15} {'state':<8} needs")
    for job in jobs.order(planned):
        state = "done" if jobs.is_done(workdir, job) else "to run"
        print(f"{job.name:<44} {job.kind:<15} {state:<8} {', '.join(job.deps) or '-'}")
    print("total: " + ", ".join(f"{k} {v:,}" for k, v in paper.totals(planned).items()))


def parse_parameters(items: list[str]) -> dict:
    """``["partition=gpu", "time=1440"]`` -> ``{"partition": "gpu", "time": 1440}``."""
    parameters = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise app.UsageError(f"--slurm item {item!r} is not KEY=VALUE")
        try:
            parameters[key] = json.loads(value)
        except json.JSONDecodeError:
            parameters[key] = value
    return parameters


def main(argv):
    del argv
    quiet_orbax()
    workdir = _WORKDIR.value
    if _JOB.value:
        try:
            jobs.run_spec_file(_JOB.value, workdir)
        except jobs.JobLocked as e:
            print(e, file=sys.stderr)
            sys.exit(jobs.LOCKED_EXIT_CODE)
        return
    planned, specs = paper.plan(_CONFIG.value, workdir)
    planned = jobs.select(planned, _ONLY.value)
    if _DRY_RUN.value:
        dry_run(workdir, planned)
        return
    if _TOGETHER.value and _BACKEND.value != "local":
        raise app.UsageError(f"--together runs on the local backend; got "
                             f"--backend={_BACKEND.value}")
    paper.write_manifest(workdir, _CONFIG.value, planned, specs)
    try:
        if _BACKEND.value == "local":
            outcome = jobs.run_jobs(planned, workdir, _PROCESSES.value,
                                    together=_TOGETHER.value)
        else:
            executor = submit.make_executor(_BACKEND.value, workdir,
                                            parse_parameters(_SLURM.value))
            submission = submit.submit_jobs(planned, workdir, executor, wait=_WAIT.value)
            outcome = submission.outcome
            unfinished = [n for n in {**submission.submitted, **submission.queued}
                          if n not in outcome.ran and n not in outcome.failed]
            if unfinished:  # submitted to SLURM without --wait
                print(f"{len(unfinished)} jobs queued or running (jobs/*.submitted.json); "
                      "rerun the same command to follow them, and to aggregate when they "
                      "are done")
                return
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume")
        raise SystemExit(130)
    if _AGGREGATE.value:
        figures.aggregate(workdir)
        print(f"wrote {workdir}/results.md and {workdir}/figures/")
    print(f"{len(outcome.ran)} jobs ran, {len(outcome.skipped)} were done before, "
          f"{len(outcome.failed)} failed, {len(outcome.blocked)} blocked")
    for name, error in outcome.failed.items():
        print(f"  FAILED {name}: {error}")
    if not outcome.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
