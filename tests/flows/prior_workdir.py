"""A prior workdir as ``experiments.train_prior`` leaves it, with a tiny flow at init."""

import json
import os

import jax

from parrot_jax.checkpoint import DIRECTORY, Checkpoints
from parrot_jax.flows.prior import CONFIG_FILE, init_params, make_flow

TINY_MODEL = dict(action_dim=7, num_couplings=4, hidden=(32, 32), encoder_channels=(4, 4, 4),
                  encoder_hidden=(32,), embedding=16)


def write_prior(workdir, step: int = 0, image_shape=(48, 48, 3), **model_overrides) -> str:
    """Writes ``config.json`` and an init checkpoint (the identity flow, ``a = tanh(z)``)."""
    model = {**TINY_MODEL, **model_overrides}
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
        json.dump({"model": model, "image_shape": list(image_shape)}, f)
    params = init_params(make_flow(model), jax.random.key(0), image_shape)
    manager = Checkpoints(os.path.join(workdir, DIRECTORY))
    manager.save(step, {"params": params}, params)
    manager.close()
    return str(workdir)
