"""RL curves from run directories: the training-time curves and the checkpoints'
``experiments.evaluate`` summaries, tabulated and plotted."""

import json
import os

import pytest

from experiments import rl_curves


def _run(root, name, evals):
    run = root / name
    (run / "eval").mkdir(parents=True)
    rows = [{"step": s, "time": 0.0, "eval/success": r, "eval/success_ci_low": 0.0,
             "eval/success_ci_high": 1.0} for s, r in ((0, 0.1), (100, 0.3))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for step, successes, episodes, deterministic in evals:
        summary = {"step": step, "successes": successes, "episodes": episodes,
                   "success_rate": successes / episodes, "deterministic": deterministic,
                   "critic_samples": 1, "success_ci95": [0.0, 1.0]}
        mode = "det" if deterministic else "sto"
        (run / "eval" / f"step_{step}_{mode}.json").write_text(json.dumps(summary))
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
    assert rl_curves.checkpoint_table(["b"], [b]) == ""


def test_plot_adds_the_checkpoints_panel_and_table(tmp_path):
    a = _run(tmp_path, "a", [(0, 2, 40, False), (100, 6, 40, False)])
    out = tmp_path / "curves.png"
    markdown = rl_curves.plot([a], ["seed 0"], str(out))
    assert "| seed 0 | 100 | 0.100 | 0.300 | 0.300 | - |" in markdown
    assert "| seed 0 | sampled | 40 | 0: 2, 100: 6 | 3.00x, one-sided p = 0.13 |" in markdown
    assert (tmp_path / "curves.md").read_text() == markdown
    assert os.path.getsize(out) > 10_000


def test_load_curves_names_a_directory_without_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl"):
        rl_curves.load_curves(str(tmp_path))
