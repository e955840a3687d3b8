"""The conditional VAE of HIRL: shapes, learning image-dependent actions, loading, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import pretrain as pretrain_config
from parrot_jax.data.synthetic import write_frames_dataset
from parrot_jax.pretrained import train as pretrain
from parrot_jax.pretrained.cvae import init_params, load_cvae, make_cvae
from parrot_jax.pretrained.vae import write_initial_vae

TINY = {"encoder_hidden": (32,), "decoder_hidden": (32,), "image_channels": (4, 4, 4),
        "image_hidden": (16,), "embedding": 8}


def test_shapes_on_the_suite_spaces():
    cvae = make_cvae(pretrain_config.get_config("cvae,cpu").model, (48, 48, 3), 7)
    assert cvae.latent_dim == 7  # None: the action's dimension, as the flow's latent
    params = init_params(cvae, jax.random.key(0))
    assert set(params) == {"psi", "encoder", "decoder"}
    assert params["encoder"]["out"]["kernel"].shape == (128, 14)  # mu and log sigma
    images = jnp.zeros((5, 48, 48, 3), jnp.uint8)
    actions = jnp.full((5, 7), 0.3)
    mean, log_std = cvae.apply({"params": params}, actions, images, method="encode")
    assert mean.shape == log_std.shape == (5, 7)
    decoded = cvae.apply({"params": params}, 10.0 * jnp.ones((5, 7)), images, method="decode")
    assert decoded.shape == (5, 7) and float(jnp.abs(decoded).max()) < 1.0
    with pytest.raises(ValueError, match=r"unknown cVAE model config fields \['depth'\]"):
        make_cvae({"depth": 2}, (48, 48, 3), 7)


def test_the_decoder_learns_image_dependent_actions(tmp_path):
    # Black-image episodes act near +0.5, white-image episodes near -0.5.
    rng = np.random.default_rng(0)
    episodes, length = 40, 10
    white = np.repeat(np.arange(episodes) % 2, length)
    observations = np.broadcast_to((255 * white)[:, None, None, None].astype(np.uint8),
                                   (episodes * length, 48, 48, 3)).copy()
    actions = (0.5 - white)[:, None] + 0.05 * rng.normal(size=(episodes * length, 7))
    write_frames_dataset(str(tmp_path / "data"), observations, actions, length)
    config = pretrain_config.get_config("cvae,tiny")
    config.dataset, config.in_memory = str(tmp_path / "data"), True
    config.model.update(TINY)
    config.update(num_steps=300, learning_rate=3e-3, batch_size=32, log_every=100,
                  eval_every=100, checkpoint_every=100)
    assert int(pretrain.train_and_evaluate(config, str(tmp_path / "cvae")).step) == 300
    decoder = load_cvae(str(tmp_path / "cvae"))
    assert decoder.step == 300 and decoder.action_dim == decoder.latent_dim == 7
    # reconstruction at z = mu: far below the actions' variance (0.25 + 0.05^2)
    terms = pretrain.MODELS["cvae"].terms(decoder.cvae, decoder.params,
                                          {"observations": observations[:40],
                                           "actions": jnp.asarray(actions[:40], jnp.float32)},
                                          None)
    assert float(jnp.mean(terms["mse"])) < 0.05
    # the prior's mean z = 0 decodes to actions that depend on the image as the data's do
    images = np.stack([np.zeros((48, 48, 3), np.uint8), np.full((48, 48, 3), 255, np.uint8)])
    at_zero = np.asarray(decoder.decode(jnp.zeros((2, 7)), images))
    assert np.all(at_zero[0] > 0.1) and np.all(at_zero[1] < -0.1), at_zero


def test_loading_the_wrong_kind_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pretrained cVAE here"):
        load_cvae(str(tmp_path / "missing"))
    vae = write_initial_vae(str(tmp_path / "vae"), {"channels": 4, "num_residual": 1,
                                                    "latent_dim": 4})
    with pytest.raises(ValueError, match="holds a 'vae' run, not a cVAE"):
        load_cvae(vae)
