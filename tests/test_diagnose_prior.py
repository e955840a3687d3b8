"""The prior diagnosis: every section of the report, two priors side by side, errors."""

import json
import os
import subprocess
import sys

import pytest

from experiments import prior_diagnosis
from experiments.configs import collect as collect_config
from parrot_jax import io
from parrot_jax.data import collect
from parrot_jax.flows.prior import write_initial_prior
from tests.flows.prior_workdir import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(__file__))


@pytest.fixture(scope="module")
def priors(tmp_path_factory):
    """Two tiny identity priors, one with a dataset (collected with a policy field changed,
    which the diagnosis must use), a validation-NLL log and two checkpoints."""
    root = tmp_path_factory.mktemp("diagnose")
    data = str(root / "data")
    config = collect_config.get_config("tiny")
    config.update(num_trajectories=2, trajectories_per_shard=2, num_workers=1, progress=False,
                  policy_kwargs=json.dumps({"gain": 0.8}))
    collect.collect(config, data)
    first = write_initial_prior(str(root / "a"), TINY_MODEL, step=0)
    write_initial_prior(first, TINY_MODEL, step=10)
    saved = json.load(open(os.path.join(first, "config.json")))
    io.write_json(os.path.join(first, "config.json"), {**saved, "data": {"paths": [data]}})
    with open(os.path.join(first, "metrics.jsonl"), "w") as f:
        for step, nll in ((0, 5.9), (10, -1.5)):
            f.write(json.dumps({"step": step, "eval/nll": nll, "eval/nll_atanh": nll + 1}) + "\n")
    second = write_initial_prior(str(root / "b"), {**TINY_MODEL, "offset_head": True})
    return first, second


def test_report_has_every_section(priors, tmp_path):
    summary = prior_diagnosis.run(
        list(priors), str(tmp_path), episodes=2, num_envs=2, workers=1, nll_episodes=1,
        nll_samples=4, checkpoints="all", curve_episodes=2, gif_episodes=1,
        labels=["with_data", "bare"])
    first, second = summary["priors"]
    assert first["scripted_policy"]["policy_kwargs"] == {"gain": 0.8}  # the dataset's
    assert second["scripted_policy"]["policy_kwargs"] == {}  # no dataset: the defaults
    assert [t["env_id"] for t in first["tasks"]] == ["parrot/GraspTrain-v0",
                                                    "parrot/PickPlaceTrain-v0"]
    names = [p["policy"] for p in first["tasks"][0]["policies"]]
    assert names == ["scripted", "prior, fresh z", "prior, z = 0", "prior, z per episode",
                     "random"]
    for task in first["tasks"]:
        for p in task["policies"]:
            assert p["episodes"] == 2 and len(p["per_episode"]["success"]) == 2
            assert 0 <= p["success_rate"] <= p["any_success_rate"] <= 1
            assert set(p["phases"]) >= {"reached", "closed_near", "lifted", "grasped",
                                        "closed_away", "close_offset"}
            assert ("placed" in p["phases"]) == (task["goal"] == "place")
    fit = first["likelihood"]
    assert fit["num_states"] == 2 * 25 and len(fit["prior_kde_nll"]) == 7
    assert first["nll_curve"] == [{"step": 0, "nll": 5.9, "nll_atanh": 6.9},
                                  {"step": 10, "nll": -1.5, "nll_atanh": -0.5}]
    assert [r["step"] for r in first["checkpoint_rollouts"]] == [0, 10]
    assert first["checkpoint_rollouts"][0]["parrot/GraspTrain-v0"]["episodes"] == 2
    assert second["nll_curve"] == []
    assert fit["offset_readout"] is None  # no offset head
    readout = second["likelihood"]["offset_readout"]
    assert sum(b["states"] for b in readout.values()) == 2 * 25
    assert all(len(b["head_cm"]) == 3 for b in readout.values() if b["states"])
    text = (tmp_path / "diagnosis.md").read_text()
    for heading in ("## Priors side by side", "## with_data (step 10)", "## bare (step 0)",
                    "### Outcomes", "### Phases", "### Density against the data's floor",
                    "Gripper decisions", "Coupling log-scales", "### Validation NLL",
                    "### Rollouts at each checkpoint", "The flow's offset head on these states"):
        assert heading in text, heading
    assert json.loads((tmp_path / "diagnosis.json").read_text())["config"]["episodes"] == 2
    assert (tmp_path / "gifs" / "with_data" / "GraspTrain_prior_fresh.gif").exists()
    assert (tmp_path / "gifs" / "bare" / "PickPlaceTrain_scripted.gif").exists()


@pytest.mark.parametrize("kwargs, message", [
    (dict(labels=["a"]), r"labels \['a'\] must name each of the 2 priors"),
    (dict(latents=["sometimes"]), r"unknown latent modes \['sometimes'\]"),
    (dict(checkpoints="some"), "checkpoints='some'; expected 'latest' or 'all'"),
    (dict(episodes=0), "--episodes must be >= 1, got 0"),
    (dict(env="parrot/Nope-v0"), "unknown env id 'parrot/Nope-v0'"),
])
def test_bad_arguments_are_named(priors, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prior_diagnosis.run(list(priors), str(tmp_path / "out"), **kwargs)
    assert not os.path.exists(tmp_path / "out")


def test_binary(priors, tmp_path):
    cmd = [sys.executable, "-m", "experiments.diagnose_prior", f"--prior={priors[1]}",
           "--env=parrot/PickUpCan-v0", "--episodes=2", "--num_envs=2", "--workers=1",
           "--latents=fresh", "--nll_episodes=0", "--gif_episodes=0", f"--workdir={tmp_path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| parrot/PickUpCan-v0 | prior, fresh z |" in out.stdout
    summary = json.loads((tmp_path / "diagnosis.json").read_text())
    (task,) = summary["priors"][0]["tasks"]
    assert [p["policy"] for p in task["policies"]] == ["scripted", "prior, fresh z", "random"]
    assert summary["priors"][0]["likelihood"] is None
