"""``train_and_evaluate(config, workdir)`` for any pretrained model, by ``config.kind``:
the one call ``experiments.pretrain`` and the sweep's ``pretrain`` jobs make."""

from __future__ import annotations

from parrot_jax.pretrained import vae_train

TRAINERS = {"vae": vae_train}  # config.kind -> the module that trains it


def trainer(kind: str):
    if kind not in TRAINERS:
        raise ValueError(f"config.kind={kind!r}; expected one of {tuple(TRAINERS)}")
    return TRAINERS[kind]


def check_inputs(config) -> None:
    """ValueError/FileNotFoundError naming the first bad setting or missing dataset."""
    trainer(config.kind).VAE.check_inputs(config)


def train_and_evaluate(config, workdir: str):
    """Trains (or resumes, or finds finished) the run in ``workdir``; its final state."""
    return trainer(config.kind).train_and_evaluate(config, workdir)
