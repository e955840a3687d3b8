"""The quickstart (``make demo``): a small prior dataset, the prior, prior rollouts on
the eight test tasks, and a short PARROT vs SAC comparison on one of them.

    python -m experiments.demo --workdir=runs/demo [--config=experiments/configs/demo.py]

Each stage's section is the config of the binary that runs it alone
(``collect_data``, ``train_prior``, ``evaluate_prior``, ``train_rl``).

Variants: default (sized for a 2-core CPU); ``tiny`` (seconds per stage, for tests).
"""

import ml_collections

from experiments.configs import collect as collect_config
from experiments.configs import prior as prior_config
from experiments.configs import rl as rl_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.collect = collect_config.get_config("tiny" if variant == "tiny" else "")
    config.prior = prior_config.get_config("tiny" if variant == "tiny" else "cpu")
    config.prior_eval = ml_collections.ConfigDict()
    config.prior_eval.env = "all"  # the eight test tasks (novel objects)
    config.prior_eval.episodes = 20
    config.prior_eval.num_envs = 8
    config.prior_eval.workers = 0
    config.prior_eval.gif_episodes = 4
    config.prior_eval.seed = 0
    config.rl = rl_config.get_config("tiny" if variant == "tiny" else "cpu")
    config.rl.env = "parrot/PickUpCan-v0"
    config.agents = ("parrot", "sac")

    if variant == "tiny":
        config.prior_eval.env = "parrot/PickUpCan-v0"
        config.prior_eval.episodes = 2
        config.prior_eval.num_envs = 2
        config.prior_eval.gif_episodes = 1
    elif variant == "":
        # About 18 minutes on 2 CPU cores: collection 2.5, prior 4.5, prior rollouts 2, each
        # RL run 4. The prior is the CPU recipe (prior.py:cpu) cut to 10K steps; the full
        # recipe (12K trajectories, 48K steps) takes 30 minutes more. Task successes are
        # rare (a few per 100 episodes), so 100 episodes per task.
        config.collect.num_trajectories = 4_000
        config.collect.trajectories_per_shard = 250
        config.prior.num_steps = 10_000
        config.prior_eval.episodes = 100
        config.rl.total_env_steps = 10_000
        config.rl.eval_every = 2_000
        config.rl.eval_episodes = 40
        config.rl.checkpoint_every = 2_000
    else:
        raise ValueError(f"unknown demo config variant {variant!r}; expected '' or 'tiny'")
    return config
