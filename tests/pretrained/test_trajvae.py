"""The trajectory VAE of TrajRL: shapes, learning whole trajectories, windows without
images, loading, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import pretrain as pretrain_config
from parrot_jax.data.dataset import load_dataset
from parrot_jax.data.sampling import BatchSampler
from parrot_jax.data.synthetic import write_frames_dataset
from parrot_jax.pretrained import train as pretrain
from parrot_jax.pretrained.cvae import write_initial_cvae
from parrot_jax.pretrained.trajvae import (init_params, load_trajvae, make_trajvae, terms,
                                           write_initial_trajvae)


def test_shapes_on_the_suite_spaces():
    model = make_trajvae(pretrain_config.get_config("trajvae,cpu").model, 7)
    assert (model.horizon, model.action_dim, model.latent_dim) == (25, 7, 7)
    params = init_params(model, jax.random.key(0))
    assert params["encoder"]["hidden0"]["kernel"].shape == (25 * 7, 512)  # flattened plan in
    assert params["decoder"]["out"]["kernel"].shape == (512, 25 * 7)
    actions = jnp.full((5, 25, 7), 0.3)
    mean, log_std = model.apply({"params": params}, actions, method="encode")
    assert mean.shape == log_std.shape == (5, 7)
    plan = model.apply({"params": params}, 10.0 * jnp.ones((5, 7)), method="decode")
    assert plan.shape == (5, 25, 7) and float(jnp.abs(plan).max()) <= 1.0  # tanh
    values = terms(model, params, {"actions": actions}, None)
    assert {k: v.shape for k, v in values.items()} == {"recon": (5,), "mse": (5,), "kl": (5,)}
    np.testing.assert_allclose(values["recon"], 175 * values["mse"], rtol=1e-5)
    with pytest.raises(ValueError, match=r"unknown TrajVAE model config fields \['depth'\]"):
        make_trajvae({"depth": 2}, 7)


def _two_plans(tmp_path, episodes=60, length=10):
    """Episodes that ramp every action dimension up from -0.6 to 0.6, or down, plus
    noise: two open-loop plans a 1-D latent can tell apart. Returns the dataset and its
    actions as (episodes, length, 7)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(-0.6, 0.6, length)[:, None] * np.ones(7)
    sign = np.where(np.arange(episodes) % 2, 1.0, -1.0)[:, None, None]
    plans = sign * ramp + 0.03 * rng.normal(size=(episodes, length, 7))
    images = np.zeros((episodes * length, 48, 48, 3), np.uint8)
    write_frames_dataset(str(tmp_path / "data"), images, plans.reshape(-1, 7), length)
    return str(tmp_path / "data"), plans.astype(np.float32)


def test_batches_are_whole_episodes_without_images(tmp_path):
    data, plans = _two_plans(tmp_path)
    config = pretrain_config.get_config("trajvae,tiny")
    config.model.horizon = 10
    sampling = pretrain.LatentModel.sampling(config)
    assert sampling == {"window": 10, "images": False}
    batch = BatchSampler(load_dataset([data]), 8, 0, **sampling).batch(0)
    assert set(batch) == {"actions"} and batch["actions"].shape == (8, 10, 7)
    # each window is one whole episode's plan, in order
    for window in batch["actions"]:
        assert np.any(np.all(np.abs(plans - window) < 1e-6, axis=(1, 2)))


def test_the_vae_reconstructs_trajectories_better_than_their_mean(tmp_path):
    data, plans = _two_plans(tmp_path)
    config = pretrain_config.get_config("trajvae,tiny")
    config.dataset, config.model.horizon = data, 10
    config.model.encoder_hidden = config.model.decoder_hidden = (64,)
    config.update(num_steps=400, learning_rate=3e-3, batch_size=32, log_every=100,
                  eval_every=100, checkpoint_every=200)
    config.beta.midpoint, config.beta.width = 0.0, 0.0  # beta 1e-3 from the start
    assert int(pretrain.train_and_evaluate(config, str(tmp_path / "traj")).step) == 400
    decoder = load_trajvae(str(tmp_path / "traj"))
    assert (decoder.step, decoder.horizon, decoder.step_action_dim, decoder.latent_dim) == \
        (400, 10, 7, 7)
    assert decoder.action_dim == 70 and decoder.image_shape == (48, 48, 3)  # the flat plan
    values = terms(decoder.model, decoder.params, {"actions": jnp.asarray(plans)}, None)
    mean_plan_mse = float(np.mean(np.square(plans - plans.mean(0))))  # 0.6^2-ish: ~0.13
    assert float(jnp.mean(values["mse"])) < 0.2 * mean_plan_mse, (values, mean_plan_mse)
    # the latent's mean decodes to one of the two ramps for each kind of episode
    z, _ = decoder.model.apply({"params": decoder.params}, jnp.asarray(plans[:2]),
                               method="encode")
    decoded = np.asarray(decoder.decode(z))
    assert decoded[0, 0, 0] > 0.3 and decoded[0, -1, 0] < -0.3  # down
    assert decoded[1, 0, 0] < -0.3 and decoded[1, -1, 0] > 0.3  # up


def test_errors_are_named(tmp_path):
    data, _ = _two_plans(tmp_path, episodes=4)
    config = pretrain_config.get_config("trajvae,tiny")
    config.dataset = data  # horizon 25 > the dataset's 10-step episodes
    with pytest.raises(ValueError, match="no episode is at least window=25 frames long "
                                         r"\(the longest has 10\)"):
        pretrain.train_and_evaluate(config, str(tmp_path / "long"))
    config.model.horizon = 0
    with pytest.raises(ValueError, match="config.model.horizon=0; expected >= 1"):
        pretrain.train_and_evaluate(config, str(tmp_path / "zero"))
    with pytest.raises(FileNotFoundError, match="no pretrained TrajVAE here"):
        load_trajvae(str(tmp_path / "missing"))
    cvae = write_initial_cvae(str(tmp_path / "cvae"), {
        "encoder_hidden": (8,), "decoder_hidden": (8,), "image_channels": (4, 4, 4),
        "image_hidden": (8,), "embedding": 4})
    with pytest.raises(ValueError, match="holds a 'cvae' run, not a TrajVAE"):
        load_trajvae(cvae)
    traj = write_initial_trajvae(str(tmp_path / "initial"), {"horizon": 5,
                                                             "encoder_hidden": (8,),
                                                             "decoder_hidden": (8,)})
    assert load_trajvae(traj).horizon == 5
