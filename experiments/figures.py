"""Paper-style figures and tables from a sweep's finished runs (``experiments.aggregate``).

Curves (Figures 5-7): a run's curve is its ``eval/success`` (evaluation success rate,
the policy's mode or sampled actions as the run's ``eval_deterministic`` says) against
env steps. One seed's curve is the mean of its runs (one
run, or one per task for Figure 7's per-kind panels), at the env steps all of them
reached; a method's curve is the mean over seeds with a band of one standard deviation
(``np.std``, ddof 0, as the paper's shaded areas), at the env steps every seed reached.
Seeds whose runs have not logged an evaluation yet are left out and the table counts the
seeds used, so aggregating a sweep still running shows its progress so far.

Checkpoints: each seed's first and last checkpoint as ``experiments.evaluate`` scored
them (``RUN/eval/*.json``, evaluations on disjoint env seeds pooled), per way of acting,
as mean ± std over the seeds evaluated and the last against the first; runs without
such evaluations are left out.

Rollouts (Figure 4): the prior (z ~ N(0, I)) beside uniform random actions, as success
and object-lifted rates, end-effector paths relative to the target object, and the GIF
grid written by the rollout job.

Outputs in ``WORKDIR/figures/``: ``FIG.png``, ``FIG.md``, ``FIG.json`` (the plotted
numbers), and ``WORKDIR/results.md`` collecting every figure.
"""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments import paper, prior_rollouts, rl_curves  # noqa: E402
from parrot_jax import io  # noqa: E402

METRIC = "eval/success"


def run_curve(run_dir: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(env steps, success)`` of one run, or None before its first evaluation."""
    try:
        curve = rl_curves.load_curves(run_dir).get(METRIC)
    except FileNotFoundError:
        return None
    if not curve:
        return None
    steps, values = zip(*curve)
    return np.asarray(steps, np.int64), np.asarray(values, np.float64)


def align(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values (len(curves), len(steps)))`` at the steps every curve has."""
    steps = curves[0][0]
    for s, _ in curves[1:]:
        steps = np.intersect1d(steps, s)
    return steps, np.stack([v[np.searchsorted(s, steps)] for s, v in curves])


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise mean at the steps every curve has."""
    steps, values = align(curves)
    return steps, values.mean(0)


def seed_statistics(workdir: str, seeds: list[list[str]]) -> dict | None:
    """Mean and std over the seeds whose runs all have evaluations; None if none has."""
    per_seed = []
    for runs in seeds:
        curves = [run_curve(os.path.join(workdir, r)) for r in runs]
        if all(c is not None for c in curves):
            per_seed.append(mean_curve(curves))
    if not per_seed:
        return None
    steps, values = align(per_seed)
    return {"steps": steps.tolist(), "mean": values.mean(0).tolist(),
            "std": values.std(0).tolist(), "seeds": len(per_seed), "of_seeds": len(seeds),
            "per_seed": values.tolist()}


def training_eval_actions(workdir: str, seeds: list[list[str]]) -> str:
    """How the runs' training-time evaluations acted: ``mode``, ``sampled``, ``mixed``, or
    ``-`` where no run has a ``config.json`` yet."""
    modes = set()
    for run in (r for runs in seeds for r in runs):
        try:
            with open(os.path.join(workdir, run, "config.json")) as f:
                modes.add("mode" if json.load(f).get("eval_deterministic", True) else "sampled")
        except FileNotFoundError:
            pass
    return modes.pop() if len(modes) == 1 else ("mixed" if modes else "-")


def final_agents(workdir: str, seeds: list[list[str]]) -> dict[str, dict]:
    """``{way of acting: {"steps", "successes", "episodes", "rates" (one per seed, at its
    last checkpoint evaluated that way), "first_steps", "first_successes",
    "first_episodes", "first_rates" (at its first), "mean", "std", "first_mean",
    "pooled", "first_pooled", "seeds", "first_seeds"}}``; a seed of several runs (one per
    task) counts when all of them were evaluated, at their mean.

    ``mean`` is the mean of the seeds' rates; ``pooled`` is sum(successes) / sum(episodes)
    over the seeds, which weighs each episode alike where seeds were scored on different
    episode counts (a seed's 600 episodes against another's 200). The ``first_*`` lists
    hold only the seeds scored at a checkpoint before their last (``first_seeds`` of
    them): a seed scored once has no start to compare with, and counting its last
    checkpoint as its first would pull the ratios toward 1. ``first_mean`` and
    ``first_pooled`` are None where no seed has one."""
    per_mode: dict[str, dict] = {}
    for runs in seeds:
        groups: dict[str, list[list[dict]]] = {}
        for run in runs:
            for mode, group in rl_curves.load_checkpoint_evals(
                    os.path.join(workdir, run)).items():
                groups.setdefault(mode, []).append(group)
        for mode, evaluated in groups.items():
            if len(evaluated) < len(runs):
                continue
            row = per_mode.setdefault(mode, {k: [] for k in (
                "steps", "successes", "episodes", "rates", "first_steps", "first_successes",
                "first_episodes", "first_rates")})
            lasts, firsts = [g[-1] for g in evaluated], [g[0] for g in evaluated]
            row["steps"].append(min(s["step"] for s in lasts))
            row["successes"].append(sum(s["successes"] for s in lasts))
            row["episodes"].append(sum(s["episodes"] for s in lasts))
            row["rates"].append(float(np.mean([s["success_rate"] for s in lasts])))
            if any(len(g) < 2 for g in evaluated):
                continue
            row["first_steps"].append(max(s["step"] for s in firsts))
            row["first_successes"].append(sum(s["successes"] for s in firsts))
            row["first_episodes"].append(sum(s["episodes"] for s in firsts))
            row["first_rates"].append(float(np.mean([s["success_rate"] for s in firsts])))
    for row in per_mode.values():
        started = bool(row["first_rates"])
        row.update(mean=float(np.mean(row["rates"])), std=float(np.std(row["rates"])),
                   first_mean=float(np.mean(row["first_rates"])) if started else None,
                   seeds=len(row["rates"]), first_seeds=len(row["first_rates"]),
                   pooled=sum(row["successes"]) / sum(row["episodes"]),
                   first_pooled=(sum(row["first_successes"]) / sum(row["first_episodes"])
                                 if started else None))
    return per_mode


def curves_figure(workdir: str, spec: dict) -> dict:
    """Every panel's curves (``seed_statistics``, ``training_eval_actions``,
    ``final_agents``), keyed like the spec."""
    return {"title": spec["title"], "panels": [
        {"title": panel["title"], "curves": [
            {"label": c["label"], "runs": c["seeds"],
             "stats": seed_statistics(workdir, c["seeds"]),
             "actions": training_eval_actions(workdir, c["seeds"]),
             "final": final_agents(workdir, c["seeds"])} for c in panel["curves"]]}
        for panel in spec["panels"]]}


def _cell(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.2f} ± {std:.2f}" if seeds > 1 else f"{mean:.2f}"


def curves_markdown(data: dict) -> str:
    lines = [f"## {data['title']}", "",
             "Evaluation success rate during training, mean ± std over seeds (actions: the "
             "policy's mode or sampled, as the runs' `eval_deterministic`).", "",
             "| panel | method | actions | seeds | env steps | first evaluation | final | best |",
             "|---|---|---|---|---|---|---|---|"]
    finals: dict[str, list[float]] = {}
    for panel in data["panels"]:
        for c in panel["curves"]:
            s, actions = c["stats"], c.get("actions", "-")
            if s is None:
                lines.append(f"| {panel['title']} | {c['label']} | {actions} | "
                             f"0 of {len(c['runs'])} | - | - | - | - |")
                continue
            mean, std, n = s["mean"], s["std"], s["seeds"]
            best = int(np.argmax(mean))
            lines.append(
                f"| {panel['title']} | {c['label']} | {actions} | {n} of {s['of_seeds']} | "
                f"{s['steps'][-1]} | {_cell(mean[0], std[0], n)} | "
                f"{_cell(mean[-1], std[-1], n)} | "
                f"{_cell(mean[best], std[best], n)} at {s['steps'][best]} |")
            finals.setdefault(c["label"], []).append(mean[-1])
    if len(data["panels"]) > 1:
        lines += ["", "Final success, mean over panels:", "",
                  "| method | panels | final |", "|---|---|---|"]
        lines += [f"| {label} | {len(v)} | {np.mean(v):.3f} |" for label, v in finals.items()]
    return "\n".join(lines + _final_agents_table(data)) + "\n"


def _final_agents_table(data: dict) -> list[str]:
    rows = []
    for panel in data["panels"]:
        for c in panel["curves"]:
            for mode, f in c.get("final", {}).items():
                seeds = ", ".join(f"{s} of {e}" for s, e in zip(f["successes"], f["episodes"]))
                ratio = (f"{f['mean'] / f['first_mean']:.2f}x" if f["first_mean"] else "-")
                pooled = f"{sum(f['successes'])} of {sum(f['episodes'])} vs "
                pooled += (f"{sum(f['first_successes'])} of {sum(f['first_episodes'])}"
                           if f["first_seeds"] else "-")
                if f["first_pooled"]:
                    pooled += f": {f['pooled'] / f['first_pooled']:.2f}x"
                first = "- (scored once)"
                if f["first_seeds"]:
                    first = f"{rl_curves.span(f['first_steps'])}: {f['first_mean']:.3f}"
                    if f["first_seeds"] < f["seeds"]:
                        first += f" ({f['first_seeds']} of {f['seeds']} seeds)"
                last = rl_curves.span(f["steps"])
                rows.append(f"| {panel['title']} | {c['label']} | {mode} | "
                            f"{f['seeds']} of {len(c['runs'])} | {first} | {last}: {seeds} | "
                            f"{_cell(f['mean'], f['std'], f['seeds'])} | {ratio} | {pooled} |")
    if not rows:
        return []
    return ["", "Checkpoints scored by `experiments.evaluate` (`RUN/eval/*.json`): each "
            "seed's first and last (a seed scored at one checkpoint counts only in the "
            "last), mean ± std over seeds; last / first of the means, and "
            "of the episodes pooled over seeds (which weighs each episode alike where seeds "
            "were scored on different episode counts).", "",
            "| panel | method | actions | seeds | first checkpoint: success | last checkpoint: "
            "successes per seed | last: success | last / first | pooled: last vs first |",
            "|---|---|---|---|---|---|---|---|---|", *rows]


def plot_curves(data: dict, out: str) -> None:
    panels = data["panels"]
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows + 0.8),
                             squeeze=False)
    colors = {}
    for ax, panel in zip(axes.flat, panels):
        for c in panel["curves"]:
            color = colors.setdefault(c["label"], f"C{len(colors)}")
            s = c["stats"]
            if s is None:
                continue
            steps, mean, std = (np.asarray(s[k]) for k in ("steps", "mean", "std"))
            ax.plot(steps, mean, color=color, marker="." if len(steps) < 3 else None)
            ax.fill_between(steps, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1),
                            color=color, alpha=0.2, linewidth=0)
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes.flat[:len(panels):columns]:
        ax.set_ylabel("success rate")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=c) for c in colors.values()]
    fig.suptitle(data["title"], fontsize=11)
    margin = 0.45 / fig.get_figheight()  # 0.45 in for the legend under the panels
    fig.tight_layout(rect=(0, margin, 1, 1))
    fig.legend(handles, list(colors), loc="lower center", ncol=min(len(colors), 5),
               frameon=False)
    _save(fig, out)


def _save(fig, out: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, out)


def rollouts_figure(workdir: str, spec: dict) -> dict | None:
    job_dir = os.path.join(workdir, spec["job"])
    path = os.path.join(job_dir, "prior_rollouts.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        summary = json.load(f)
    paths_file = os.path.join(job_dir, prior_rollouts.PATHS_FILE)
    paths = dict(np.load(paths_file)) if os.path.exists(paths_file) else {}
    return {"title": spec["title"], "job": spec["job"], "summary": summary, "paths": paths}


def rollouts_markdown(data: dict, root: str, base: str = "") -> str:
    """The table; links are relative to ``base`` (the path from the markdown file's
    directory to the sweep's workdir ``root``)."""
    tasks = data["summary"]["tasks"]
    lines = [f"## {data['title']}", "",
             "| task | success: prior | success: random | object lifted: prior | "
             "object lifted: random | episodes |", "|---|---|---|---|---|---|"]
    for t in tasks:
        p, r = t["prior"], t["random"]
        lines.append(f"| {paper.task_name(t['env_id'])} | {p['successes']} | "
                     f"{r['successes']} | {p['lifted']['successes']} | "
                     f"{r['lifted']['successes']} | {p['episodes']} |")
    total = {k: sum(t[k]["successes"] for t in tasks) for k in ("prior", "random")}
    lifted = {k: sum(t[k]["lifted"]["successes"] for t in tasks) for k in ("prior", "random")}
    trials = sum(t["prior"]["episodes"] for t in tasks)
    lines.append(f"| all | {total['prior']} | {total['random']} | {lifted['prior']} | "
                 f"{lifted['random']} | {trials} |")
    grid = os.path.join(data["job"], "gifs", "grid.gif")
    if os.path.exists(os.path.join(root, grid)):
        lines += ["", f"Rollouts, the prior left and random actions right: "
                  f"![grid]({base}{grid})"]
    return "\n".join(lines) + "\n"


def plot_rollouts(data: dict, out: str) -> None:
    """End-effector paths seen from above, relative to the target object's start (x), per
    task: random actions on top, the prior below; orange paths lifted an object."""
    tasks = data["summary"]["tasks"]
    fig, axes = plt.subplots(2, len(tasks), figsize=(2.6 * len(tasks), 5.6), squeeze=False,
                             sharex=True, sharey=True)
    for column, task in enumerate(tasks):
        env_id = task["env_id"]
        for row, policy in enumerate(("random", "prior")):
            ax = axes[row][column]
            paths = data["paths"].get(f"{env_id}/{policy}/ee_paths")
            starts = data["paths"].get(f"{env_id}/{policy}/target_starts")
            lifted = task[policy]["lifted_per_episode"]
            if paths is not None:
                rel = paths[:, :, :2] - starts[:, None, :2]
                for path, up in zip(rel, lifted):
                    ax.plot(path[:, 0], path[:, 1], color="C1" if up else "C0",
                            alpha=0.8 if up else 0.35, linewidth=0.8)
                ax.plot(rel[:, 0, 0], rel[:, 0, 1], "k.", markersize=2)
            ax.plot([0], [0], "rx", markersize=8)
            ax.set_aspect("equal")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(paper.task_name(env_id), fontsize=9)
            if column == 0:
                ax.set_ylabel(f"{policy}\ny - target y (m)")
            if row == 1:
                ax.set_xlabel("x - target x (m)")
    fig.suptitle(f"{data['title']}: end-effector paths (orange: lifted an object)",
                 fontsize=11)
    fig.tight_layout()
    _save(fig, out)


def aggregate(workdir: str, figures: list[str] | None = None) -> dict[str, str]:
    """Writes every (or the named) figure's files and ``results.md``; returns
    ``{figure: markdown}``."""
    manifest = paper.read_manifest(workdir)
    specs = manifest["figures"]
    names = figures or [f for f in paper.FIGURES if f in specs]
    unknown = [f for f in names if f not in specs]
    if unknown:
        raise ValueError(f"{workdir} has no runs for {', '.join(unknown)}; its sweeps "
                         f"defined {', '.join(specs) or 'no figures'}")
    out_dir = os.path.join(workdir, "figures")
    texts = {}
    for name in names:
        spec = specs[name]
        png = os.path.join(out_dir, f"{name}.png")
        if spec["kind"] == "rollouts":
            data = rollouts_figure(workdir, spec)
            if data is None:
                texts[name] = f"## {spec['title']}\n\nNot run yet ({spec['job']}).\n"
                continue
            plot_rollouts(data, png)
            io.write_json(os.path.join(out_dir, f"{name}.json"), data["summary"])
            text, local = (rollouts_markdown(data, workdir, base) for base in ("", "../"))
        else:
            data = curves_figure(workdir, spec)
            plot_curves(data, png)
            io.write_json(os.path.join(out_dir, f"{name}.json"), data)
            text = local = curves_markdown(data)
        io.write_text(os.path.join(out_dir, f"{name}.md"), local + f"\n![{name}]({name}.png)\n")
        texts[name] = text + f"\n![{name}](figures/{name}.png)\n"
    io.write_text(os.path.join(workdir, "results.md"), "\n".join(
        ["# Paper experiments", "",
         f"Runs in `{workdir}`; regenerate with `python -m experiments.aggregate "
         f"--workdir={workdir}`.", ""] + [texts[n] for n in names]))
    return texts
