"""The paper's experiments (Figures 4-7) as jobs, and what each figure plots.

``plan(config, workdir)`` returns ``(jobs, figures)``: the jobs for ``experiments.jobs``
and, per figure, the runs behind each curve for ``experiments.figures``. Jobs shared by
figures have one name, so a sweep of several figures runs them once:

- ``data/both``: grasp and pick-and-place trajectories (50/50); ``data/grasp``,
  ``data/place``: one kind only (Figure 7);
- ``priors/both_N``: the prior on the first N trajectories of ``data/both`` (Figure 6's
  dataset sizes are prefixes of one dataset; N = ``num_trajectories`` is the prior of
  Figures 4, 5 and 7); ``priors/grasp``, ``priors/place``;
- ``pretrained/vae``, ``pretrained/cvae``, ``pretrained/trajvae``, ``pretrained/spirl``:
  VAE-features' VAE, HIRL's cVAE, TrajRL's trajectory VAE and SPiRL's skill model, on the
  main prior's trajectories of ``data/both``;
- ``rl/METHOD/TASK/seedS``: ``parrot``, ``sac``, ``bc_sac``, ``prior_explore`` (with the
  main prior), ``vae_features``, ``hirl``, ``trajrl`` and ``spirl`` (with their pretrained
  models),
  ``parrot_N`` (Figure 6), ``parrot_grasp`` / ``parrot_place`` (Figure 7);
- ``fig4/rollouts``: the main prior beside random actions on the test tasks.

``config.prior_dir`` and ``config.dataset_dir`` replace the main prior's and
``data/both``'s jobs by directories made elsewhere; ``config.rl_by_agent`` (JSON) sets
some of one agent's RL settings over ``config.rl``.
"""

from __future__ import annotations

import copy
import json
import os

import ml_collections

from experiments.jobs import Job
from parrot_jax import io
from parrot_jax.agents.spec import spec_of

FIGURES = ("fig4", "fig5", "fig6", "fig7", "offline")
LABELS = {"parrot": "PARROT", "sac": "SAC", "bc_sac": "BC-SAC",
          "prior_explore": "Prior-explore", "iql": "IQL", "awac": "AWAC",
          "vae_features": "VAE-features", "hirl": "HIRL", "trajrl": "TrajRL",
          "spirl": "SPiRL"}
OFFLINE_AGENTS = ("iql", "awac")  # pretrained on the task's reward-labelled data
_TRAIN = {"both": ("parrot/GraspTrain-v0", "parrot/PickPlaceTrain-v0"),
          "grasp": ("parrot/GraspTrain-v0",), "place": ("parrot/PickPlaceTrain-v0",)}


def task_name(env_id: str) -> str:
    """``parrot/PickUpCan-v0`` -> ``PickUpCan``."""
    return env_id.rpartition("/")[2].rpartition("-v")[0]


def rl_by_agent(config: ml_collections.ConfigDict) -> dict[str, dict]:
    """``config.rl_by_agent`` parsed: ``{agent: {"dotted.key": value}}``; ValueError naming
    bad JSON, an unknown agent, a key ``config.rl`` does not have, or a value of the wrong
    type."""
    if not config.rl_by_agent:
        return {}
    try:
        by_agent = json.loads(config.rl_by_agent)
    except json.JSONDecodeError as e:
        raise ValueError(f"config.rl_by_agent={config.rl_by_agent!r} is not JSON: {e}") from e
    if not isinstance(by_agent, dict) or not all(isinstance(v, dict)
                                                 for v in by_agent.values()):
        raise ValueError(f"config.rl_by_agent={config.rl_by_agent!r}: expected a JSON object "
                         'of objects, {AGENT: {"dotted.key": value}}')
    for agent, settings in by_agent.items():
        spec_of(agent)
        override(copy.deepcopy(config.rl), settings, f"config.rl_by_agent[{agent!r}]")
    return by_agent


def override(rl: ml_collections.ConfigDict, settings: dict, where: str) -> None:
    """Sets ``rl``'s dotted keys to the values (ml_collections' type checks); ValueError
    naming a key ``rl`` does not have or a value it refuses."""
    for key, value in settings.items():
        *parents, leaf = key.split(".")
        node = rl
        for part in parents:
            node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise ValueError(f"{where}: {key!r} is not a setting of the RL config "
                             "(experiments/configs/rl.py)")
        try:
            setattr(node, leaf, tuple(value) if isinstance(value, list) else value)
        except TypeError as e:
            raise ValueError(f"{where}: {key}={value!r}: {e}") from e


def check_config(config: ml_collections.ConfigDict) -> None:
    """ValueError naming the first unknown figure, agent or env id, empty seeds, a
    trajectory count below 1, a bad ``rl_by_agent`` or a missing ``prior_dir`` /
    ``dataset_dir``."""
    from parrot_jax.envs import ENV_IDS

    for figure in config.figures:
        if figure not in FIGURES:
            raise ValueError(f"unknown figure {figure!r}; expected some of {', '.join(FIGURES)}")
    for agent in (*config.fig5.agents, *config.offline.agents):
        spec_of(agent)
    tasks = (*config.fig4.tasks, *config.fig5.tasks, *config.fig6.tasks,
             *config.fig7.grasp_tasks, *config.fig7.place_tasks, *config.offline.tasks)
    for env_id in tasks:
        if env_id not in ENV_IDS:
            raise ValueError(f"unknown env id {env_id!r}; valid ids: {', '.join(ENV_IDS)}")
    if not config.seeds:
        raise ValueError("config.seeds is empty; expected at least one seed")
    sizes = (config.num_trajectories, *config.fig6.trajectories, config.fig7.trajectories,
             config.offline.trajectories)
    if min(sizes) < 1:
        raise ValueError(f"trajectory counts must be positive, got {sizes}")
    rl_by_agent(config)
    for field, what in (("prior_dir", "an experiments.train_prior workdir"),
                        ("dataset_dir", "an experiments.collect_data workdir")):
        path = config.get(field, "")
        if path and not os.path.isdir(path):
            raise ValueError(f"config.{field}={path!r} is not a directory; expected {what}")


def plan(config: ml_collections.ConfigDict, workdir: str) -> tuple[list[Job], dict]:
    check_config(config)
    planner = _Planner(config, workdir)
    figures = {}
    for figure in config.figures:
        figures[figure] = getattr(planner, figure)()
    return list(planner.jobs.values()), figures


class _Planner:
    """Adds jobs once by name; each figure method returns that figure's plot spec."""

    def __init__(self, config, workdir):
        self.config, self.workdir = config, workdir
        self.jobs: dict[str, Job] = {}
        self.rl_by_agent = rl_by_agent(config)

    def _add(self, job: Job) -> str:
        old = self.jobs.get(job.name)
        if old is not None and old.spec() != job.spec():
            raise ValueError(f"two figures define job {job.name!r} differently")
        self.jobs[job.name] = job
        return job.name

    def _path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    def _input(self, name: str) -> tuple[str, tuple[str, ...]]:
        """A job's input as ``(path, deps)``: a planned job's directory and its name, or
        a directory made elsewhere (absolute) and none."""
        if os.path.isabs(name):
            return name, ()
        return self._path(name), (name,)

    def data(self, kind: str) -> str:
        """The job name of a prior dataset, or ``config.dataset_dir`` (absolute) for
        ``both`` when given."""
        if kind == "both" and self.config.get("dataset_dir"):
            return os.path.abspath(self.config.dataset_dir)
        c = copy.deepcopy(self.config.collect)
        c.env_ids = _TRAIN[kind]
        c.mix = tuple(1.0 / len(c.env_ids) for _ in c.env_ids)
        c.num_trajectories = (max(self.config.num_trajectories, *self.config.fig6.trajectories)
                              if kind == "both" else self.config.fig7.trajectories)
        return self._add(Job(f"data/{kind}", "collect", c))

    def prior(self, kind: str = "both", trajectories: int | None = None) -> str:
        """The job name of a prior, or ``config.prior_dir`` (absolute) for the main one
        when given."""
        main = kind == "both" and trajectories in (None, self.config.num_trajectories)
        if main and self.config.get("prior_dir"):
            return os.path.abspath(self.config.prior_dir)
        data = self.data(kind)
        c = copy.deepcopy(self.config.prior)
        c.dataset, deps = self._input(data)
        if kind == "both":
            c.max_episodes = trajectories or self.config.num_trajectories
            name = f"priors/both_{c.max_episodes}"
        else:
            name = f"priors/{kind}"
        return self._add(Job(name, "prior", c, deps))

    def pretrained(self, kind: str) -> str:
        """A baseline's model pretrained on the main prior's trajectories of data/both."""
        c = copy.deepcopy(self.config.pretrain[kind])
        c.dataset, deps = self._input(self.data("both"))
        c.max_episodes = self.config.num_trajectories
        return self._add(Job(f"pretrained/{kind}", "pretrain", c, deps))

    def labelled_data(self, env_id: str) -> str:
        """Scripted episodes of a test task with its rewards, failures kept."""
        f = self.config.offline
        c = copy.deepcopy(self.config.collect)
        c.env_ids, c.mix, c.keep = (env_id,), (1.0,), "all"
        c.num_trajectories, c.noise = f.trajectories, f.noise
        return self._add(Job(f"data/labelled/{task_name(env_id)}", "collect", c))

    def rl(self, agent: str, env_id: str, seed: int, prior: str | None = None,
           method: str | None = None) -> str:
        c = copy.deepcopy(self.config.rl)
        override(c, self.rl_by_agent.get(agent, {}), f"config.rl_by_agent[{agent!r}]")
        c.agent, c.env, c.seed = agent, env_id, seed
        deps, parts = [], spec_of(agent)
        if parts.reads_prior:
            c.prior, needs = self._input(prior or self.prior())
            deps.extend(needs)
        if parts.starts_from == "bc":
            c.dataset, needs = self._input(self.data("both"))
            deps.extend(needs)
        if parts.pretrained:  # a model pretrained on the prior data (experiments.pretrain)
            model = self.pretrained(parts.pretrained)
            c.pretrained = self._path(model)
            deps.append(model)
        if agent in OFFLINE_AGENTS:
            data = self.labelled_data(env_id)
            c.offline.dataset = self._path(data)
            c.offline.steps, c.offline.mix = self.config.offline.steps, self.config.offline.mix
            deps.append(data)
        name = f"rl/{method or agent}/{task_name(env_id)}/seed{seed}"
        return self._add(Job(name, "rl", c, tuple(deps)))

    def _curves(self, panels) -> dict:
        """``panels``: [(title, [(label, [[run names of seed 0], [of seed 1], ...]), ...])]."""
        return {"kind": "curves", "panels": [
            {"title": title, "curves": [{"label": label, "seeds": seeds}
                                        for label, seeds in curves]}
            for title, curves in panels]}

    def fig4(self) -> dict:
        f = self.config.fig4
        prior, deps = self._input(self.prior())
        c = ml_collections.ConfigDict({
            "prior": prior, "env": ",".join(f.tasks), "episodes": f.episodes,
            "seed": f.seed, "num_envs": f.num_envs, "workers": f.workers,
            "gif_episodes": f.gif_episodes})
        job = self._add(Job("fig4/rollouts", "prior_rollouts", c, deps))
        return {"kind": "rollouts", "job": job,
                "title": "Figure 4: prior rollouts vs random actions (test tasks)"}

    def fig5(self) -> dict:
        f, seeds = self.config.fig5, self.config.seeds
        panels = [(task_name(env_id), [
            (LABELS.get(agent, agent), [[self.rl(agent, env_id, s)] for s in seeds])
            for agent in f.agents]) for env_id in f.tasks]
        return {**self._curves(panels), "title": "Figure 5: success rate on the test tasks"}

    def fig6(self) -> dict:
        f, seeds = self.config.fig6, self.config.seeds
        panels = []
        for env_id in f.tasks:
            curves = []
            for n in f.trajectories:
                prior = self.prior("both", n)
                method = "parrot" if n == self.config.num_trajectories else f"parrot_{n}"
                curves.append((f"PARROT, {n:,} trajectories",
                               [[self.rl("parrot", env_id, s, prior, method)] for s in seeds]))
            if f.baseline:
                curves.append((f"{LABELS.get(f.baseline, f.baseline)} (no prior)",
                               [[self.rl(f.baseline, env_id, s)] for s in seeds]))
            panels.append((task_name(env_id), curves))
        return {**self._curves(panels), "title": "Figure 6: prior dataset size"}

    def fig7(self) -> dict:
        f, seeds = self.config.fig7, self.config.seeds
        priors = [("prior: grasp only", "grasp"), ("prior: pick-and-place only", "place"),
                  ("prior: both", "both")]
        panels = []
        for title, tasks in (("grasp test tasks", f.grasp_tasks),
                             ("pick-and-place test tasks", f.place_tasks)):
            curves = []
            for label, kind in priors:
                prior = self.prior(kind)
                method = "parrot" if kind == "both" else f"parrot_{kind}"
                # One seed's curve is the mean over the panel's tasks.
                curves.append((label, [[self.rl("parrot", env_id, s, prior, method)
                                        for env_id in tasks] for s in seeds]))
            panels.append((f"{title} (mean of {len(tasks)})", curves))
        return {**self._curves(panels), "title": "Figure 7: train/test mismatch"}

    def offline(self) -> dict:
        f, seeds = self.config.offline, self.config.seeds
        panels = [(task_name(env_id), [
            (LABELS.get(agent, agent), [[self.rl(agent, env_id, s)] for s in seeds])
            for agent in f.agents]) for env_id in f.tasks]
        return {**self._curves(panels),
                "title": "Offline-to-online: IQL and AWAC on reward-labelled data"}


MANIFEST = "sweep.json"


def write_manifest(workdir: str, config, jobs: list[Job], figures: dict) -> dict:
    """``WORKDIR/sweep.json``: every job and figure sweeps of this workdir defined (a later
    sweep of other figures adds to it), for ``experiments.aggregate``."""
    manifest = read_manifest(workdir, missing_ok=True)
    manifest["config"] = json.loads(json.dumps(config.to_dict()))
    manifest.setdefault("jobs", {}).update(
        {j.name: {"kind": j.kind, "deps": list(j.deps)} for j in jobs})
    manifest.setdefault("figures", {}).update(figures)
    io.write_json(os.path.join(workdir, MANIFEST), manifest)
    return manifest


def read_manifest(workdir: str, missing_ok: bool = False) -> dict:
    path = os.path.join(workdir, MANIFEST)
    if not os.path.exists(path):
        if missing_ok:
            return {}
        raise FileNotFoundError(f"{path} not found: is {workdir} the workdir of an "
                                "experiments.sweep run?")
    with open(path) as f:
        return json.load(f)


def totals(jobs: list[Job]) -> dict[str, int]:
    """The work a sweep's jobs ask for, from their configs."""
    out = {"trajectories": 0, "prior_steps": 0, "prior_samples": 0, "pretrain_steps": 0,
           "rl_runs": 0,
           "rl_env_steps": 0, "rl_updates": 0, "rollout_episodes": 0}
    for job in jobs:
        c = job.config
        if job.kind == "collect":
            out["trajectories"] += c.num_trajectories
        elif job.kind == "prior":
            out["prior_steps"] += c.num_steps
            out["prior_samples"] += c.num_steps * c.batch_size
        elif job.kind == "pretrain":
            out["pretrain_steps"] += c.num_steps
        elif job.kind == "rl":
            out["rl_runs"] += 1
            out["rl_env_steps"] += c.total_env_steps
            out["rl_updates"] += int(max(0, c.total_env_steps - c.start_steps)
                                     * c.updates_per_env_step) + c.offline.steps
        elif job.kind == "prior_rollouts":
            out["rollout_episodes"] += 2 * c.episodes * len(c.env.split(","))  # prior, random
    return out
