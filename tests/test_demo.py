"""The quickstart with its tiny config: every stage writes its outputs, the report holds
the measured numbers, and a rerun skips what is complete."""

import json
import os
import re
import subprocess
import sys

import pytest

from experiments.configs import demo as demo_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(workdir):
    cmd = [sys.executable, "-m", "experiments.demo",
           "--config=experiments/configs/demo.py:tiny", f"--workdir={workdir}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _seconds(stdout, stage):
    line = next(l for l in stdout.splitlines() if l.startswith(f"== {stage}: "))
    return float(line.split(": ")[1].split()[0])


def test_demo_runs_every_stage_and_resumes(tmp_path):
    first = _run(tmp_path)
    for stage in ("collect", "prior", "prior_eval", "rl", "report"):
        assert f"== {stage}: " in first
    with open(tmp_path / "data" / "metadata.json") as f:
        assert json.load(f)["num_episodes"] == demo_config.get_config("tiny").collect.num_trajectories
    assert (tmp_path / "prior" / "checkpoints").is_dir()
    rollouts = json.loads((tmp_path / "prior_eval" / "prior_rollouts.json").read_text())
    assert [t["env_id"] for t in rollouts["tasks"]] == ["parrot/PickUpCan-v0"]
    assert (tmp_path / "prior_eval" / "gifs" / "PickUpCan_prior.gif").exists()
    for agent in ("parrot", "sac"):
        assert (tmp_path / "rl" / agent / "metrics.jsonl").exists()
    assert (tmp_path / "rl_curves.png").stat().st_size > 0
    report = (tmp_path / "report.md").read_text()
    for heading in ("## Prior dataset", "## Behavioral prior", "## Prior rollouts vs random",
                    "## PARROT vs SAC on parrot/PickUpCan-v0", "## What the numbers mean"):
        assert heading in report
    assert "24 scripted trajectories" in report and "| parrot | 120 |" in report
    assert "prior_eval/gifs/PickUpCan_prior.gif" in report and "rl_curves.png" in report
    assert "![prior left, random right](prior_eval/gifs/grid.gif)" in report
    assert "| 1 grasp | prior |" in report and "| 1 grasp | random |" in report
    # the longer run the report points to is in the repository
    pointed = re.findall(r"`(docs/results/[^`]+)`", report)
    assert pointed and all(os.path.exists(os.path.join(ROOT, p)) for p in pointed), pointed

    second = _run(tmp_path)  # everything complete: nothing is redone
    assert "prior rollouts complete; skipped" in second
    assert _seconds(second, "rl") < _seconds(first, "rl")
    assert (tmp_path / "report.md").read_text().split("## Prior dataset")[1] == \
        report.split("## Prior dataset")[1]


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown demo config variant 'big'"):
        demo_config.get_config("big")
