"""SPiRL's skill model: shapes, the prior's loss, learning skills and their prior from
windows with their first image, loading, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import pretrain as pretrain_config
from parrot_jax.agents.networks import Actor
from parrot_jax.data.dataset import load_dataset
from parrot_jax.data.sampling import BatchSampler
from parrot_jax.data.synthetic import write_frames_dataset
from parrot_jax.pretrained import train as pretrain
from parrot_jax.pretrained.losses import gaussian_kl
from parrot_jax.pretrained.spirl import (init_params, load_skills, make_skill_model,
                                         prior_actor, step_decoder, terms,
                                         write_initial_skills)
from parrot_jax.pretrained.trajvae import write_initial_trajvae


def test_shapes_on_the_suite_spaces():
    model = make_skill_model(pretrain_config.get_config("spirl,cpu").model, (48, 48, 3), 7)
    assert (model.horizon, model.action_dim, model.latent_dim) == (5, 7, 10)
    params = init_params(model, jax.random.key(0))
    assert params["encoder_out"]["kernel"].shape == (128, 20)
    assert params["decoder_out"]["kernel"].shape == (128, 7)
    # the prior's parameters are those of the RL actor it initialises
    actor = prior_actor(model, squash=True)
    images = jnp.zeros((2, 48, 48, 3), jnp.uint8)
    fresh = actor.init(jax.random.key(1), images)["params"]
    assert jax.tree.map(jnp.shape, fresh) == jax.tree.map(jnp.shape, params["prior"])
    assert len(params["prior"]["head"]) == 7  # 6 hidden layers of 128 and the output
    actions = jnp.full((4, 5, 7), 0.3)
    mean, log_std = model.apply({"params": params}, actions, method="encode")
    assert mean.shape == log_std.shape == (4, 10)
    skill = model.apply({"params": params}, 10.0 * jnp.ones((4, 10)), method="decode")
    assert skill.shape == (4, 5, 7) and float(jnp.abs(skill).max()) <= 1.0  # tanh
    flat = model.apply({"params": params}, jnp.ones((4, 10)), None, method="env_action")
    assert flat.shape == (4, 35)
    batch = {"actions": actions, "observations": jnp.zeros((4, 48, 48, 3), jnp.uint8)}
    values = terms(model, params, batch, None)
    assert {k: v.shape for k, v in values.items()} == {
        "recon": (4,), "mse": (4,), "kl": (4,), "prior": (4,), "prior_nll": (4,)}
    np.testing.assert_allclose(values["recon"], 35 * values["mse"], rtol=1e-5)
    with pytest.raises(ValueError, match=r"unknown SPiRL model config fields \['depth'\]"):
        make_skill_model({"depth": 2}, (48, 48, 3), 7)


def test_the_prior_loss_is_the_closed_form_kl_and_leaves_the_posterior_alone():
    model = make_skill_model(pretrain_config.get_config("spirl,tiny").model, (8, 8, 3), 2)
    params = init_params(model, jax.random.key(0))
    # move the prior off N(0, I) so the KL is not trivial
    params = jax.tree.map(lambda x: x + 0.05, params)
    rng = np.random.default_rng(0)
    batch = {"actions": jnp.asarray(rng.uniform(-1, 1, (3, 5, 2)), jnp.float32),
             "observations": jnp.asarray(rng.integers(0, 255, (3, 8, 8, 3)), jnp.uint8)}
    values = terms(model, params, batch, None)
    mean, log_std = model.apply({"params": params}, batch["actions"], method="encode")
    prior = model.apply({"params": params}, batch["observations"], method="skill_prior")
    m2, s2 = np.asarray(prior.mean()), np.asarray(prior.stddev())
    m1, s1 = np.asarray(mean), np.exp(np.asarray(log_std))
    closed = np.sum(np.log(s2 / s1) + (s1**2 + (m1 - m2)**2) / (2 * s2**2) - 0.5, axis=-1)
    np.testing.assert_allclose(values["prior"], closed, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(values["prior"], gaussian_kl(mean, log_std, prior.mean(),
                                                            jnp.log(prior.stddev())), rtol=1e-5)
    nll = 0.5 * np.sum(((m1 - m2) / s2)**2 + 2 * np.log(s2) + np.log(2 * np.pi), axis=-1)
    np.testing.assert_allclose(values["prior_nll"], nll, rtol=1e-4)
    # the stop-gradient: the prior's loss moves only the prior
    grads = jax.grad(lambda p: jnp.sum(terms(model, p, batch, None)["prior"]))(params)
    assert all(float(jnp.abs(g).max()) == 0.0 for name in ("encoder", "encoder_out")
               for g in jax.tree.leaves(grads[name]))
    assert float(optax_norm(grads["prior"])) > 0


def optax_norm(tree):
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def _two_skills(tmp_path, episodes=40, length=10):
    """Episodes whose actions ramp up (on white images) or down (on black ones), plus
    noise: the skill a window holds is told by its first image. Returns the dataset and
    the actions (episodes, length, 2)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(-0.6, 0.6, length)[:, None] * np.ones(2)
    up = np.arange(episodes) % 2 == 1
    plans = np.where(up[:, None, None], ramp, -ramp) + 0.03 * rng.normal(size=(episodes,
                                                                               length, 2))
    images = np.repeat(np.where(up, 255, 0).astype(np.uint8), length)
    images = np.broadcast_to(images[:, None, None, None], (episodes * length, 8, 8, 3))
    write_frames_dataset(str(tmp_path / "data"), np.ascontiguousarray(images),
                         plans.reshape(-1, 2), length)
    return str(tmp_path / "data"), plans.astype(np.float32)


def test_windows_come_with_their_first_image(tmp_path):
    data, plans = _two_skills(tmp_path)
    config = pretrain_config.get_config("spirl,tiny")
    sampling = pretrain.LatentModel.sampling(config)
    assert sampling == {"window": 5, "images": "first"}
    dataset = load_dataset([data])
    sampler = BatchSampler(dataset, 16, 0, **sampling)
    batch = sampler.batch(0)
    assert batch["observations"].shape == (16, 8, 8, 3) and batch["actions"].shape == (16, 5, 2)
    starts = sampler.indices(0)[:, 0]
    np.testing.assert_array_equal(batch["observations"],
                                  np.asarray(dataset.observations[np.sort(starts)])[
                                      np.argsort(np.argsort(starts))])
    # a ramp-up window starts on a white image, a ramp-down one on a black image
    rising = batch["actions"][:, -1, 0] > batch["actions"][:, 0, 0]
    np.testing.assert_array_equal(batch["observations"][:, 0, 0, 0] == 255, rising)
    with pytest.raises(ValueError, match="images='first'; expected True, False or 'first'"):
        BatchSampler(dataset, 16, 0, images="first")


def test_skills_and_their_prior_are_learned(tmp_path):
    data, plans = _two_skills(tmp_path)
    config = pretrain_config.get_config("spirl,tiny")
    config.dataset = data
    config.model.lstm_size = 32
    config.update(num_steps=500, learning_rate=3e-3, batch_size=32, log_every=100,
                  eval_every=250, checkpoint_every=250)
    assert int(pretrain.train_and_evaluate(config, str(tmp_path / "skills")).step) == 500
    skills = load_skills(str(tmp_path / "skills"))
    assert (skills.step, skills.horizon, skills.step_action_dim, skills.latent_dim) == \
        (500, 5, 2, 3)
    assert skills.action_dim == 10 and skills.image_shape == (8, 8, 3)
    windows = jnp.asarray(plans[:, :5])  # each episode's first skill, after its own image
    images = jnp.asarray(np.where(np.arange(len(plans)) % 2 == 1, 255, 0).astype(np.uint8)
                         [:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8))
    values = terms(skills.model, skills.params, {"actions": windows, "observations": images},
                   None)
    mean_mse = float(np.mean(np.square(windows - windows.mean(0))))
    assert float(jnp.mean(values["mse"])) < 0.2 * mean_mse, (values, mean_mse)
    # the prior learned which skill an image starts: its mean decodes to that skill
    prior = skills.model.apply({"params": skills.params}, images[:2], method="skill_prior")
    decoded = np.asarray(skills.decode(prior.mean()))
    assert decoded[0, -1, 0] < decoded[0, 0, 0] - 0.2  # black image: down
    assert decoded[1, -1, 0] > decoded[1, 0, 0] + 0.2  # white image: up
    first = load_skills(str(tmp_path / "skills"), step=250)
    early = terms(first.model, first.params, {"actions": windows, "observations": images},
                  None)
    assert 0 < float(jnp.mean(values["prior"])) < float(jnp.mean(early["prior"])) + 1.0


def test_the_closed_loop_variant_decodes_each_step_from_its_image(tmp_path):
    data, plans = _two_skills(tmp_path)
    config = pretrain_config.get_config("spirl,tiny")
    config.dataset, config.model.closed_loop = data, True
    sampling = pretrain.LatentModel.sampling(config)
    assert sampling == {"window": 5, "images": True}  # every image of the window
    config.update(num_steps=40, log_every=20, eval_every=20, checkpoint_every=20)
    assert int(pretrain.train_and_evaluate(config, str(tmp_path / "cl")).step) == 40
    skills = load_skills(str(tmp_path / "cl"))
    assert skills.model.closed_loop and skills.action_dim == skills.latent_dim == 3
    assert "step_decoder" in skills.params and "decoder" not in skills.params
    images = np.random.default_rng(0).integers(0, 255, (2, 5, 8, 8, 3), dtype=np.uint8)
    z = jnp.asarray([[0.5, -1.0, 2.0], [-0.3, 0.1, 0.0]])
    window = np.asarray(skills.decode(z, images))
    assert window.shape == (2, 5, 2)
    # the env workers' decoder: one step from one image, equal to the window's step
    decoder = step_decoder(skills)
    for t in (0, 3):
        np.testing.assert_allclose(decoder(np.asarray(z[1]), images[1, t]), window[1, t],
                                   atol=1e-6)
    # the image matters: the same z, another image, another action
    assert np.abs(window[0, 0] - np.asarray(skills.decode(z, images[:, ::-1]))[0, 0]).max() > 0
    with pytest.raises(ValueError, match="an open-loop skill model has no per-step decoder"):
        step_decoder(load_skills(write_initial_skills(
            str(tmp_path / "open"), {"horizon": 5, "latent_dim": 3, "lstm_size": 8,
                                     "prior_hidden": (8,), "prior_channels": (4,)},
            action_dim=2, image_shape=(8, 8, 3))))


def test_errors_are_named(tmp_path):
    data, _ = _two_skills(tmp_path, episodes=4)
    config = pretrain_config.get_config("spirl,tiny")
    config.dataset, config.model.horizon = data, 12  # longer than the 10-step episodes
    with pytest.raises(ValueError, match="no episode is at least window=12 frames long "
                                         r"\(the longest has 10\)"):
        pretrain.train_and_evaluate(config, str(tmp_path / "long"))
    config.model.horizon, config.model.lstm_size = 5, 0
    with pytest.raises(ValueError, match="config.model.lstm_size=0; expected a positive"):
        pretrain.train_and_evaluate(config, str(tmp_path / "zero"))
    with pytest.raises(FileNotFoundError, match="no pretrained SPiRL skill model here"):
        load_skills(str(tmp_path / "missing"))
    traj = write_initial_trajvae(str(tmp_path / "traj"), {"horizon": 5, "encoder_hidden": (8,),
                                                          "decoder_hidden": (8,)})
    with pytest.raises(ValueError, match="holds a 'trajvae' run, not a SPiRL skill model"):
        load_skills(traj)
    skills = write_initial_skills(str(tmp_path / "initial"), {
        "horizon": 5, "latent_dim": 3, "lstm_size": 8, "prior_hidden": (8,),
        "prior_channels": (4,)})
    assert load_skills(skills).horizon == 5 and load_skills(skills).prior_params is not None
