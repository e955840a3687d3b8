"""Turns a sweep's finished runs into the paper's plots and tables.

    python -m experiments.aggregate --workdir=runs/paper [--figures=fig5,fig6]

Reads ``WORKDIR/sweep.json`` (written by ``experiments.sweep``) and the runs' metrics;
writes ``WORKDIR/figures/FIG.{png,md,json}`` and ``WORKDIR/results.md``: success rate
against env steps, mean over seeds with a shaded standard deviation (Figures 5-7), and
prior vs random rollouts (Figure 4). Runs still going are included up to the env steps
every seed has reached.
"""

from absl import app, flags

from experiments import figures

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of experiments.sweep.",
                               required=True)
_FIGURES = flags.DEFINE_list("figures", [], "Figures to write (default: every figure the "
                             "workdir's sweeps defined).")


def main(argv):
    del argv
    texts = figures.aggregate(_WORKDIR.value, _FIGURES.value or None)
    for text in texts.values():
        print(text)
    print(f"wrote {_WORKDIR.value}/results.md and {_WORKDIR.value}/figures/")


if __name__ == "__main__":
    app.run(main)
