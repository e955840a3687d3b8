"""Learns a task with SAC, PARROT, a baseline, or IQL/AWAC offline then online; rerun the
same command to resume.

    python -m experiments.train_rl --config=experiments/configs/rl.py \
        --config.agent=parrot --config.env=parrot/PickUpCan-v0 \
        --config.prior=runs/prior --workdir=runs/rl/parrot
    python -m experiments.train_rl --config=experiments/configs/rl.py:cpu --config.agent=iql \
        --config.offline.dataset=runs/data/pickupcan_rl --config.offline.steps=5000 \
        --config.offline.mix=0.5 --workdir=runs/rl/iql

Writes ``WORKDIR/config.json``, ``WORKDIR/checkpoints/`` (step = env steps) and metrics
(``metrics.jsonl``, ``metrics.csv``, ``tensorboard/``): ``eval/success`` (with its 95%
interval), ``eval/return``, ``train/success``, ``train/episode_return``, SAC losses,
temperature and entropy, env steps/s; with ``offline.steps``, ``offline_metrics.json``.
Evaluate with ``experiments.evaluate``.

``--seeds=0,1,2`` trains those seeds of the config together, one learner program for all
(``agents.together``; ``--over=vmap|map``), into ``WORKDIR/seed0``, ``WORKDIR/seed1``, ...:
each the same files as a single run's (``config.seed`` is replaced by each seed).
"""

import copy
import os


from absl import app, flags
from ml_collections import config_flags

from experiments.common import check_or_exit, define_distributed_flags, run_resumable
from parrot_jax.agents import together, train

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/rl.py",
                                          "RL config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created or resumed).",
                               required=True)
_SEEDS = flags.DEFINE_list("seeds", [], "Seeds to train together in one learner program, "
                           "each into WORKDIR/seed<N> (agents.together); empty: one run "
                           "of config.seed into WORKDIR.")
_OVER = flags.DEFINE_enum("over", "vmap", together.OVER,
                          "With --seeds: how one program updates the runs (agents.seeds).")
_JOIN_DISTRIBUTED = define_distributed_flags()


def main(argv):
    del argv
    _JOIN_DISTRIBUTED()
    if _SEEDS.value:
        configs, workdirs = _seed_runs(_CONFIG.value, _WORKDIR.value, _SEEDS.value)
        check_or_exit(together.check_together, configs, workdirs)
        results = run_resumable(lambda c, w: together.train_together(c, w, _OVER.value),
                                configs, workdirs)
    else:
        check_or_exit(train.check_inputs, _CONFIG.value)
        workdirs = [_WORKDIR.value]
        results = [run_resumable(train.train, _CONFIG.value, _WORKDIR.value)]
    for workdir, result in zip(workdirs, results):
        evaluation = ", ".join(f"{k} {v:.4g}" for k, v in result.evaluation.items())
        print(f"{workdir}: {result.env_steps} env steps, {int(result.state.step)} updates"
              + (f"; last evaluation: {evaluation}" if evaluation else ""))


def _seed_runs(config, workdir: str, seeds: list[str]):
    try:
        values = [int(seed) for seed in seeds]
    except ValueError:
        raise app.UsageError(f"--seeds={','.join(seeds)}: expected integers, e.g. "
                             "--seeds=0,1,2") from None
    configs = []
    for seed in values:
        configs.append(copy.deepcopy(config))
        configs[-1].seed = seed
    return configs, [os.path.join(workdir, f"seed{seed}") for seed in values]


if __name__ == "__main__":
    app.run(main)
