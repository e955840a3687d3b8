"""Where a behavioral prior loses against the scripted policies it learned from (no flags:
``experiments.diagnose_prior`` is the binary).

For each prior and task, on the same env seeds (episode ``i`` from env seed ``seed + i``):
- rollouts of the scripted policy (the data's source), the prior with a fresh
  ``z ~ N(0, I)`` every step (the paper), with ``z = 0``, with one ``z`` held per episode,
  and uniform random actions; task success and *some-object* success;
- phase-resolved outcomes (``parrot_jax.envs.phases``) for the target and for any object:
  reached, closed near, lifted, carried over the container, grasped / placed at the end,
  closed away from every object;
- on the scripted policy's states of the training tasks (where its noise-free actions are
  known): the prior's NLL per action dimension against the data's floor, the gripper's
  close/open decisions, and how often each coupling's log-scale sits at its bound
  (``parrot_jax.flows.diagnostics``);
- learning curves: the validation NLL the trainer logged, and (``checkpoints="all"``)
  fresh-z rollouts at every saved checkpoint.
Writes ``diagnosis.json``, ``diagnosis.md`` and ``gifs/<prior>/<Task>_<policy>.gif``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Sequence

import jax
import numpy as np
from absl import logging

from parrot_jax import checkpoint, io, stats
from parrot_jax.data import collect
from parrot_jax.data import dataset as dataset_lib
from parrot_jax.envs import TRAIN_ENV_IDS, phases as phases_lib, rollout, scripted, tasks
from parrot_jax.envs.manipulation import ManipulationEnv
from parrot_jax.envs.pool import EnvPool
from parrot_jax.flows import diagnostics, evaluate
from parrot_jax.flows.prior import CONFIG_FILE, load_prior
from parrot_jax.metrics import JSONL

from experiments.prior_rollouts import env_ids as parse_env_ids

LATENT_NAMES = {"fresh": "prior, fresh z", "zero": "prior, z = 0",
                "episode": "prior, z per episode"}


@dataclasses.dataclass(frozen=True)
class PolicyRun:
    """One policy on one task: per-episode task success and phases."""

    policy: str
    success: np.ndarray  # (episodes,) bool
    phases: phases_lib.Phases
    frames: tuple[np.ndarray, ...] = ()

    def summary(self, goal: str) -> dict:
        end = "placed" if goal == "place" else "grasped"
        n = len(self.success)
        counts = {"success": int(self.success.sum()),
                  "any_success": int(self.phases.any_object(end).sum()),
                  "lifted_target": int(self.phases.target("lifted").sum()),
                  "lifted_any": int(self.phases.any_object("lifted").sum())}
        out = {"policy": self.policy, "episodes": n, **counts}
        for name, k in counts.items():
            lo, hi = stats.wilson_interval(k, n)
            out[f"{name}_rate"], out[f"{name}_ci95"] = k / n, [lo, hi]
        out["phases"] = self.phases.rates()
        out["per_episode"] = {"success": self.success.astype(int).tolist(),
                              "any_success": self.phases.any_object(end).astype(int).tolist()}
        return out


@dataclasses.dataclass(frozen=True)
class ScriptedStates:
    """The scripted policy's states on a task: images, executed and noise-free actions."""

    images: np.ndarray
    actions: np.ndarray
    means: np.ndarray
    gripper_open: np.ndarray
    object_offset: np.ndarray  # (N, 3) metres to the nearest object's grasp point
    episode_lengths: np.ndarray

    def first_episodes(self, count: int) -> dict[str, np.ndarray]:
        """The arrays of the first ``count`` episodes' states."""
        steps = int(self.episode_lengths[:count].sum())
        return {f.name: getattr(self, f.name)[:steps] for f in dataclasses.fields(self)
                if f.name != "episode_lengths"}


def scripted_runs(env_id: str, episodes: int, seed: int, keep_frames: int,
                  **policy_kwargs) -> tuple[PolicyRun, ScriptedStates]:
    """The scripted policy from env seeds seed..seed+episodes-1 (noise seeds as in
    ``rollout.scripted_episode``), its outcomes and every state it visited."""
    env = ManipulationEnv(env_id)
    try:
        eps = [rollout.scripted_episode(env, seed + i, keep_frames=True, **policy_kwargs)
               for i in range(episodes)]
    finally:
        env.close()
    run = PolicyRun("scripted", np.array([e.success for e in eps]),
                    phases_lib.Phases.concatenate([e.phases for e in eps]),
                    tuple(e.frames for e in eps[:keep_frames]))
    states = ScriptedStates(np.concatenate([e.frames[:-1] for e in eps]),
                            np.concatenate([e.actions for e in eps]),
                            np.concatenate([e.means for e in eps]),
                            np.concatenate([e.gripper_open for e in eps]),
                            np.concatenate([e.object_offset for e in eps]),
                            np.array([len(e.actions) for e in eps]))
    return run, states


def latent_key(seed: int, policy: str) -> jax.Array:
    """The key of one pool policy (a latent mode, or ``"random"``): independent streams,
    the same for a mode wherever it is run (main table, checkpoint curve)."""
    names = evaluate.LATENTS + ("random",)
    return jax.random.split(jax.random.key(seed), len(names))[names.index(policy)]


def pool_run(pool: EnvPool, name: str, act_fn, episodes: int, seed: int, key,
             keep_frames: int) -> PolicyRun:
    out = evaluate.rollout_success(pool, act_fn, episodes, seed, keep_frames=keep_frames, key=key)
    return PolicyRun(name, out.successes, out.phases, out.frames)


POLICY_SETTINGS = ("noise", "clip", "policy_kwargs", "perturb")


def data_policy(prior_dir: str) -> dict:
    """The collection settings of the prior's datasets that define their scripted policy
    (``POLICY_SETTINGS``), from the first readable one (a warning if others differ); the
    defaults if none is readable (a warning says so). The diagnosis runs that policy
    unperturbed: ``perturb`` is reported, not applied."""
    with open(os.path.join(prior_dir, CONFIG_FILE)) as f:
        paths = json.load(f).get("data", {}).get("paths", [])
    found = []
    for path in paths:
        try:
            collection = dataset_lib.read_metadata(path).get("collection", {})
        except (FileNotFoundError, ValueError):
            continue
        collection = {**collect.LEGACY, **collection}
        found.append({k: collection[k] for k in POLICY_SETTINGS})
    if not found:
        logging.warning("%s: no dataset of it is readable; the diagnosis uses the default "
                        "scripted policy", prior_dir)
        defaults = scripted.ScriptedGrasp(np.random.default_rng(0))
        return {"noise": defaults.noise, "clip": defaults.clip, "policy_kwargs": {},
                "perturb": 0.0}
    if any(f != found[0] for f in found[1:]):
        logging.warning("%s: its datasets were collected with different scripted policies "
                        "%s; the diagnosis uses the first", prior_dir, found)
    return found[0]


def nll_curve(prior_dir: str) -> list[dict]:
    """[{"step", "nll", "nll_atanh"}] from the trainer's metrics.jsonl (validation NLL)."""
    path = os.path.join(prior_dir, JSONL)
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if "eval/nll" in row:
                rows.append({"step": row["step"], "nll": row["eval/nll"],
                             "nll_atanh": row.get("eval/nll_atanh")})
    return rows


def saved_steps(prior_dir: str) -> list[int]:
    manager = checkpoint.Checkpoints(os.path.join(prior_dir, checkpoint.DIRECTORY),
                                     read_only=True)
    try:
        return sorted(manager.all_steps())
    finally:
        manager.close()


def run(prior_dirs: Sequence[str], workdir: str, env: str = "train", episodes: int = 100,
        seed: int = 0, num_envs: int = 8, workers: int = 0,
        latents: Sequence[str] = evaluate.LATENTS, nll_episodes: int = 40,
        nll_samples: int = 64, checkpoints: str = "latest", curve_episodes: int = 48,
        gif_episodes: int = 4, labels: Sequence[str] | None = None) -> dict:
    """Diagnoses each prior (see the module docstring); returns the JSON it writes."""
    ids = TRAIN_ENV_IDS if env == "train" else parse_env_ids(env)
    labels = list(labels) if labels else [os.path.basename(os.path.normpath(d)) for d in prior_dirs]
    _check_args(prior_dirs, labels, latents, checkpoints,
                {"episodes": (episodes, 1), "num_envs": (num_envs, 1), "workers": (workers, 0),
                 "nll_episodes": (nll_episodes, 0), "nll_samples": (nll_samples, 2),
                 "curve_episodes": (curve_episodes, 1), "gif_episodes": (gif_episodes, 0)})
    start = time.perf_counter()
    priors = [load_prior(d) for d in prior_dirs]  # fail early on a missing prior
    settings = [data_policy(d) for d in prior_dirs]
    shared: dict[str, dict] = {}  # env_id -> {"scripted": {kwargs: (run, states)}, "random"}
    reports = []
    for prior_dir, label, prior, policy in zip(prior_dirs, labels, priors, settings):
        policy_kwargs = {"noise": policy["noise"], "clip": policy["clip"],
                         **policy["policy_kwargs"]}
        key = json.dumps(policy_kwargs, sort_keys=True)
        tasks_out = []
        states = []
        for env_id in ids:
            goal = tasks.TASKS[env_id].goal
            cache = shared.setdefault(env_id, {"scripted": {}})
            if key not in cache["scripted"]:
                cache["scripted"][key] = scripted_runs(env_id, episodes, seed, gif_episodes,
                                                       **policy_kwargs)
            scripted_run, scripted_states = cache["scripted"][key]
            runs = [scripted_run]
            with EnvPool(env_id, num_envs, workers or None) as pool:
                evaluate.check_compatible(prior, env_id, pool.single_observation_space,
                                          pool.single_action_space)
                for latent in latents:
                    runs.append(pool_run(pool, LATENT_NAMES[latent],
                                         evaluate.prior_act_fn(prior, latent), episodes, seed,
                                         latent_key(seed, latent), gif_episodes))
                if "random" not in cache:
                    cache["random"] = pool_run(pool, "random",
                                               evaluate.random_act_fn(prior.action_dim),
                                               episodes, seed, latent_key(seed, "random"),
                                               gif_episodes)
            runs.append(cache["random"])
            for r in runs:
                if r.frames:
                    name = env_id.split("/")[1].removesuffix("-v0")
                    io.write_gif(os.path.join(workdir, "gifs", label,
                                              f"{name}_{_slug(r.policy)}.gif"),
                                 io.side_by_side(r.frames))
            tasks_out.append({"env_id": env_id, "goal": goal,
                              "policies": [r.summary(goal) for r in runs]})
            if env_id in TRAIN_ENV_IDS and nll_episodes:
                states.append(scripted_states.first_episodes(nll_episodes))
            print(f"[{label}] {env_id}: " + ", ".join(
                f"{r.policy} {int(r.success.sum())}/{episodes}" for r in runs), flush=True)
        fit = None
        if states:
            merged = {k: np.concatenate([s[k] for s in states]) for k in states[0]}
            fit = diagnostics.likelihood(prior, merged["images"], merged["actions"],
                                         merged["means"], merged["gripper_open"],
                                         policy["noise"], policy["clip"], seed, nll_samples,
                                         object_distance=np.linalg.norm(
                                             merged["object_offset"], axis=-1),
                                         object_offset=merged["object_offset"]).as_dict()
        reports.append({"label": label, "workdir": os.path.abspath(prior_dir),
                        "step": prior.step, "scripted_policy": policy,
                        "tasks": tasks_out, "likelihood": fit, "nll_curve": nll_curve(prior_dir),
                        "checkpoint_rollouts": _checkpoint_curve(
                            prior_dir, prior.step, checkpoints, ids, curve_episodes, seed,
                            num_envs, workers)})
    summary = {"config": {"priors": [os.path.abspath(d) for d in prior_dirs], "labels": labels,
                          "env": env, "episodes": episodes, "seed": seed, "latents": list(latents),
                          "nll_episodes": nll_episodes, "nll_samples": nll_samples,
                          "checkpoints": checkpoints, "curve_episodes": curve_episodes},
               "seconds": time.perf_counter() - start, "priors": reports}
    io.write_json(os.path.join(workdir, "diagnosis.json"), summary)
    text = markdown(summary)
    io.write_text(os.path.join(workdir, "diagnosis.md"), text)
    return summary


def _checkpoint_curve(prior_dir, latest, checkpoints, ids, episodes, seed, num_envs,
                      workers) -> list[dict]:
    """Fresh-z rollout rates at every saved checkpoint (``checkpoints="all"``)."""
    if checkpoints != "all":
        return []
    rows = []
    for step in saved_steps(prior_dir):
        prior = load_prior(prior_dir, step)
        row = {"step": step}
        for env_id in ids:
            goal = tasks.TASKS[env_id].goal
            with EnvPool(env_id, num_envs, workers or None) as pool:
                r = pool_run(pool, "prior", evaluate.prior_act_fn(prior), episodes, seed,
                             latent_key(seed, "fresh"), 0)
            row[env_id] = {k: v for k, v in r.summary(goal).items()
                           if k.endswith("_rate") or k == "episodes"}
        rows.append(row)
    return rows


def _check_args(prior_dirs, labels, latents, checkpoints, bounds) -> None:
    if not prior_dirs:
        raise ValueError("no prior given; pass --prior=DIR[,DIR...]")
    if len(labels) != len(prior_dirs) or len(set(labels)) != len(labels):
        raise ValueError(f"labels {list(labels)} must name each of the {len(prior_dirs)} "
                         "priors once (distinct)")
    unknown = [x for x in latents if x not in evaluate.LATENTS]
    if unknown:
        raise ValueError(f"unknown latent modes {unknown}; expected some of "
                         f"{', '.join(evaluate.LATENTS)}")
    if checkpoints not in ("latest", "all"):
        raise ValueError(f"checkpoints={checkpoints!r}; expected 'latest' or 'all'")
    for name, (value, least) in bounds.items():
        if value < least:
            raise ValueError(f"--{name} must be >= {least}, got {value}")
    if bounds["nll_episodes"][0] > bounds["episodes"][0]:
        raise ValueError(f"--nll_episodes={bounds['nll_episodes'][0]} exceeds --episodes="
                         f"{bounds['episodes'][0]} (its states come from those episodes)")


def _slug(policy: str) -> str:
    return (policy.replace("prior, ", "prior_").replace("z = 0", "z0")
            .replace("fresh z", "fresh").replace("z per episode", "episode").replace(" ", "_"))


# --- the report ----------------------------------------------------------------------


def _pct(rate) -> str:
    return "" if rate is None else f"{100 * rate:.0f}%"


def markdown(summary: dict) -> str:
    cfg = summary["config"]
    lines = [f"# Prior diagnosis\n",
             f"{cfg['episodes']} episodes per task and policy, env seeds {cfg['seed']}.."
             f"{cfg['seed'] + cfg['episodes'] - 1} for every policy (the same scenes). "
             "*Task success*: the task's own condition on its target (object 0) at the last "
             "step. *Some object*: the same condition for any of the three objects (a "
             "task-agnostic prior cannot know the target). Phases: `parrot_jax/envs/phases.py` "
             f"(reached: end effector within {phases_lib.REACH * 100:.0f} cm of an object's "
             "grasp point).\n"]
    if len(summary["priors"]) > 1:
        lines += _comparison(summary)
    for report in summary["priors"]:
        lines += _prior_section(report)
    return "\n".join(lines) + "\n"


def _comparison(summary) -> list[str]:
    ids = [t["env_id"] for t in summary["priors"][0]["tasks"]]
    head = "| prior | step | val. NLL | " + " | ".join(
        f"{i.split('/')[1].removesuffix('-v0')}: task / some object / lifted" for i in ids) + " |"
    lines = ["## Priors side by side (fresh z)\n", head,
             "|---|---|---|" + "---|" * len(ids)]
    for report in summary["priors"]:
        curve = report["nll_curve"]
        nll = f"{curve[-1]['nll']:.2f}" if curve else ""
        cells = []
        for t in report["tasks"]:
            p = next((p for p in t["policies"] if p["policy"] == LATENT_NAMES["fresh"]), None)
            cells.append("" if p is None else f"{_pct(p['success_rate'])} / "
                         f"{_pct(p['any_success_rate'])} / {_pct(p['lifted_any_rate'])}")
        lines.append(f"| {report['label']} | {report['step']} | {nll} | " + " | ".join(cells) + " |")
    return lines + [""]


def _prior_section(report) -> list[str]:
    lines = [f"## {report['label']} (step {report['step']})\n",
             f"`{report['workdir']}`; its data's scripted policy (also the one measured "
             f"here): {_policy_text(report['scripted_policy'])}.\n",
             "### Outcomes\n",
             "| task | policy | task success | some object succeeds | lifted: target | "
             "lifted: some object |", "|---|---|---|---|---|---|"]
    for t in report["tasks"]:
        for p in t["policies"]:
            lines.append(f"| {t['env_id']} | {p['policy']} | {_rate_cell(p, 'success')} | "
                         f"{_rate_cell(p, 'any_success')} | {_rate_cell(p, 'lifted_target')} | "
                         f"{_rate_cell(p, 'lifted_any')} |")
    lines += ["", "### Phases (share of episodes: target / some object)\n"]
    for t in report["tasks"]:
        names = [n for n in phases_lib.OBJECT_PHASES
                 if t["goal"] == "place" or n not in phases_lib.PLACE_ONLY]
        lines += [f"**{t['env_id']}**\n", "| policy | " + " | ".join(names) +
                  " | closed away from objects | first close: cm from the nearest object "
                  "(3D / xy / height above) |",
                  "|---|" + "---|" * (len(names) + 2)]
        for p in t["policies"]:
            ph = p["phases"]
            cells = [f"{_pct(ph[n]['target'])} / {_pct(ph[n]['any'])}" if n in ph else ""
                     for n in names]
            offset = ph["close_offset"]
            where = ("" if offset["median_distance"] is None else " / ".join(
                f"{100 * offset[k]:.1f}" for k in ("median_distance", "median_xy", "median_z")))
            lines.append(f"| {p['policy']} | " + " | ".join(cells) +
                         f" | {_pct(ph['closed_away']['any'])} | {where} |")
        lines.append("")
    fit = report["likelihood"]
    if fit:
        lines += _likelihood_lines(fit)
    if report["nll_curve"]:
        lines += ["### Validation NLL during training (nats per action)\n",
                  "| step | " + " | ".join(str(r["step"]) for r in report["nll_curve"]) + " |",
                  "|---|" + "---|" * len(report["nll_curve"]),
                  "| NLL | " + " | ".join(f"{r['nll']:.2f}" for r in report["nll_curve"]) + " |",
                  ""]
    if report["checkpoint_rollouts"]:
        ids = [k for k in report["checkpoint_rollouts"][0] if k != "step"]
        lines += ["### Rollouts at each checkpoint (fresh z: task / some object / lifted)\n",
                  "| step | " + " | ".join(ids) + " |", "|---|" + "---|" * len(ids)]
        for row in report["checkpoint_rollouts"]:
            lines.append(f"| {row['step']} | " + " | ".join(
                f"{_pct(row[i]['success_rate'])} / {_pct(row[i]['any_success_rate'])} / "
                f"{_pct(row[i]['lifted_any_rate'])}" for i in ids) + " |")
        lines.append("")
    return lines


def _policy_text(policy: dict) -> str:
    extra = "".join(f", {k} {v}" for k, v in sorted(policy["policy_kwargs"].items()))
    perturbed = (f"; collected with perturb {policy['perturb']} (run unperturbed here)"
                 if policy.get("perturb") else "")
    return (f"noise {policy['noise']}, clip {policy['clip']}{extra or ', default fields'}"
            f"{perturbed}")


def _rate_cell(p, name) -> str:
    lo, hi = p[f"{name}_ci95"]
    return f"{p[name]}/{p['episodes']} ({_pct(p[name + '_rate'])}, [{_pct(lo)}, {_pct(hi)}])"


def _likelihood_lines(fit) -> list[str]:
    dims = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"][:len(fit["floor_nll"])]
    def row(name, values, fmt="{:.2f}"):
        return f"| {name} | " + " | ".join("" if v is None else fmt.format(v) for v in values) + " |"
    lines = [f"### Density against the data's floor ({fit['num_states']} scripted states of "
             "the training tasks)\n",
             "Per dimension, nats (lower is better). *Floor*: the exact NLL of the unclipped "
             "data components given the noise-free action. *KDE*: a kernel estimate "
             f"(bandwidth {fit['bandwidth']}) of each marginal at the data value, from the "
             "data's own conditional and from the prior's samples, over all components "
             "(clipped ones, point masses, included, so it is not comparable with the floor): "
             "the gap between the two KDE rows is the prior's excess.\n",
             "| | " + " | ".join(dims) + " |", "|---|" + "---|" * len(dims),
             row("data at the clip bound", fit["clipped_share"], "{:.0%}"),
             row("floor (unclipped)", fit["floor_nll"]),
             row("KDE: data", fit["data_kde_nll"]),
             row("KDE: prior", fit["prior_kde_nll"]),
             row("excess (prior - data)", np.subtract(fit["prior_kde_nll"], fit["data_kde_nll"])),
             row("mean abs. error of a(z = 0) from clip(mu)", fit["prior_zero_error"], "{:.3f}"),
             row("mean abs. noise of the data, a - clip(mu)", fit["data_error"], "{:.3f}"), "",
             f"Joint NLL of the data actions: {fit['joint_nll']:.2f} nats per action; on the "
             f"{fit['unclipped_actions']} actions with no clipped component "
             f"{fit['joint_nll_unclipped']:.2f} against their floor "
             f"{fit['joint_floor_unclipped']:.2f}.\n",
             "Gripper decisions (share of samples that would close / open):\n",
             "| state, scripted command | states | prior close | data close | prior open | "
             "data open |", "|---|---|---|---|---|---|"]
    for name, g in fit["gripper"].items():
        lines.append(f"| {name} | {g['states']} | {g['prior_close']:.1%} | "
                     f"{g['data_close']:.1%} | {g['prior_open']:.1%} | {g['data_open']:.1%} |")
    enc = fit["encoder"]
    lines += ["", f"Image encoder on {enc['num_images']} of these states: dead units (never "
              "active) per ReLU layer " + ", ".join(f"{k} {v:.0%}" for k, v in
                                                     enc["dead_units"].items()) +
              f"; embedding std across states {enc['embedding_std']:.4f}."]
    if fit.get("offset_readout"):
        lines += ["", "The flow's offset head on these states: mean absolute error of the "
                  "offset to the nearest object, cm (x / y / z), against the states' mean "
                  "offset:\n", "| states | head | constant |", "|---|---|---|"]
        for name, band in fit["offset_readout"].items():
            if band["states"]:
                lines.append(f"| {name} ({band['states']}) | " + " | ".join(
                    " / ".join(f"{v:.2f}" for v in band[k]) for k in ("head_cm", "constant_cm"))
                    + " |")
    lines += ["", "Coupling log-scales at their bound (|l| > 0.95 of `log_scale_bound`; share of "
              "states):\n",
              "| coupling | " + " | ".join(dims) + " |", "|---|" + "---|" * len(dims)]
    for k, values in enumerate(fit["log_scale_saturated"]):
        lines.append(row(str(k), values, "{:.0%}"))
    return lines + [""]
