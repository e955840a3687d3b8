"""The VAE of VAE-features: shapes, learning a tiny dataset, the binary, resume, errors."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import pretrain as pretrain_config
from parrot_jax import metrics
from parrot_jax.data.synthetic import write_frames_dataset, write_synthetic_dataset
from parrot_jax.flows import train_state
from parrot_jax.pretrained import train as pretrain, vae as vae_model
from parrot_jax.pretrained.vae import features_encoder, init_params, load_vae, make_vae
from tests.flows.prior_workdir import write_prior

MODEL = {"channels": 8, "num_residual": 1, "latent_dim": 8}


def test_shapes_on_the_suite_images():
    vae = make_vae({"channels": 4, "num_residual": 2, "latent_dim": 64}, (48, 48, 3))
    params = init_params(vae, jax.random.key(0))
    images = jnp.zeros((5, 48, 48, 3), jnp.uint8)
    reconstruction, mean, log_std = vae.apply({"params": params}, images, jax.random.key(1))
    assert reconstruction.shape == (5, 48, 48, 3) and mean.shape == log_std.shape == (5, 64)
    # 48 -> 24 -> 12: the encoder's last map is 12 x 12 x channels
    assert params["encoder"]["out"]["kernel"].shape == (12 * 12 * 4, 2 * 64)
    # the RL features are mu(s), from the same parameters
    features = features_encoder(vae).apply({"params": params["encoder"]}, images)
    np.testing.assert_array_equal(features, mean)
    with pytest.raises(ValueError, match="multiples of 4"):
        init_params(make_vae(MODEL, (50, 50, 3)), jax.random.key(0))
    with pytest.raises(ValueError, match=r"unknown VAE model config fields \['depth'\]"):
        make_vae({"depth": 3}, (48, 48, 3))


def _squares(n, seed=0):
    """Gray images with a bright 12 x 12 square at a random place: a dataset whose images
    differ in a few numbers (the square's corner), so a small VAE can learn it."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 48, 48, 3), 60, np.uint8)
    for image, (y, x) in zip(images, rng.integers(0, 36, (n, 2))):
        image[y:y + 12, x:x + 12] = (250, 200, 40)
    return images


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("squares"))
    images = _squares(400)
    write_frames_dataset(path, images, np.zeros((400, 7), np.float32), episode_length=10)
    return path, images


def _config(dataset, **overrides):
    config = pretrain_config.get_config("vae,tiny")
    config.dataset = dataset
    config.model.update(MODEL)
    config.update(overrides)
    return config


def test_the_vae_reconstructs_better_than_the_mean_image(squares, tmp_path):
    dataset, images = squares
    config = _config(dataset, num_steps=300, batch_size=32, log_every=100, eval_every=100,
                     checkpoint_every=100, eval_batches=2, in_memory=True,
                     fast_compile=False)  # 300 steps: XLA's optimisations repay their compile
    state = pretrain.train_and_evaluate(config, str(tmp_path))
    assert int(state.step) == 300
    rows = [r for r in metrics.read_jsonl(os.path.join(tmp_path, metrics.JSONL))
            if "eval/mse" in r]
    assert [r["step"] for r in rows] == [0, 100, 200, 300]
    vae = load_vae(str(tmp_path))
    assert vae.step == 300 and vae.image_shape == (48, 48, 3)
    held_out = _squares(200, seed=1)
    pixels = held_out.astype(np.float32) / 255
    mse = float(np.mean(np.square(np.asarray(vae.reconstruct(held_out)) - pixels)))
    mean_image_mse = float(np.mean(np.square(pixels - images.astype(np.float32).mean(0) / 255)))
    assert mse < 0.7 * mean_image_mse, (mse, mean_image_mse)
    assert rows[-1]["eval/mse"] < 0.7 * rows[0]["eval/mse"]
    assert rows[-1]["eval/kl"] > 0.1  # the posterior carries information about the image
    assert vae.features(held_out).shape == (200, 8)


def test_a_resumed_run_equals_an_uninterrupted_one(squares, tmp_path):
    dataset, _ = squares
    full = pretrain.train_and_evaluate(_config(dataset), str(tmp_path / "full"))
    pretrain.train_and_evaluate(_config(dataset, num_steps=10), str(tmp_path / "split"))
    resumed = pretrain.train_and_evaluate(_config(dataset), str(tmp_path / "split"))
    assert int(resumed.step) == int(full.step) == 20
    jax.tree.map(np.testing.assert_array_equal, resumed.params, full.params)
    # a finished run does nothing; another model in the same workdir is refused
    assert int(pretrain.train_and_evaluate(_config(dataset), str(tmp_path / "full")).step) == 20
    other = _config(dataset)
    other.model.latent_dim = 16
    with pytest.raises(ValueError, match="holds a different training run.*model"):
        pretrain.train_and_evaluate(other, str(tmp_path / "full"))


def test_the_annealed_kl_weight_is_applied(squares):
    dataset, _ = squares
    vae = make_vae(MODEL, (48, 48, 3))
    optimizer = train_state.make_optimizer(1e-3)
    state = pretrain.create_train_state(vae, vae_model.init_params, optimizer,
                                        jax.random.key(0))
    batch = {"observations": jnp.asarray(_squares(8))}
    step = jax.jit(functools.partial(pretrain.train_step, model=vae, terms=vae_model.terms,
                                     optimizer=optimizer, beta=(2.0, 0.0, 1.0)))
    _, metrics_row = step(state, batch)
    np.testing.assert_allclose(metrics_row["beta"], 1.0)  # 2 * sigmoid(0)
    np.testing.assert_allclose(metrics_row["loss"],
                               metrics_row["recon"] + 1.0 * metrics_row["kl"], rtol=1e-5)


def test_bad_input_is_named(squares, tmp_path):
    dataset, _ = squares
    with pytest.raises(ValueError, match="config.model.latent_dim=0; expected a positive"):
        pretrain.train_and_evaluate(_config(dataset, model=dict(MODEL, latent_dim=0)),
                                     str(tmp_path / "a"))
    with pytest.raises(ValueError, match="config.beta.value=-1.0"):
        pretrain.train_and_evaluate(_config(dataset, beta=dict(value=-1.0, midpoint=0.0,
                                                                 width=0.0)),
                                     str(tmp_path / "b"))
    with pytest.raises(ValueError, match="missing: no such dataset directory"):
        pretrain.train_and_evaluate(_config(str(tmp_path / "missing")), str(tmp_path / "c"))
    with pytest.raises(FileNotFoundError, match="no pretrained VAE here"):
        load_vae(str(tmp_path / "missing"))
    prior = write_prior(tmp_path / "prior")
    with pytest.raises(ValueError, match="holds a 'flow prior' run, not a VAE"):
        load_vae(str(prior))
    with pytest.raises(ValueError, match="unknown pretrain config variant 'gan'"):
        pretrain_config.get_config("gan")
    assert not os.path.exists(tmp_path / "a" / "checkpoints")


def test_the_binary_trains_and_resumes(tmp_path):
    data = str(tmp_path / "data")
    write_synthetic_dataset(data, num_episodes=8, episodes_per_shard=8)
    command = [sys.executable, "-m", "experiments.pretrain",
               "--config=experiments/configs/pretrain.py:vae,tiny", f"--config.dataset={data}",
               f"--workdir={tmp_path / 'vae'}"]
    out = subprocess.run(command + ["--config.num_steps=10"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(command, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "vae at step 20" in out.stdout
    with open(tmp_path / "vae" / "config.json") as f:
        assert json.load(f)["kind"] == vae_model.KIND
    bad = subprocess.run(command[:-1] + [f"--workdir={tmp_path / 'bad'}",
                                         "--config.dataset=/nonexistent"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
