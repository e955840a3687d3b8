"""A prior workdir as ``experiments.train_prior`` leaves it, with a tiny flow at init."""

from parrot_jax.flows.prior import write_initial_prior

TINY_MODEL = dict(action_dim=7, num_couplings=4, hidden=(32, 32), encoder_channels=(4, 4, 4),
                  encoder_hidden=(32,), embedding=16)


def write_prior(workdir, step: int = 0, image_shape=(48, 48, 3), **model_overrides) -> str:
    """Writes ``config.json`` and an init checkpoint (the identity flow, ``a = tanh(z)``)."""
    return str(write_initial_prior(str(workdir), {**TINY_MODEL, **model_overrides},
                                   image_shape, step))
