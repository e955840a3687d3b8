"""RL curves from run directories: the training-time curves and the checkpoints'
``experiments.evaluate`` summaries, tabulated and plotted."""

import json
import os

import pytest

from experiments import rl_curves
from parrot_jax import stats


def _run(root, name, evals):
    run = root / name
    (run / "eval").mkdir(parents=True)
    rows = [{"step": s, "time": 0.0, "eval/success": r, "eval/success_ci_low": 0.0,
             "eval/success_ci_high": 1.0} for s, r in ((0, 0.1), (100, 0.3))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for step, successes, episodes, deterministic, *seed in evals:
        summary = {"step": step, "successes": successes, "episodes": episodes,
                   "success_rate": successes / episodes, "deterministic": deterministic,
                   "critic_samples": 1, "success_ci95": [0.0, 1.0],
                   "seed": seed[0] if seed else 1_000_000}
        mode = "det" if deterministic else "sto"
        name = f"step_{step}_{mode}" + (f"_{seed[0]}" if seed else "")
        (run / "eval" / f"{name}.json").write_text(json.dumps(summary))
    (run / "eval" / "step_100.gif").write_bytes(b"GIF89a")  # not a summary: skipped
    return str(run)


def test_checkpoint_table_compares_the_last_checkpoint_with_the_first(tmp_path):
    a = _run(tmp_path, "a", [(0, 15, 200, False), (10_000, 20, 200, False),
                             (50_000, 36, 200, False), (0, 3, 100, True)])
    b = _run(tmp_path, "b", [])
    table = rl_curves.checkpoint_table(["seed 1", "seed 2"], [a, b])
    lines = table.splitlines()
    # the mode (one checkpoint: nothing to compare) sorts before the sampled actions
    assert lines[2] == "| seed 1 | mode | 100 | 0: 3 | - |"
    assert lines[3] == ("| seed 1 | sampled | 200 | 0: 15, 10K: 20, 50K: 36 | "
                        "2.40x, one-sided p = 0.0012 |")
    assert len(lines) == 4  # run b has no checkpoint evaluations
    c = _run(tmp_path, "c", [(0, 0, 40, False), (100, 6, 40, False)])
    assert rl_curves.checkpoint_table(["c"], [c]).splitlines()[2] == (
        "| c | sampled | 40 | 0: 0, 100: 6 | from 0, one-sided p = 0.013 |")
    assert rl_curves.checkpoint_table(["b"], [b]) == ""


def test_plot_adds_the_checkpoints_panel_and_table(tmp_path):
    a = _run(tmp_path, "a", [(0, 2, 40, False), (100, 6, 40, False)])
    out = tmp_path / "curves.png"
    markdown = rl_curves.plot([a], ["seed 0"], str(out))
    assert "| seed 0 | 100 | 0.100 | 0.300 | 0.300 | - |" in markdown
    assert "| seed 0 | sampled | 40 | 0: 2, 100: 6 | 3.00x, one-sided p = 0.13 |" in markdown
    assert (tmp_path / "curves.md").read_text() == markdown
    assert os.path.getsize(out) > 10_000


def test_evaluations_of_one_checkpoint_on_disjoint_seeds_are_pooled(tmp_path):
    a = _run(tmp_path, "a", [(0, 15, 200, False), (0, 30, 400, False, 2_000_000),
                             (50_000, 36, 200, False), (50_000, 9, 50, False, 1_000_100)])
    evals = rl_curves.load_checkpoint_evals(a)
    assert list(evals) == ["sampled"]
    step0, step50k = evals["sampled"]
    assert (step0["successes"], step0["episodes"], step0["pooled"]) == (45, 600, 2)
    assert step0["success_ci95"] == pytest.approx(list(stats.wilson_interval(45, 600)))
    # seeds 1,000,100-149 are inside the 200 from 1,000,000: only the larger is kept
    assert (step50k["successes"], step50k["episodes"]) == (36, 200) and "pooled" not in step50k
    assert rl_curves.checkpoint_table(["a"], [a]).splitlines()[2] == (
        "| a | sampled | 200-600 | 0: 45 of 600, 50K: 36 of 200 | 2.40x, one-sided p = 4.3e-05 |")


def test_load_curves_names_a_directory_without_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        rl_curves.load_curves(str(tmp_path))
