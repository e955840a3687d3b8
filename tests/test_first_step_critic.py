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
    proc = _run("experiments.first_step_critic", "--episodes=4,8", "--inputs=z,action", *flags)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "first_step_critic.json").read_text())
    assert [(r["input"], r["episodes"]) for r in result["rows"]] == [
        ("z", 4), ("z", 8), ("action", 4), ("action", 8)]
    with np.load(out / "episodes.npz") as data:
        assert data["images"].shape == (12, 48, 48, 3) and data["z"].shape == (12, 7)
        assert data["successes"].shape == (12,)
    for row in result["rows"]:
        assert row["scenes"] == 2 and 0 <= row["choice_rate"] <= 1
    table = (out / "first_step_critic.md").read_text()
    assert "| z | 4 (" in table and "| action | 8 (" in table
    # a rerun with fewer episodes reads them from episodes.npz instead of collecting again
    written = os.path.getmtime(out / "episodes.npz")
    proc = _run("experiments.first_step_critic", "--episodes=2", *flags)
    assert proc.returncode == 0, proc.stderr
    assert os.path.getmtime(out / "episodes.npz") == written
    assert [(r["input"], r["episodes"]) for r in json.loads(
        (out / "first_step_critic.json").read_text())["rows"]] == [("z", 2)]


def test_the_action_input_is_what_the_prior_makes_of_z(prior_and_branches):
    from experiments import first_step
    from parrot_jax.flows import evaluate
    from parrot_jax.flows.prior import load_prior

    prior = load_prior(prior_and_branches[0])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    z = rng.normal(size=(3, 7)).astype(np.float32)
    np.testing.assert_array_equal(first_step.critic_input(prior, "z")(images, z), z)
    actions = first_step.critic_input(prior, "action")(images, z)
    np.testing.assert_allclose(actions, evaluate.prior_actions(prior, images, z), atol=1e-6)
    assert actions.dtype == np.float32 and np.all(np.abs(actions) <= 1)
    assert not np.allclose(actions, z)


@pytest.mark.parametrize("flags, message", [
    (["--episodes=1"], "--episodes='1'; expected integers >= 2"),
    (["--episodes=a"], "--episodes='a'; expected integers >= 2"),
    (["--inputs=z,obs"], "--inputs='z,obs'; expected some of z, action"),
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
