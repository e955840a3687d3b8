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
"""

from absl import app, flags
from ml_collections import config_flags

from experiments.common import check_or_exit, define_distributed_flags, run_resumable
from parrot_jax.agents import train

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/rl.py",
                                          "RL config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created or resumed).",
                               required=True)
_JOIN_DISTRIBUTED = define_distributed_flags()


def main(argv):
    del argv
    _JOIN_DISTRIBUTED()
    check_or_exit(train.check_inputs, _CONFIG.value)
    result = run_resumable(train.train, _CONFIG.value, _WORKDIR.value)
    evaluation = ", ".join(f"{k} {v:.4g}" for k, v in result.evaluation.items())
    print(f"{_WORKDIR.value}: {result.env_steps} env steps, {int(result.state.step)} updates"
          + (f"; last evaluation: {evaluation}" if evaluation else ""))


if __name__ == "__main__":
    app.run(main)
