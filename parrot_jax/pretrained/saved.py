"""Reading a pretrained model's run directory (``experiments.pretrain``'s workdir): its
``config.json`` (with ``kind``) and its parameters at a checkpoint."""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import jax

from parrot_jax.run_config import CONFIG_FILE

PRETRAIN_COMMAND = "experiments.pretrain --config=experiments/configs/pretrain.py:{kind}"


def read_config(workdir: str, kind: str, what: str,
                written_by: str | None = None) -> dict[str, Any]:
    """``WORKDIR/config.json`` of a ``kind`` run (``what``: the model's name in messages;
    ``written_by``: the command that writes such runs, ``experiments.pretrain``'s by
    default); FileNotFoundError / ValueError naming what is wrong if ``workdir`` holds
    another."""
    written_by = written_by or PRETRAIN_COMMAND.format(kind=kind)
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir}: no pretrained {what} here ({CONFIG_FILE} "
                                f"missing); pass the workdir of {written_by}")
    with open(path) as f:
        config = json.load(f)
    if config.get("kind") != kind:
        raise ValueError(f"{workdir} holds a {config.get('kind', 'flow prior')!r} run, not a "
                         f"{what} (config.kind={kind!r}, written by {written_by.split()[0]})")
    return config


def load(workdir: str, kind: str, what: str, make: Callable[[dict], Any],
         init_params: Callable, step: int | None = None):
    """``(module, params, config, step)``: the model ``make(config)`` builds, with its
    parameters at ``step`` (the latest by default)."""
    from parrot_jax import checkpoint  # Orbax is only needed when loading

    config = read_config(workdir, kind, what)
    module = make(config)
    abstract = jax.eval_shape(lambda: init_params(module, jax.random.key(0)))
    params, step = checkpoint.load_params(os.path.join(workdir, checkpoint.DIRECTORY),
                                          abstract, step)
    return module, params, config, step


def write_initial(workdir: str, description: dict[str, Any], params) -> str:
    """A run directory as ``experiments.pretrain`` leaves it, holding ``params`` at step 0:
    for tests and benchmarks that need a model of some architecture, not a trained one."""
    from parrot_jax import checkpoint, io

    os.makedirs(workdir, exist_ok=True)
    manager = checkpoint.Checkpoints(os.path.join(workdir, checkpoint.DIRECTORY))
    try:
        manager.save(0, {"params": params}, params)
    finally:
        manager.close()
    # written last: a directory with a config.json holds a complete checkpoint
    io.write_json(os.path.join(workdir, CONFIG_FILE), description)
    return workdir


def write_initial_model(workdir: str, kind: str, make: Callable[[dict], Any],
                        init_params: Callable, model_config, action_dim: int, image_shape,
                        seed: int = 0) -> str:
    """``write_initial`` for a model of actions and images: the ``kind`` run whose
    ``config.json`` describes ``model_config`` on the given shapes, at initialisation."""
    description = {"kind": kind, "model": dict(model_config), "image_shape": list(image_shape),
                   "action_dim": action_dim}
    return write_initial(workdir, description,
                         init_params(make(description), jax.random.key(seed)))
