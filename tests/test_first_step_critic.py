"""experiments.first_step_critic through its binary: the episodes collected once and reused,
a row per training size scored on z_influence's branched first steps, bad flags."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.flows.prior_workdir import write_prior

ROOT = os.path.dirname(os.path.dirname(__file__))


def _run(module, *flags):
    return subprocess.run([sys.executable, "-m", module, *flags], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def prior_and_branches(tmp_path_factory):
    prior = write_prior(tmp_path_factory.mktemp("prior"))
    branches = str(tmp_path_factory.mktemp("branches"))
    proc = _run("experiments.z_influence", f"--prior={prior}", "--seeds=2", "--steps=0",
                "--candidates=2", "--continuations=2", "--num_envs=2", "--workers=1",
                f"--workdir={branches}")
    assert proc.returncode == 0, proc.stderr
    return prior, branches


def test_critics_per_size_scored_on_the_branches(prior_and_branches, tmp_path):
    prior, branches = prior_and_branches
    out = tmp_path / "out"
    flags = [f"--prior={prior}", f"--branches={branches}", "--held_out=4", "--steps=2",
             "--batch_size=4", "--num_envs=4", f"--workdir={out}"]
    proc = _run("experiments.first_step_critic", "--episodes=4,8", *flags)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "first_step_critic.json").read_text())
    assert [r["episodes"] for r in result["rows"]] == [4, 8]
    with np.load(out / "episodes.npz") as data:
        assert data["images"].shape == (12, 48, 48, 3) and data["z"].shape == (12, 7)
        assert data["successes"].shape == (12,)
    for row in result["rows"]:
        assert row["scenes"] == 2 and 0 <= row["choice_rate"] <= 1
    assert "| 4 (" in (out / "first_step_critic.md").read_text()
    # a rerun with fewer episodes reads them from episodes.npz instead of collecting again
    written = os.path.getmtime(out / "episodes.npz")
    proc = _run("experiments.first_step_critic", "--episodes=2", *flags)
    assert proc.returncode == 0, proc.stderr
    assert os.path.getmtime(out / "episodes.npz") == written
    assert [r["episodes"] for r in json.loads((out / "first_step_critic.json").read_text())[
        "rows"]] == [2]


@pytest.mark.parametrize("flags, message", [
    (["--episodes=1"], "--episodes='1'; expected integers >= 2"),
    (["--episodes=a"], "--episodes='a'; expected integers >= 2"),
    (["--branches=/no/such/dir"], "no z_influence.json; pass the workdir of "
                                  "experiments.z_influence"),
    (["--env=parrot/PlaceCanInPan-v0"], "branched 'parrot/PickUpCan-v0', not "
                                        "--env='parrot/PlaceCanInPan-v0'"),
])
def test_bad_flags(prior_and_branches, tmp_path, flags, message):
    prior, branches = prior_and_branches
    proc = _run("experiments.first_step_critic", f"--prior={prior}", f"--branches={branches}",
                f"--workdir={tmp_path / 'out'}", *flags)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
