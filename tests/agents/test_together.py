"""train_together: S runs in one learner equal S single runs, resume in lockstep, and
write what single runs write."""

import os
import subprocess
import sys

import jax
import jax.flatten_util
import numpy as np
import pytest

from experiments.configs import rl
from parrot_jax import metrics
from parrot_jax.agents import together, train
from parrot_jax.agents.evaluate import evaluate_agent, load_agent

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(seed, **overrides):
    config = rl.get_config("tiny")
    config.agent = "sac"
    config.seed = seed
    config.update(overrides)
    return config


def _leaves(params):
    """``(key paths, float64 arrays)`` of the actor's and critic's parameters."""
    params = {name: params[name] for name in ("actor", "critic")}
    paths, leaves = zip(*jax.tree_util.tree_leaves_with_path(params))
    return [jax.tree_util.keystr(p) for p in paths], [np.asarray(x, np.float64) for x in leaves]


def _rows(workdir):
    return metrics.read_jsonl(os.path.join(workdir, metrics.JSONL))


@pytest.fixture(scope="module")
def singles(tmp_path_factory):
    """Seeds 0 and 1 trained one at a time: [(workdir, result)]."""
    base = tmp_path_factory.mktemp("single")
    return [(str(base / f"seed{s}"), train.train(_config(s), str(base / f"seed{s}")))
            for s in (0, 1)]


def test_two_vmapped_runs_equal_two_single_runs(singles, tmp_path):
    workdirs = [str(tmp_path / f"seed{s}") for s in (0, 1)]
    results = together.train_together([_config(0), _config(1)], workdirs)
    for (single_dir, single), result, workdir in zip(singles, results, workdirs):
        assert result.env_steps == single.env_steps == 120
        assert int(result.state.step) == int(single.state.step) == 80
        # the same updates on the same batches, summed in another order (grouped convs):
        # the runs differ by rounding, which 80 Adam steps amplify where a gradient is
        # near zero, so each tensor's difference is measured against how far training
        # moved it (measured here: at most 4% of it)
        _, initial, _ = load_agent(single_dir, step=0)
        paths, together_leaves = _leaves(result.params)
        for path, a, b, b0 in zip(paths, together_leaves, _leaves(single.params)[1],
                                  _leaves(initial)[1], strict=True):
            moved = np.linalg.norm(b - b0)
            assert moved > 0, path
            assert np.linalg.norm(a - b) <= 0.15 * moved, (path, np.linalg.norm(a - b), moved)
        rows, reference = _rows(workdir), _rows(single_dir)
        assert [r["step"] for r in rows] == [r["step"] for r in reference]
        for row, ref in zip(rows, reference):
            assert set(row) == set(ref)
            for name in ("eval/success", "train/episodes", "perf/updates",
                         "perf/replay_transitions"):
                assert row.get(name) == ref.get(name), (row["step"], name)
            if "train/critic_loss" in ref:
                np.testing.assert_allclose(row["train/critic_loss"], ref["train/critic_loss"],
                                           rtol=1e-2)
    # the seeds really differ, and each run's outputs are a single run's
    actors = [jax.flatten_util.ravel_pytree(r.params["actor"])[0] for r in results]
    assert not np.allclose(actors[0], actors[1])
    summary, _ = evaluate_agent(workdirs[1], episodes=2, num_envs=2)
    assert summary["agent"] == "sac" and summary["step"] == 120


def test_runs_resume_together_from_the_step_they_all_have(tmp_path):
    workdirs = [str(tmp_path / f"seed{s}") for s in (0, 1)]
    # seed 0 got one checkpoint further than seed 1 (as if killed between their saves)
    train.train(_config(0, total_env_steps=120), workdirs[0])
    train.train(_config(1, total_env_steps=60), workdirs[1])
    results = together.train_together([_config(s, total_env_steps=180) for s in (0, 1)],
                                      workdirs, over="map")
    assert [r.env_steps for r in results] == [180, 180]
    assert os.path.isdir(os.path.join(workdirs[0], "checkpoints", "120.ahead"))
    for workdir in workdirs:
        steps = [r["step"] for r in _rows(workdir) if "eval/success" in r]
        assert steps == [0, 60, 120, 180]  # rows after the common step were redone once
    # finished runs are found finished; one unfinished run trains alone
    again = together.train_together([_config(s, total_env_steps=180) for s in (0, 1)],
                                    workdirs)
    assert [r.env_steps for r in again] == [180, 180]
    jax.tree.map(np.testing.assert_array_equal, again[1].params, results[1].params)


def test_bad_input_is_refused_before_training(tmp_path):
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(ValueError, match=r"differs from .*a's in \['batch_size'\]"):
        together.train_together([_config(0), _config(1, batch_size=32)], dirs)
    with pytest.raises(ValueError, match="2 configs but 1 workdirs"):
        together.train_together([_config(0), _config(1)], dirs[:1])
    with pytest.raises(ValueError, match="repeat a directory"):
        together.train_together([_config(0), _config(1)], [dirs[0], dirs[0]])
    with pytest.raises(ValueError, match="over='pmap'"):
        together.train_together([_config(0)], dirs[:1], over="pmap")
    assert not os.listdir(tmp_path)
    vector = _config(1, env="tests.agents.point_env:PointReach-v0", total_env_steps=60)
    with pytest.raises(ValueError, match="needs another program than"):
        together.train_together([_config(0, total_env_steps=60), vector], dirs)


def test_the_binary_trains_seeds_together(tmp_path):
    workdir = str(tmp_path / "runs")
    done = subprocess.run(
        [sys.executable, "-m", "experiments.train_rl", "--config=experiments/configs/rl.py:tiny",
         "--config.agent=sac", "--config.total_env_steps=60", "--seeds=3,4",
         f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for seed in (3, 4):
        assert f"{workdir}/seed{seed}: 60 env steps" in done.stdout
        assert _rows(os.path.join(workdir, f"seed{seed}"))[-1]["step"] == 60
    bad = subprocess.run(
        [sys.executable, "-m", "experiments.train_rl", "--config=experiments/configs/rl.py:tiny",
         "--seeds=3,x", f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True,
        timeout=600)
    assert bad.returncode != 0 and "--seeds" in bad.stderr
