"""The paper's experiments at their tiny scale, end to end through the binaries: every
figure's jobs run, the aggregation writes plots and tables, a rerun redoes nothing, and
child processes run jobs, report failures and resume."""

import json
import os
import subprocess
import sys

import pytest

from experiments import jobs, paper
from experiments.configs import paper as paper_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The module fixture runs every figure's tiny sweep (40 jobs: 4.7 minutes alone on 2 cores
# on 7 Dec, 6.4 beside the other pytest worker of `make test`; it took 24 beside it and
# over 30 with an RL run beside both on 2 Dec): the same limit as its subprocess.
pytestmark = pytest.mark.timeout(2700)
CONFIG = "--config=experiments/configs/paper.py:"


def _sweep(*args, ok=True):
    done = subprocess.run([sys.executable, "-m", "experiments.sweep", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=2700)
    assert (done.returncode == 0) == ok, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("paper"))
    return workdir, _sweep(CONFIG + "all,tiny", f"--workdir={workdir}", "--processes=0")


def test_every_figure_runs_and_is_plotted(tiny):
    workdir, stdout = tiny
    planned, _ = paper.plan(paper_config.get_config("all,tiny"), workdir)
    assert "40 jobs ran, 0 were done before, 0 failed, 0 blocked" in stdout
    assert all(jobs.is_done(workdir, j) for j in planned) and len(planned) == 40
    with open(os.path.join(workdir, "data", "grasp", "metadata.json")) as f:
        grasp = json.load(f)
    assert grasp["num_episodes"] == 12 and list(grasp["per_task"]) == ["parrot/GraspTrain-v0"]
    with open(os.path.join(workdir, "priors", "both_12", "config.json")) as f:
        assert json.load(f)["data"]["num_episodes"] == 12  # a prefix of data/both's 24

    with open(os.path.join(workdir, "figures", "fig5.json")) as f:
        fig5 = json.load(f)
    curves = fig5["panels"][0]["curves"]
    assert [c["label"] for c in curves] == ["PARROT", "SAC", "BC-SAC", "Prior-explore",
                                            "VAE-features", "HIRL", "TrajRL", "SPiRL"]
    for c in curves:  # TrajRL's pool step is 2 envs x a 25-step plan: evaluated at the
        # first pool step past each 60 env steps, and done at the first past 120 (SPiRL's
        # 2 x 5-step skills divide 60)
        steps = [0, 100, 150] if c["label"] == "TrajRL" else [0, 60, 120]
        assert c["stats"]["seeds"] == 2 and c["stats"]["steps"] == steps
    with open(os.path.join(workdir, "figures", "fig7.json")) as f:
        fig7 = json.load(f)
    assert [p["title"] for p in fig7["panels"]] == ["grasp test tasks (mean of 1)",
                                                    "pick-and-place test tasks (mean of 1)"]
    results = open(os.path.join(workdir, "results.md")).read()
    for heading in ("## Figure 4", "## Figure 5", "## Figure 6", "## Figure 7"):
        assert heading in results
    assert "| PickUpCan | PARROT, 12 trajectories | mode | 2 of 2 | 120 |" in results
    assert "![grid](fig4/rollouts/gifs/grid.gif)" in results
    for name in ("fig4", "fig5", "fig6", "fig7"):
        assert os.path.getsize(os.path.join(workdir, "figures", f"{name}.png")) > 10_000
    assert os.path.exists(os.path.join(workdir, "fig4", "rollouts", "paths.npz"))


def test_rerun_redoes_nothing_and_dry_run_says_done(tiny):
    workdir, _ = tiny
    again = _sweep(CONFIG + "all,tiny", f"--workdir={workdir}", "--processes=0")
    assert "40 jobs: 40 done before, 0 to run" in again
    listing = _sweep(CONFIG + "fig5,tiny", f"--workdir={workdir}", "--dry_run",
                     "--only=rl/bc_sac/*")
    lines = [l for l in listing.splitlines() if l.startswith(("data/", "rl/"))]
    assert [l.split()[0] for l in lines] == ["data/both", "rl/bc_sac/PickUpCan/seed0",
                                             "rl/bc_sac/PickUpCan/seed1"]
    assert all(" done " in l for l in lines)
    assert "rl_runs 2, rl_env_steps 240" in listing


def test_offline_figure_reuses_fig5_runs_and_is_plotted(tiny):
    workdir, _ = tiny
    stdout = _sweep(CONFIG + "offline,tiny", f"--workdir={workdir}", "--processes=0")
    # reward-labelled PickUpCan data, then IQL and AWAC x 2 seeds; PARROT and BC-SAC (and
    # the data and prior they need) are fig5's, done before
    assert "5 jobs ran, 6 were done before, 0 failed, 0 blocked" in stdout
    with open(os.path.join(workdir, "data", "labelled", "PickUpCan", "metadata.json")) as f:
        data = json.load(f)
    assert data["num_episodes"] == 6 and list(data["per_task"]) == ["parrot/PickUpCan-v0"]
    with open(os.path.join(workdir, "rl", "iql", "PickUpCan", "seed1", "offline_metrics.json")) as f:
        assert json.load(f)[-1]["update"] == 8
    with open(os.path.join(workdir, "figures", "offline.json")) as f:
        curves = json.load(f)["panels"][0]["curves"]
    assert [c["label"] for c in curves] == ["IQL", "AWAC", "PARROT", "BC-SAC"]
    assert all(c["stats"]["seeds"] == 2 for c in curves)
    results = open(os.path.join(workdir, "results.md")).read()
    assert "## Offline-to-online: IQL and AWAC on reward-labelled data" in results
    assert "## Figure 5" in results  # the earlier sweep's figures stay


@pytest.mark.fault
def test_child_processes_report_a_failure_and_resume(tmp_path):
    workdir = str(tmp_path)
    # A batch of 0 is refused by the prior's binary: the prior job fails.
    failed = _sweep(CONFIG + "fig4,tiny", f"--workdir={workdir}", "--processes=2",
                    "--config.prior.batch_size=0", ok=False)
    assert "1 jobs ran, 0 were done before, 1 failed, 1 blocked" in failed
    assert "FAILED priors/both_24: exit code 1" in failed
    log = open(os.path.join(workdir, "logs", "priors", "both_24.log")).read()
    assert "config.batch_size=0; expected a positive integer" in log
    assert "Not run yet" in open(os.path.join(workdir, "results.md")).read()

    resumed = _sweep(CONFIG + "fig4,tiny", f"--workdir={workdir}", "--processes=2")
    assert "2 jobs ran, 1 were done before, 0 failed, 0 blocked" in resumed
    assert os.path.exists(os.path.join(workdir, "logs", "fig4", "rollouts.log"))
    assert "| all | " in open(os.path.join(workdir, "figures", "fig4.md")).read()


def test_together_trains_the_seeds_of_a_method_in_one_child(tmp_path):
    workdir = str(tmp_path / "sweep")
    args = (CONFIG + "fig5,tiny", f"--workdir={workdir}", "--only=rl/sac/*", "--together",
            "--aggregate=false")
    stdout = _sweep(*args, "--processes=1")
    assert "-- started rl_together rl/sac/PickUpCan/together-seeds-0-1" in stdout
    assert "2 jobs ran, 0 were done before, 0 failed, 0 blocked" in stdout
    for seed in (0, 1):
        rows = [json.loads(l) for l in open(os.path.join(
            workdir, "rl", "sac", "PickUpCan", f"seed{seed}", "metrics.jsonl"))]
        assert [r["step"] for r in rows if "eval/success" in r] == [0, 60, 120]
    assert "2 jobs: 2 done before, 0 to run" in _sweep(*args, "--processes=0")
