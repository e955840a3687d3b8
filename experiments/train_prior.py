"""Trains the behavioral prior; rerun the same command to resume after a kill.

    python -m experiments.train_prior --config=experiments/configs/prior.py \
        --config.dataset=runs/data/prior --workdir=runs/prior

Writes ``WORKDIR/config.json``, ``WORKDIR/checkpoints/`` and metrics
(``metrics.jsonl``, ``metrics.csv``, ``tensorboard/``). Load the result with
``parrot_jax.flows.prior.load_prior(WORKDIR)``.
"""

from absl import app, flags
from ml_collections import config_flags

from experiments.common import check_or_exit, define_distributed_flags, run_resumable
from parrot_jax.flows import run_config, train

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/prior.py",
                                          "Prior training config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created or resumed).",
                               required=True)
_JOIN_DISTRIBUTED = define_distributed_flags()


def main(argv):
    del argv
    _JOIN_DISTRIBUTED()
    check_or_exit(run_config.check_inputs, _CONFIG.value)
    state = run_resumable(train.train_and_evaluate, _CONFIG.value, _WORKDIR.value)
    print(f"{_WORKDIR.value}: prior at step {int(state.step)}")


if __name__ == "__main__":
    app.run(main)
