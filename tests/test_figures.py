"""Aggregation: mean and standard deviation over seeds at shared env steps, per-seed means
over tasks, unfinished seeds left out and counted, the table, plots and results.md."""

import json
import os

import numpy as np
import pytest

from experiments import figures, paper
from parrot_jax import io


def _run(root, name, curve):
    """A run directory whose metrics.jsonl logs ``eval/success`` at the given steps."""
    path = os.path.join(root, name)
    os.makedirs(path)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for step, value in curve:
            f.write(json.dumps({"step": step, "eval/success": value, "train/loss": 1.0}) + "\n")
    return name


def _manifest(root, specs):
    io.write_json(os.path.join(root, paper.MANIFEST), {"figures": specs, "jobs": {}})


@pytest.fixture
def sweep(tmp_path):
    root = str(tmp_path)
    a = [_run(root, f"rl/a/T/seed{s}", [(0, 0.1 * s), (10, 0.2 + 0.1 * s), (20, 0.5)])
         for s in range(3)]
    b = [_run(root, "rl/b/T/seed0", [(0, 0.0), (10, 0.4)]),  # b's seed 1 stopped at 10
         _run(root, "rl/b/T/seed1", [(0, 0.2), (10, 0.6), (20, 0.8)]),
         "rl/b/T/seed2"]  # never started
    mean_of_tasks = [[_run(root, f"rl/c/{t}/seed{s}", [(0, v), (10, 2 * v)])
                      for t, v in (("U", 0.1 + s / 10), ("V", 0.3))] for s in range(2)]
    spec = {"kind": "curves", "title": "Figure X", "panels": [
        {"title": "T", "curves": [{"label": "A", "seeds": [[r] for r in a]},
                                  {"label": "B", "seeds": [[r] for r in b]}]},
        {"title": "U and V", "curves": [{"label": "C", "seeds": mean_of_tasks},
                                        {"label": "D", "seeds": [["rl/d/none/seed0"]]}]}]}
    _manifest(root, {"fig5": spec})
    return root


def test_mean_and_std_over_seeds(sweep):
    texts = figures.aggregate(sweep)
    data = json.loads(open(os.path.join(sweep, "figures", "fig5.json")).read())
    a, b = data["panels"][0]["curves"]
    assert a["stats"]["steps"] == [0, 10, 20] and a["stats"]["seeds"] == 3
    values = np.array([[0.0, 0.2, 0.5], [0.1, 0.3, 0.5], [0.2, 0.4, 0.5]])
    np.testing.assert_allclose(a["stats"]["mean"], values.mean(0))
    np.testing.assert_allclose(a["stats"]["std"], values.std(0))  # ddof 0
    # B: seed 2 has no metrics (left out, counted); seed 0 stopped at 10: common steps only.
    assert b["stats"]["seeds"] == 2 and b["stats"]["of_seeds"] == 3
    assert b["stats"]["steps"] == [0, 10]
    np.testing.assert_allclose(b["stats"]["mean"], [0.1, 0.5])
    np.testing.assert_allclose(b["stats"]["std"], [0.1, 0.1])
    c, d = data["panels"][1]["curves"]
    # C: each seed's curve is the mean of its two tasks first.
    per_seed = np.array([[(0.1 + 0.3) / 2, (0.2 + 0.6) / 2], [(0.2 + 0.3) / 2, (0.4 + 0.6) / 2]])
    np.testing.assert_allclose(c["stats"]["per_seed"], per_seed)
    np.testing.assert_allclose(c["stats"]["mean"], per_seed.mean(0))
    assert d["stats"] is None

    table = texts["fig5"]
    assert "| T | A | - | 3 of 3 | 20 | 0.10 ± 0.08 | 0.50 ± 0.00 | 0.50 ± 0.00 at 20 |" in table
    assert "| T | B | - | 2 of 3 | 10 | 0.10 ± 0.10 | 0.50 ± 0.10 | 0.50 ± 0.10 at 10 |" in table
    assert "| U and V | D | - | 0 of 1 | - | - | - | - |" in table
    assert "Final agents" not in table  # no run was scored by experiments.evaluate
    assert "| A | 1 | 0.500 |" in table and "| C | 1 | 0.450 |" in table
    assert os.path.getsize(os.path.join(sweep, "figures", "fig5.png")) > 10_000
    local = open(os.path.join(sweep, "figures", "fig5.md")).read()
    assert "![fig5](fig5.png)" in local
    results = open(os.path.join(sweep, "results.md")).read()
    assert "![fig5](figures/fig5.png)" in results and "## Figure X" in results


def _scored(root, run, step, successes, episodes, deterministic=False, seed=1_000_000):
    """What experiments.evaluate writes for one checkpoint of a run."""
    name = f"step_{step}_{seed}{'' if deterministic else '_sampled'}.json"
    io.write_json(os.path.join(root, run, "eval", name), {
        "step": step, "successes": successes, "episodes": episodes, "seed": seed,
        "deterministic": deterministic, "success_rate": successes / episodes})


def test_final_agents_and_how_the_runs_acted(sweep):
    for s, sampled in ((0, True), (1, True), (2, False)):
        io.write_json(os.path.join(sweep, f"rl/a/T/seed{s}", "config.json"),
                      {"agent": "a", "eval_deterministic": not sampled})
    io.write_json(os.path.join(sweep, "rl/b/T/seed0", "config.json"),
                  {"agent": "b", "eval_deterministic": False})
    # A: seed 0's last checkpoint on 200 + 400 disjoint episodes (pooled), an earlier one
    # left aside; seed 1 at 40 of 200; seed 2 never scored.
    _scored(sweep, "rl/a/T/seed0", 10, 90, 200)
    _scored(sweep, "rl/a/T/seed0", 20, 20, 200)
    _scored(sweep, "rl/a/T/seed0", 20, 70, 400, seed=2_000_000)
    _scored(sweep, "rl/a/T/seed1", 20, 40, 200)
    _scored(sweep, "rl/a/T/seed1", 20, 30, 100, deterministic=True)
    # B: a start without a success gives no ratio, only the counts.
    _scored(sweep, "rl/b/T/seed1", 0, 0, 100)
    _scored(sweep, "rl/b/T/seed1", 20, 3, 100)
    # C: a seed counts only when both of its tasks were scored.
    _scored(sweep, "rl/c/U/seed0", 10, 10, 100)
    _scored(sweep, "rl/c/V/seed0", 10, 30, 100)
    _scored(sweep, "rl/c/U/seed1", 10, 50, 100)
    table = figures.aggregate(sweep)["fig5"]
    assert "| T | A | mixed | 3 of 3 |" in table and "| T | B | sampled | 2 of 3 |" in table
    data = json.loads(open(os.path.join(sweep, "figures", "fig5.json")).read())
    final = data["panels"][0]["curves"][0]["final"]
    assert final["sampled"]["successes"] == [90, 40] and final["sampled"]["episodes"] == [600, 200]
    np.testing.assert_allclose(final["sampled"]["rates"], [0.15, 0.2])
    np.testing.assert_allclose([final["sampled"]["mean"], final["sampled"]["std"]], [0.175, 0.025])
    assert final["mode"]["seeds"] == 1 and final["mode"]["rates"] == [0.3]
    # Seed 1 was scored at its last checkpoint only: it has no start, so the first
    # checkpoint's columns hold seed 0 alone rather than seed 1's last read as its first.
    np.testing.assert_allclose(final["sampled"]["first_rates"], [0.45])
    assert final["sampled"]["first_steps"] == [10] and final["sampled"]["first_seeds"] == 1
    # Pooled: 130 of 800 episodes at the last checkpoints against 90 of 200 at the first
    # (0.36x), where the mean of the rates reads 0.175 / 0.45 = 0.39x.
    assert final["sampled"]["first_successes"] == [90]
    assert final["sampled"]["first_episodes"] == [200]
    np.testing.assert_allclose([final["sampled"]["pooled"], final["sampled"]["first_pooled"]],
                               [130 / 800, 90 / 200])
    assert ("| T | A | sampled | 2 of 3 | 10: 0.450 (1 of 2 seeds) | 20: 90 of 600, 40 of 200 | "
            "0.17 ± 0.03 | 0.39x | 130 of 800 vs 90 of 200: 0.36x |") in table
    assert final["mode"]["first_mean"] is None and final["mode"]["first_pooled"] is None
    assert ("| T | A | mode | 1 of 3 | - (scored once) | 20: 30 of 100 | 0.30 | - | "
            "30 of 100 vs - |") in table
    assert ("| T | B | sampled | 1 of 3 | 0: 0.000 | 20: 3 of 100 | 0.03 | - | "
            "3 of 100 vs 0 of 100 |") in table
    assert ("| U and V | C | sampled | 1 of 2 | - (scored once) | 10: 40 of 200 | 0.20 | - | "
            "40 of 200 vs - |") in table


def test_unknown_or_missing_figures_are_named(sweep, tmp_path_factory):
    with pytest.raises(ValueError, match="has no runs for fig6; its sweeps defined fig5"):
        figures.aggregate(sweep, ["fig6"])
    empty = str(tmp_path_factory.mktemp("empty"))
    with pytest.raises(FileNotFoundError, match="sweep.json not found"):
        figures.aggregate(empty)


def test_rollout_figure_before_its_job_ran(tmp_path):
    _manifest(str(tmp_path), {"fig4": {"kind": "rollouts", "job": "fig4/rollouts",
                                       "title": "Figure 4"}})
    texts = figures.aggregate(str(tmp_path))
    assert "Not run yet (fig4/rollouts)" in texts["fig4"]
