"""experiments.export_minari: a trained agent's episodes to Minari, then IQL offline on
them through the binaries; a collected dataset to Minari; bad flags."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from parrot_jax.data import transitions
from parrot_jax.data.synthetic import write_synthetic_dataset

POINT_ENV = "tests.agents.point_env:PointReach-v0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, env):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_agent_episodes_to_minari_then_iql_offline_through_the_binaries(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "", "MINARI_DATASETS_PATH": str(tmp_path / "minari")}
    tiny = ["--config=experiments/configs/rl.py:tiny", f"--config.env={POINT_ENV}",
            "--config.network.hidden=(16,)", "--config.sac.augment_pad=0"]
    sac_dir = str(tmp_path / "sac")
    done = _run("experiments.train_rl", *tiny, "--config.agent=sac", f"--workdir={sac_dir}",
                env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = _run("experiments.export_minari", f"--run={sac_dir}", "--episodes=3", "--stochastic",
               "--dataset_id=point/sac-v0", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 episodes of" in out.stdout and "mean return" in out.stdout
    os.environ["MINARI_DATASETS_PATH"] = env["MINARI_DATASETS_PATH"]
    try:
        data = transitions.load_transitions("minari:point/sac-v0")
    finally:
        del os.environ["MINARI_DATASETS_PATH"]
    assert data.num_episodes == 3 and len(data) == 60 and data.observation_shape == (4,)
    assert data.env_ids == ("PointReach-v0",) and (data.rewards < 0).all()
    iql_dir = str(tmp_path / "iql")
    done = _run("experiments.train_rl", *tiny, "--config.agent=iql",
                "--config.offline.dataset=minari:point/sac-v0", "--config.offline.steps=20",
                "--config.offline.mix=0.25", f"--workdir={iql_dir}", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(os.path.join(iql_dir, "config.json")) as f:
        assert json.load(f)["offline_data"]["source"] == "minari:point/sac-v0"
    evaluated = _run("experiments.evaluate", f"--workdir={iql_dir}", "--episodes=2", env=env)
    assert evaluated.returncode == 0 and "iql on" in evaluated.stdout
    again = _run("experiments.export_minari", f"--run={sac_dir}", "--episodes=1",
                 "--dataset_id=point/sac-v0", env=env)
    assert again.returncode == 2 and "exists; delete it first" in again.stderr


def test_a_collected_dataset_and_bad_flags(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "", "MINARI_DATASETS_PATH": str(tmp_path / "minari")}
    write_synthetic_dataset(str(tmp_path / "data"), num_episodes=3, episode_length=4,
                            episodes_per_shard=3)
    out = _run("experiments.export_minari", f"--dataset={tmp_path / 'data'}",
               "--dataset_id=synthetic/x-v0", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 episodes of" in out.stdout and "12 steps" in out.stdout
    assert os.path.isdir(tmp_path / "minari" / "synthetic" / "x-v0")
    for args, message in (([], "pass exactly one of --dataset=DIR"),
                          ([f"--dataset={tmp_path / 'none'}"], "no such dataset directory"),
                          ([f"--run={tmp_path}"], "no RL run here")):
        bad = _run("experiments.export_minari", "--dataset_id=a/b-v0", *args, env=env)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr[-1000:]
    assert np.all([not os.path.exists(tmp_path / "minari" / "a")])


def test_a_run_acting_in_plans_is_refused(tmp_path):
    from parrot_jax.agents.evaluate import agent_episodes

    with open(tmp_path / "config.json", "w") as f:
        json.dump({"agent": "trajrl", "env": "parrot/PickUpCan-v0", "spaces": {},
                   "action_horizon": 25}, f)
    with pytest.raises(ValueError, match="agent 'trajrl' acts in 25-step open-loop plans"):
        agent_episodes(str(tmp_path), episodes=1, stochastic=False, seed=0)
