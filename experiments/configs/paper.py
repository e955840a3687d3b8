"""The paper's experiments: Figures 4-7 as one sweep of jobs (``experiments.paper``).

    python -m experiments.sweep --config=experiments/configs/paper.py:FIGURES[,SCALE] \
        --workdir=runs/paper [--processes=N] [--dry_run]
    python -m experiments.aggregate --workdir=runs/paper

FIGURES: ``all`` or figures joined by ``+`` (``fig5``, ``fig4+fig6``):
- fig4: the prior (z ~ N(0, I)) beside uniform random actions on the eight test tasks:
  success and object-lifted rates, end-effector paths, a grid of GIFs;
- fig5: PARROT, SAC, BC-SAC, Prior-explore, VAE-features, HIRL and TrajRL on the eight
  test tasks, 3 seeds each, and SPiRL (beyond the paper: the competing way to use a
  learned prior, Pertsch et al. 2020);
- fig6: PARROT with priors from 5K, 10K, 25K and 50K trajectories (prefixes of one
  dataset) on four of the tasks, beside SAC;
- fig7: priors from grasp-only and pick-and-place-only data (and both) on the four grasp
  and the four pick-and-place test tasks;
- offline (beyond the paper; not in ``all``): IQL and AWAC pretrained on reward-labelled
  scripted episodes of each test task (successes and failures), then fine-tuned online
  with that data in every batch, beside PARROT (a prior of the training tasks only) and
  BC-SAC at the same env-step budget. Its PARROT and BC-SAC runs are fig5's.

SCALE:
- (none) the paper's: 50K trajectories, a 500K-step prior, the paper's RL config
  (200K env steps, 1 update per env step at batch 256) per run; a GPU's work;
- ``cpu``: the ``:cpu`` configs (10K trajectories, the 48K-step CPU prior recipe, 40K env
  steps per run at 1 update per 4 env steps) with sizes scaled alike; days on a 2-core
  machine;
- ``tiny``: one or two tasks, two seeds and the ``:tiny`` configs, for tests (minutes).
``python -m experiments.sweep ... --dry_run`` prints each job and the sweep's totals
(trajectories, prior steps, env steps, updates); the README gives measured rates.

Inputs built elsewhere: ``--config.prior_dir=DIR`` (an ``experiments.train_prior``
workdir) is the main prior instead of ``priors/both_N`` (Figures 4 and 5, the largest of
Figure 6, Figure 7's ``both``), ``--config.dataset_dir=DIR`` the prior dataset instead of
``data/both`` (BC-SAC, the pretrained models, Figure 6's smaller priors). Per-agent RL
settings over ``rl``: ``--config.rl_by_agent`` as JSON ``{AGENT: {"dotted.key": value}}``.
Round 9's CPU recipe (``docs/rl_diagnosis.md``: PARROT with AWAC's extraction in
``z``-space and a critic reading the prior's action; every agent at batch 256 for 50K env
steps, evaluated with sampled actions) on PickUpCan, with a prior built beforehand::

    python -m experiments.sweep --config=experiments/configs/paper.py:fig5,cpu \\
        --config.prior_dir=runs/prior --config.dataset_dir=runs/data \\
        --config.fig5.agents='("parrot","sac","bc_sac","prior_explore")' \\
        --config.fig5.tasks='("parrot/PickUpCan-v0",)' \\
        --config.rl.batch_size=256 --config.rl.bc.batch_size=256 \\
        --config.rl.total_env_steps=50000 --config.rl.replay_capacity=250000 \\
        --config.rl.checkpoint_every=10000 --config.rl.eval_every=5000 \\
        --config.rl.eval_deterministic=False \\
        --config.rl_by_agent='{"parrot": {"learner": "awac", "awac.temperature": 0.3,
            "parrot.critic_input": "action"}}' --workdir=runs/fig5_round9
"""

import ml_collections

from experiments.configs import collect as collect_config
from experiments.configs import pretrain as pretrain_config
from experiments.configs import prior as prior_config
from experiments.configs import rl as rl_config

from parrot_jax.envs import TEST_ENV_IDS as TEST_TASKS
from parrot_jax.envs.tasks import TASKS

GRASP_TASKS = tuple(t for t in TEST_TASKS if TASKS[t].goal == "grasp")
PLACE_TASKS = tuple(t for t in TEST_TASKS if TASKS[t].goal == "place")
FIGURES = ("fig4", "fig5", "fig6", "fig7")  # the paper's ("all")
EXTRAS = ("offline",)  # beyond the paper, by name only


def get_config(variant: str = "all") -> ml_collections.ConfigDict:
    figures, _, scale = (variant or "all").partition(",")
    figures = FIGURES if figures == "all" else tuple(figures.split("+"))
    unknown = [f for f in figures if f not in FIGURES + EXTRAS]
    if unknown or scale not in ("", "cpu", "tiny"):
        raise ValueError(f"unknown paper config variant {variant!r}; expected FIGURES[,SCALE] "
                         f"with FIGURES 'all' or some of {'+'.join(FIGURES + EXTRAS)} joined "
                         "by '+', and SCALE '', 'cpu' or 'tiny'")
    base = {"": "", "cpu": "cpu", "tiny": "tiny"}[scale]
    config = ml_collections.ConfigDict()
    config.figures = figures
    config.seeds = (0, 1, 2)
    config.num_trajectories = 50_000  # the prior of Figures 4, 5 and 7 ("both")
    # Each stage's base config: the config file of the binary that runs it alone.
    config.collect = collect_config.get_config("tiny" if scale == "tiny" else "")
    config.prior = prior_config.get_config(base)
    config.rl = rl_config.get_config(base)
    # JSON {agent: {"dotted.key": value}}: settings of one agent's runs over ``rl``.
    config.rl_by_agent = ""
    # A train_prior workdir to use as the main prior, and a prior dataset for what reads
    # one, instead of planning priors/both_N and data/both ("": planned).
    config.prior_dir = ""
    config.dataset_dir = ""
    # The baselines' pretrained models, by kind (experiments/configs/pretrain.py).
    config.pretrain = ml_collections.ConfigDict(
        {kind: pretrain_config.get_config(f"{kind},{base}" if base else kind)
         for kind in pretrain_config.KINDS})

    config.fig4 = ml_collections.ConfigDict()
    config.fig4.tasks = TEST_TASKS
    config.fig4.episodes = 100  # per task and policy, env seeds seed .. seed + episodes - 1
    config.fig4.seed = 0
    config.fig4.num_envs = 8
    config.fig4.workers = 0  # 0: every core
    config.fig4.gif_episodes = 4
    config.fig5 = ml_collections.ConfigDict()
    config.fig5.agents = ("parrot", "sac", "bc_sac", "prior_explore", "vae_features", "hirl",
                          "trajrl", "spirl")
    config.fig5.tasks = TEST_TASKS
    config.fig6 = ml_collections.ConfigDict()
    config.fig6.trajectories = (5_000, 10_000, 25_000, 50_000)
    # The paper ran "a subset of our tasks" without naming it: two of each kind.
    config.fig6.tasks = ("parrot/PickUpCan-v0", "parrot/PickUpBaseballCap-v0",
                         "parrot/PlaceCanInPan-v0", "parrot/PlaceSculptureInBasket-v0")
    config.fig6.baseline = "sac"  # learning from scratch, for reference ("" for none)
    config.fig7 = ml_collections.ConfigDict()
    # Each one-kind dataset holds as many trajectories of its kind as ``both`` holds
    # in all; Figure 6 shows 25K and 50K trajectories give similar priors.
    config.fig7.trajectories = 25_000
    config.fig7.grasp_tasks = GRASP_TASKS
    config.fig7.place_tasks = PLACE_TASKS
    config.offline = ml_collections.ConfigDict()
    config.offline.agents = ("iql", "awac", "parrot", "bc_sac")
    config.offline.tasks = ("parrot/PickUpCan-v0", "parrot/PlaceCanInPan-v0")
    # Reward-labelled data per task: the scripted policy with more noise than the prior
    # data's (0.1), so the data holds failures too (PickUpCan: 42% success at 0.3).
    config.offline.trajectories = 1_000
    config.offline.noise = 0.3
    config.offline.steps = 25_000  # offline updates before the first env step (rlkit's)
    config.offline.mix = 0.5  # the dataset's share of every online batch

    if scale == "cpu":
        config.num_trajectories = 10_000
        config.collect.trajectories_per_shard = 250
        config.fig4.episodes = 100
        config.fig6.trajectories = (1_000, 2_500, 5_000, 10_000)
        config.fig7.trajectories = 5_000
        config.offline.steps = 5_000
    elif scale == "tiny":
        config.seeds = (0, 1)
        config.num_trajectories = 24
        config.fig4.tasks = ("parrot/PickUpCan-v0", "parrot/PlaceCanInPan-v0")
        config.fig4.episodes = 2
        config.fig4.num_envs = 2
        config.fig4.gif_episodes = 1
        config.fig5.tasks = ("parrot/PickUpCan-v0",)
        config.fig6.trajectories = (12, 24)
        config.fig6.tasks = ("parrot/PickUpCan-v0",)
        config.fig7.trajectories = 12
        config.fig7.grasp_tasks = ("parrot/PickUpCan-v0",)
        config.fig7.place_tasks = ("parrot/PlaceCanInPan-v0",)
        config.offline.tasks = ("parrot/PickUpCan-v0",)
        config.offline.trajectories = 6
        config.offline.steps = 8
        # A tiny sweep runs many RL jobs of a few programs, each compiled once (per process,
        # and in the compilation cache): XLA's optimisations repay their compile time there.
        # Every figure's tiny sweep took 181 s with them against 251 s without (2 cores).
        config.rl.fast_compile = False
    return config
