"""The sweep on a cluster through submitit: SLURM's submissions (with stand-in sbatch and
sacct commands), and the local executor end to end, a preempted job included."""

import glob
import json
import os
import re
import signal
import stat
import threading
import time

import jax
import numpy as np
import psutil
import pytest

from experiments import jobs, paper, submit
from experiments.configs import paper as paper_config
from parrot_jax.flows import train as prior_train
from parrot_jax.flows.prior import load_prior

pytestmark = pytest.mark.timeout(900)

SBATCH = """#!/bin/sh
# stand-in sbatch: numbers jobs from 101, keeps the script it was given
n=$(cat "$FAKE_SLURM/next" 2>/dev/null || echo 101)
cp "$1" "$FAKE_SLURM/job_$n.sh"
echo $((n + 1)) > "$FAKE_SLURM/next"
echo "Submitted batch job $n"
"""
SACCT = """#!/bin/sh
# stand-in sacct: the states listed in $FAKE_SLURM/states (lines "ID|STATE|")
echo "JobID|State|NodeList"
cat "$FAKE_SLURM/states" 2>/dev/null
"""


def _plan(workdir):
    config = paper_config.get_config("fig4,tiny")
    planned, _ = paper.plan(config, workdir)
    return planned


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = "#!/bin/sh\nexit 1\n"  # submitit only checks that srun exists
    for name, text in (("sbatch", SBATCH), ("sacct", SACCT), ("srun", srun)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "slurm"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    yield state
    submit.submitit.SlurmJob.watcher.clear()


def _directives(script_path):
    return dict(re.findall(r"#SBATCH --([\w-]+)(?:=(.*))?", open(script_path).read()))


def test_slurm_gets_every_job_with_its_dependencies(fake_slurm, tmp_path):
    workdir = str(tmp_path / "sweep")
    planned = _plan(workdir)
    executor = submit.make_executor("slurm", workdir, {"partition": "gpu", "time": 60})
    lines = []
    result = submit.submit_jobs(planned, workdir, executor, echo=lines.append)
    assert result.submitted == {"data/both": "101", "priors/both_24": "102",
                                "fig4/rollouts": "103"}
    first, prior, rollouts = (_directives(fake_slurm / f"job_{n}.sh") for n in (101, 102, 103))
    assert "dependency" not in first
    assert prior["dependency"] == "afterok:101" and rollouts["dependency"] == "afterok:102"
    assert prior["kill-on-invalid-dep"] == "yes" and prior["partition"] == "gpu"
    assert prior["time"] == "60" and prior["job-name"] == "priors.both_24"
    record = json.load(open(submit.submitted_path(workdir, "priors/both_24")))
    assert record["job_id"] == "102" and record["after"] == ["101"]

    # A rerun: 101 runs, 102 waits, 103 failed. Only 103 is submitted again, after 102.
    (fake_slurm / "states").write_text("101|RUNNING|\n102|PENDING|\n103|FAILED|\n")
    submit.submitit.SlurmJob.watcher.clear()
    lines = []
    again = submit.submit_jobs(planned, workdir, executor, echo=lines.append)
    assert again.queued == {"data/both": "101", "priors/both_24": "102"}
    assert again.submitted == {"fig4/rollouts": "104"}
    assert _directives(fake_slurm / "job_104.sh")["dependency"] == "afterok:102"
    assert any("job 103 ended (FAILED) without finishing" in line for line in lines)


def test_bad_backend_and_parameters_are_named(fake_slurm, tmp_path):
    with pytest.raises(ValueError, match="backend='pbs'; expected one of slurm, "
                                         "submitit_local"):
        submit.make_executor("pbs", str(tmp_path))
    with pytest.raises(ValueError, match="Unavailable parameter.*partitio"):
        submit.make_executor("slurm", str(tmp_path), {"partitio": "gpu"})


@pytest.mark.fault
def test_the_local_executor_runs_the_sweep_and_requeues_a_preempted_job(tmp_path):
    """submitit's local executor through the same path as SLURM; the prior job gets the
    preemption signal after its first checkpoint, is requeued and resumes from it."""
    workdir = str(tmp_path / "sweep")
    planned = _plan(workdir)
    executor = submit.make_executor("submitit_local", workdir)
    signalled = []

    def preempt_the_prior():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            record = submit.submitted_path(workdir, "priors/both_24")
            checkpoints = os.path.join(workdir, "priors", "both_24", "checkpoints")
            if os.path.exists(record) and os.path.isdir(checkpoints) and any(
                    name.isdigit() for name in os.listdir(checkpoints)):  # one finished
                pid = int(json.load(open(record))["job_id"])  # the local job's controller
                for task in psutil.Process(pid).children():  # SLURM signals the task
                    task.send_signal(signal.SIGUSR2)  # as it does before preempting it
                signalled.append(pid)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=preempt_the_prior, daemon=True)
    thread.start()
    lines = []
    result = submit.submit_jobs(planned, workdir, executor, poll=0.5, echo=lines.append)
    thread.join()
    assert signalled, "the prior job was not signalled"
    assert result.outcome.ok and sorted(result.outcome.ran) == sorted(j.name for j in planned)
    logs = "".join(open(p).read() for p in glob.glob(
        os.path.join(workdir, submit.FOLDER, str(signalled[0]), "*.err")))
    assert "this job is preempted" in logs and "Requeued job" in logs, logs[-2000:]
    # it resumed from its checkpoint and ended as an uninterrupted run does
    prior = next(j for j in planned if j.kind == "prior")
    reference = prior_train.train_and_evaluate(prior.config, str(tmp_path / "reference"))
    resumed = load_prior(os.path.join(workdir, prior.name)).params
    jax.tree.map(np.testing.assert_array_equal, resumed,
                 jax.tree.map(np.asarray, reference.params))
    # a rerun finds everything done
    again = submit.submit_jobs(planned, workdir, executor, poll=0.5, echo=lines.append)
    assert sorted(again.outcome.skipped) == sorted(j.name for j in planned)
