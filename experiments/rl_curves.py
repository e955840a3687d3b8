"""RL learning curves from run directories: load, tabulate, plot (no flags: used by
``experiments.plot_rl`` and ``experiments.demo``), the checkpoints' evaluations by
``experiments.evaluate`` (``RUN/eval/*.json``: more episodes than the training-time
evaluations, so the endpoints a report compares), and the learner's diagnostics
(``plot_diagnostics``: critic against observed returns, how far the actor moved, the
temperature)."""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from parrot_jax import io, metrics, stats  # noqa: E402


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


def eval_mode(summary: dict) -> str:
    """How an ``experiments.evaluate`` summary chose its actions."""
    if summary["deterministic"]:
        return "mode"
    samples = summary.get("critic_samples", 1)
    return "sampled" if samples == 1 else f"best of {samples} by the critic"


def load_checkpoint_evals(run: str) -> dict[str, list[dict]]:
    """``experiments.evaluate``'s summaries in ``RUN/eval/*.json``: ``{how they chose
    actions: [summary, ...] in step order}``, ``{}`` if the run has none. Evaluations of
    one checkpoint in one way on disjoint env seeds (``--seed``, ``--episodes``) are
    pooled into one (``successes`` and ``episodes`` summed, the Wilson interval of the
    pool); of overlapping ones only the largest is kept, as its episodes repeat the
    others'."""
    directory = os.path.join(run, "eval")
    if not os.path.isdir(directory):
        return {}
    groups: dict[tuple, list] = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                summary = json.load(f)
            if {"step", "successes", "episodes", "deterministic"} <= summary.keys():
                groups.setdefault((eval_mode(summary), summary["step"]), []).append(summary)
    by_mode: dict[str, list] = {}
    for mode, step in sorted(groups):
        by_mode.setdefault(mode, []).append(_pool(groups[mode, step]))
    return by_mode


def _pool(summaries: list[dict]) -> dict:
    kept: list[dict] = []
    for s in sorted(summaries, key=lambda s: -s["episodes"]):
        start = s.get("seed", 0)
        if all(start + s["episodes"] <= k.get("seed", 0) or
               k.get("seed", 0) + k["episodes"] <= start for k in kept):
            kept.append(s)
    if len(kept) == 1:
        return kept[0]
    successes, episodes = sum(k["successes"] for k in kept), sum(k["episodes"] for k in kept)
    return {**kept[0], "successes": successes, "episodes": episodes,
            "success_rate": successes / episodes,
            "success_ci95": list(stats.wilson_interval(successes, episodes)),
            "pooled": len(kept)}


def span(values) -> str:
    """``"a-b"`` from the smallest to the largest value, ``"a"`` when they are one."""
    return "-".join(map(str, dict.fromkeys((min(values), max(values)))))


def _steps(step: int) -> str:
    return f"{step // 1000}K" if step and step % 1000 == 0 else str(step)


def checkpoint_table(labels, runs) -> str:
    """One row per run and way of acting: successes at every evaluated checkpoint, and
    the last checkpoint's rate against the first's (ratio and one-sided Fisher p).
    Empty if no run has checkpoint evaluations."""
    return _checkpoint_table(labels, [load_checkpoint_evals(r) for r in runs])


def _checkpoint_table(labels, all_evals) -> str:
    lines = ["| run | actions | episodes | successes at each checkpoint | last against first |",
             "|---|---|---|---|---|"]
    for label, evals in zip(labels, all_evals):
        for mode, group in evals.items():
            episodes = sorted({s["episodes"] for s in group})
            counts = ", ".join(  # "of N" where the checkpoints' episode counts differ
                f"{_steps(s['step'])}: {s['successes']}"
                + (f" of {s['episodes']}" if len(episodes) > 1 else "") for s in group)
            first, last = group[0], group[-1]
            versus = "-"
            if len(group) > 1:
                p = stats.more_successes_p(last["successes"], last["episodes"],
                                           first["successes"], first["episodes"])
                ratio = (f"{last['success_rate'] / first['success_rate']:.2f}x"
                         if first["successes"] else "from 0")
                versus = f"{ratio}, one-sided p = {p:.2g}"
            lines.append(f"| {label} | {mode} | {span(episodes)} | {counts} | {versus} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


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


def _plot_checkpoints(ax, labels, all_evals, colours) -> None:
    markers = {"mode": "s", "sampled": "o"}
    for i, (label, evals) in enumerate(zip(labels, all_evals)):
        for mode, group in evals.items():
            steps = [s["step"] for s in group]
            rates = [s["success_rate"] for s in group]
            errors = [[r - s["success_ci95"][0] for r, s in zip(rates, group)],
                      [s["success_ci95"][1] - r for r, s in zip(rates, group)]]
            ax.errorbar(steps, rates, yerr=errors, color=colours[i % len(colours)],
                        marker=markers.get(mode, "^"), capsize=3, label=f"{label} ({mode})")
    ax.set_title("checkpoints (experiments.evaluate), 95% intervals")
    ax.legend(fontsize=7)


def plot(runs, labels, out: str) -> str:
    """Writes OUT (a panel per logged curve, every run one colour; a last panel of the
    checkpoints' ``experiments.evaluate`` results where there are any) and OUT's ``.md``
    tables; returns the markdown."""
    all_curves = [load_curves(r) for r in runs]
    panels = [("eval/success", "evaluation success rate"),
              ("eval/lifted", "evaluation: object lifted"),
              ("train/lifted", "training episodes: object lifted")]
    panels = [p for p in panels if any(p[0] in c for c in all_curves)]
    all_evals = [load_checkpoint_evals(r) for r in runs]
    checkpoints = _checkpoint_table(labels, all_evals)
    if checkpoints:
        panels.append(("checkpoints", None))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (name, title) in zip(axes[0], panels):
        if name == "checkpoints":
            _plot_checkpoints(ax, labels, all_evals, colours)
        for i, (label, curves) in enumerate(zip(labels, all_curves)):
            if name not in curves:
                continue
            steps, values = zip(*curves[name])
            colour = colours[i % len(colours)]
            ax.plot(steps, values, color=colour, label=label)
            if name == "eval/success" and "eval/success_ci_low" in curves:
                low = [v for _, v in curves["eval/success_ci_low"]]
                high = [v for _, v in curves["eval/success_ci_high"]]
                ax.fill_between(steps, low, high, color=colour, alpha=0.2)
        if title:
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
    if checkpoints:
        markdown += "\nCheckpoints evaluated by `experiments.evaluate`:\n\n" + checkpoints
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
