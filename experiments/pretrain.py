"""Pretrains a baseline's model on the prior dataset; rerun the same command to resume.

    python -m experiments.pretrain --config=experiments/configs/pretrain.py:vae \
        --config.dataset=runs/data/prior --workdir=runs/vae

Writes ``WORKDIR/config.json`` (with ``kind``), ``WORKDIR/checkpoints/`` and metrics
(``metrics.jsonl``, ``metrics.csv``, ``tensorboard/``), as ``experiments.train_prior`` does
for the flow. ``kind="vae"``: load it with ``parrot_jax.pretrained.vae.load_vae(WORKDIR)``,
or train the ``vae_features`` agent on it (``experiments.train_rl
--config.agent=vae_features --config.pretrained=WORKDIR``); likewise ``cvae`` (``load_cvae``,
agent ``hirl``), ``trajvae`` (``load_trajvae``, agent ``trajrl``) and ``spirl``
(``parrot_jax.pretrained.spirl.load_skills``, agent ``spirl``).
"""

from absl import app, flags
from ml_collections import config_flags

from experiments.common import check_or_exit, define_distributed_flags, run_resumable
from parrot_jax.pretrained import train

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/pretrain.py",
                                          "Pretraining config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created or resumed).",
                               required=True)
_JOIN_DISTRIBUTED = define_distributed_flags()


def main(argv):
    del argv
    _JOIN_DISTRIBUTED()
    check_or_exit(train.check_inputs, _CONFIG.value)
    state = run_resumable(train.train_and_evaluate, _CONFIG.value, _WORKDIR.value)
    print(f"{_WORKDIR.value}: {_CONFIG.value.kind} at step {int(state.step)}")


if __name__ == "__main__":
    app.run(main)
