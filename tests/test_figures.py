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
    assert "| T | A | 3 of 3 | 20 | 0.10 ± 0.08 | 0.50 ± 0.00 | 0.50 ± 0.00 at 20 |" in table
    assert "| T | B | 2 of 3 | 10 | 0.10 ± 0.10 | 0.50 ± 0.10 | 0.50 ± 0.10 at 10 |" in table
    assert "| U and V | D | 0 of 1 | - | - | - | - |" in table
    assert "| A | 1 | 0.500 |" in table and "| C | 1 | 0.450 |" in table
    assert os.path.getsize(os.path.join(sweep, "figures", "fig5.png")) > 10_000
    local = open(os.path.join(sweep, "figures", "fig5.md")).read()
    assert "![fig5](fig5.png)" in local
    results = open(os.path.join(sweep, "results.md")).read()
    assert "![fig5](figures/fig5.png)" in results and "## Figure X" in results


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
