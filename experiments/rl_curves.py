"""RL learning curves from run directories: load, tabulate, plot (no flags: used by
``experiments.plot_rl`` and ``experiments.demo``), and the learner's diagnostics
(``plot_diagnostics``: critic against observed returns, how far the actor moved, the
temperature)."""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from parrot_jax import io, metrics  # noqa: E402


def run_labels(runs: list[str]) -> list[str]:
    """Each run's agent name (its ``config.json``)."""
    labels = []
    for run in runs:
        with open(os.path.join(run, "config.json")) as f:
            labels.append(json.load(f)["agent"])
    return labels


def load_curves(run: str) -> dict[str, list]:
    """``{name: [(step, value), ...]}`` of a run's logged scalars, in step order."""
    rows = metrics.read_jsonl(os.path.join(run, metrics.JSONL))
    if not rows:
        raise FileNotFoundError(f"{run}: no {metrics.JSONL} (is it a train_rl workdir?)")
    curves: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: r["step"]):
        for name, value in row.items():
            if name not in ("step", "time") and value is not None:
                curves.setdefault(name, []).append((row["step"], value))
    return curves


def table(labels, all_curves) -> str:
    lines = ["| run | env steps | eval success: first | best | last | train lifted: last |",
             "|---|---|---|---|---|---|"]
    for label, curves in zip(labels, all_curves):
        success = curves.get("eval/success", [])
        lifted = curves.get("train/lifted", [])
        if not success:
            continue
        lines.append(f"| {label} | {success[-1][0]} | {success[0][1]:.3f} | "
                     f"{max(v for _, v in success):.3f} | {success[-1][1]:.3f} | "
                     + (f"{lifted[-1][1]:.3f} |" if lifted else "- |"))
    return "\n".join(lines) + "\n"


def plot(runs, labels, out: str) -> str:
    all_curves = [load_curves(r) for r in runs]
    panels = [("eval/success", "evaluation success rate"),
              ("eval/lifted", "evaluation: object lifted"),
              ("train/lifted", "training episodes: object lifted")]
    panels = [p for p in panels if any(p[0] in c for c in all_curves)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (name, title) in zip(axes[0], panels):
        for label, curves in zip(labels, all_curves):
            if name not in curves:
                continue
            steps, values = zip(*curves[name])
            (line,) = ax.plot(steps, values, label=label)
            if name == "eval/success" and "eval/success_ci_low" in curves:
                low = [v for _, v in curves["eval/success_ci_low"]]
                high = [v for _, v in curves["eval/success_ci_high"]]
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        ax.set_title(title)
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    markdown = table(labels, all_curves)
    io.write_text(os.path.splitext(out)[0] + ".md", markdown)
    return markdown


# (title, [(metric, line style), ...], log scale): every run is one colour across panels.
DIAGNOSTIC_PANELS = (
    ("eval: Q(s0, a0) (solid) vs discounted return (dashed)",
     [("eval/q_start", "-"), ("eval/discounted_return", "--")], False),
    ("eval: Q(s0, a0) of episodes that succeeded (solid) / failed (dashed)",
     [("eval/q_start_success", "-"), ("eval/q_start_failure", "--")], False),
    ("Q of rewarded (solid) / other (dashed) batch transitions",
     [("train/q_rewarded", "-"), ("train/q_unrewarded", "--")], False),
    ("TD error |Q - y|", [("train/td_error", "-")], True),
    ("KL(pi || N(0, I)): closed form (solid), the KL regulariser's estimate (dashed)",
     [("train/policy_kl", "-"), ("train/kl", "--")], False),
    ("policy: mean |mu| (solid), mean sigma (dashed)",
     [("train/policy_abs_mean", "-"), ("train/policy_std", "--")], False),
    ("temperature alpha", [("train/alpha", "-")], True),
    ("success: eval, mean z (solid) / training, sampled (dashed)",
     [("eval/success", "-"), ("train/success", "--")], False),
)


def plot_diagnostics(runs, labels, out: str) -> None:
    """The panels of ``DIAGNOSTIC_PANELS`` for every run that logged them."""
    all_curves = [load_curves(r) for r in runs]
    fig, axes = plt.subplots(2, 4, figsize=(20, 7.5))
    axes = axes.ravel()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, lines, log) in zip(axes, DIAGNOSTIC_PANELS):
        for i, (label, curves) in enumerate(zip(labels, all_curves)):
            for j, (name, style) in enumerate(lines):
                if name in curves:
                    steps, values = zip(*curves[name])
                    ax.plot(steps, values, style, color=colours[i % len(colours)],
                            label=label if j == 0 else None)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("env steps")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    for ax in axes[len(DIAGNOSTIC_PANELS):]:
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
