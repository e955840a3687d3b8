"""Plots RL runs side by side: evaluation success (with its 95% interval), and for the
suite's tasks how often the policy lifted an object, against env steps.

    python -m experiments.plot_rl --runs=runs/rl/parrot,runs/rl/sac \
        --out=runs/rl/curves.png

Reads each run's ``metrics.jsonl``; labels default to the runs' agent names. Writes the
PNG and, beside it, a markdown table (``.md``) of each run's first, best and last
evaluation. Runs with checkpoints scored by ``experiments.evaluate`` (``RUN/eval/*.json``)
get a last panel of those scores with their 95% intervals and a second table: the
successes at each checkpoint, and the last against the first (ratio, one-sided Fisher p).
Evaluations of one checkpoint on disjoint env seeds (``experiments.evaluate --seed=S
--out=RUN/eval/NAME.json``) are pooled. ``--diagnostics=PNG`` also plots the learner's
diagnostics side by side: the critic's Q(s_0, a_0) against the discounted return it
predicts, Q of rewarded and other transitions, the TD error, KL to N(0, I), how far the
policy's mean and std moved, the temperature, and evaluation (mean z) against training
(sampled z) success.
"""

import os

from absl import app, flags

from experiments.rl_curves import plot, plot_diagnostics, run_labels

_RUNS = flags.DEFINE_list("runs", None, "Run directories of experiments.train_rl.",
                          required=True)
_LABELS = flags.DEFINE_list("labels", None, "One label per run (default: agent names).")
_OUT = flags.DEFINE_string("out", None, "PNG path.", required=True)
_DIAGNOSTICS = flags.DEFINE_string("diagnostics", None, "Also write the diagnostics to this PNG.")


def main(argv):
    del argv
    labels = _LABELS.value or run_labels(_RUNS.value)
    if len(labels) != len(_RUNS.value):
        raise app.UsageError(f"{len(labels)} labels for {len(_RUNS.value)} runs")
    print(plot(_RUNS.value, labels, _OUT.value))
    print(f"wrote {_OUT.value} and {os.path.splitext(_OUT.value)[0]}.md")
    if _DIAGNOSTICS.value:
        plot_diagnostics(_RUNS.value, labels, _DIAGNOSTICS.value)
        print(f"wrote {_DIAGNOSTICS.value}")


if __name__ == "__main__":
    app.run(main)
