"""Prior training: learning, exact resume, device and dispatch invariance, failure modes."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import prior as prior_config
from parrot_jax import checkpoint, io, metrics
from parrot_jax.data import DatasetError, load_dataset
from parrot_jax.data.sampling import BatchSampler
from parrot_jax.data.synthetic import write_frames_dataset, write_synthetic_dataset
from parrot_jax.flows import run_config, train, train_state
from parrot_jax.flows.prior import init_params, load_prior, make_flow


def _config(dataset, **overrides):
    config = prior_config.get_config("tiny")
    config.dataset = str(dataset)
    config.update(overrides)
    return config


def _params(state):
    return jax.tree.map(np.asarray, state.params)


def _rows(workdir):
    return {r["step"]: r for r in metrics.read_jsonl(os.path.join(workdir, metrics.JSONL))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    write_synthetic_dataset(str(path), num_episodes=40, episodes_per_shard=20)
    return path


@pytest.fixture(scope="module")
def straight(dataset, tmp_path_factory):
    """20 uninterrupted steps on every device (4 in the multi_device pass), checkpoints at
    10 and 20."""
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, train.train_and_evaluate(_config(dataset), workdir)


def test_training_lowers_the_validation_nll(straight):
    workdir, state = straight
    rows = _rows(workdir)
    assert int(state.step) == 20 and sorted(rows) == [0, 10, 20]
    assert rows[20]["eval/nll"] < rows[0]["eval/nll"] - 0.3
    assert rows[20]["train/loss"] < rows[10]["train/loss"]
    assert np.isfinite(rows[20]["train/steps_per_sec"])


def test_first_loss_is_that_of_tanh_of_a_standard_normal(dataset, tmp_path):
    config = _config(dataset, num_steps=1, log_every=1, eval_every=1, checkpoint_every=1)
    train.train_and_evaluate(config, str(tmp_path))
    train_set, _ = load_dataset(str(dataset)).split(config.validation_fraction, config.seed)
    a = BatchSampler(train_set, config.batch_size, config.seed).batch(0)["actions"]
    u = np.arctanh(a.astype(np.float64))
    # Identity flow at init: log p(a) = sum log N(atanh a; 0, 1) - sum log(1 - a^2).
    log_prob = (-0.5 * u ** 2 - 0.5 * np.log(2 * np.pi) - np.log1p(-a ** 2)).sum(-1)
    np.testing.assert_allclose(_rows(str(tmp_path))[1]["train/loss"], -log_prob.mean(),
                               rtol=1e-5)


@pytest.mark.multi_device  # straight trained on every device: 4 here
def test_one_device_matches_four(dataset, straight, tmp_path):
    state = train.train_and_evaluate(_config(dataset, num_devices=1), str(tmp_path))
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
                 _params(state), _params(straight[1]))


def test_fused_steps_match_single_steps(dataset, straight, tmp_path):
    state = train.train_and_evaluate(_config(dataset, steps_per_dispatch=2), str(tmp_path))
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
                 _params(state), _params(straight[1]))
    assert sorted(_rows(str(tmp_path))) == [0, 10, 20]


@pytest.mark.fault
def test_killed_run_resumes_bit_identical(dataset, straight, tmp_path):
    workdir = str(tmp_path)
    train.train_and_evaluate(_config(dataset, num_steps=10), workdir)  # "killed" at 10
    with open(os.path.join(workdir, metrics.JSONL), "a") as f:  # logged after the checkpoint
        f.write(json.dumps({"step": 15, "train/loss": 1.0}) + "\n")
    resumed = train.train_and_evaluate(_config(dataset), workdir)
    jax.tree.map(np.testing.assert_array_equal, _params(resumed), _params(straight[1]))
    assert sorted(_rows(workdir)) == [0, 10, 20]
    assert _rows(workdir)[20]["eval/nll"] == _rows(straight[0])[20]["eval/nll"]


def test_augmented_run_differs_and_resumes_bit_identical(dataset, straight, tmp_path):
    """Random shifts draw from the state's key and step: a resumed run replays them."""
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    state = train.train_and_evaluate(_config(dataset, augment_pad=4), whole)
    train.train_and_evaluate(_config(dataset, augment_pad=4, num_steps=10), killed)
    resumed = train.train_and_evaluate(_config(dataset, augment_pad=4), killed)
    jax.tree.map(np.testing.assert_array_equal, _params(resumed), _params(state))
    different = jax.tree.map(lambda a, b: not np.allclose(a, b), _params(state),
                             _params(straight[1]))
    assert any(jax.tree.leaves(different))


def test_a_run_written_before_new_model_fields_resumes(dataset, straight, tmp_path):
    """config.json of an older version lacks fields added since (at their defaults)."""
    import shutil
    workdir = str(tmp_path / "old")
    shutil.copytree(straight[0], workdir)
    path = os.path.join(workdir, "config.json")
    saved = json.load(open(path))
    for field in ("encoder_pooled", "encoder_strides", "encoder_head", "encoder_activation",
                  "log_scale_bound", "offset_head"):
        del saved["model"][field]
    for field in ("lr_schedule", "encoder_init", "freeze_encoder"):
        del saved[field]
    io.write_json(path, saved)
    state = train.train_and_evaluate(_config(dataset, num_steps=30), workdir)
    assert int(state.step) == 30
    load_prior(workdir)


def test_cosine_schedule_decays_to_its_floor():
    optimizer = train_state.make_optimizer(1e-2, decay_steps=10, final_lr_fraction=0.1)
    params = {"w": jnp.zeros(())}
    state = optimizer.init(params)
    steps = []
    for _ in range(12):  # Adam's first steps move by about lr * sign(grad)
        updates, state = optimizer.update({"w": jnp.ones(())}, state, params)
        steps.append(-float(updates["w"]))
    assert steps[0] == pytest.approx(1e-2, rel=1e-3)
    assert steps[5] == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi / 2))),
                                     rel=1e-3)
    assert steps[10] == pytest.approx(1e-3, rel=1e-3) and steps[11] == pytest.approx(1e-3,
                                                                                     rel=1e-3)
    with pytest.raises(ValueError, match="final_lr_fraction=0"):
        train_state.make_optimizer(1e-2, decay_steps=10, final_lr_fraction=0.0)


def test_schedule_is_part_of_the_run(dataset, straight):
    with pytest.raises(ValueError, match=r"lr_schedule: workdir has 'constant', config has "
                                         r"'cosine'"):
        train.train_and_evaluate(_config(dataset, lr_schedule="cosine"), straight[0])


def test_rerunning_a_finished_run_does_nothing(dataset, straight):
    workdir, state = straight
    before = open(os.path.join(workdir, metrics.JSONL)).read()
    again = train.train_and_evaluate(_config(dataset), workdir)
    assert int(again.step) == 20 and open(os.path.join(workdir, metrics.JSONL)).read() == before
    jax.tree.map(np.testing.assert_array_equal, _params(again), _params(state))


def test_load_prior_after_training(straight):
    prior = load_prior(straight[0])
    assert prior.step == 20 and prior.action_dim == 7
    jax.tree.map(np.testing.assert_array_equal, _params(prior), _params(straight[1]))
    images = jax.random.randint(jax.random.key(0), (16, 48, 48, 3), 0, 256).astype(jnp.uint8)
    z = jax.random.normal(jax.random.key(1), (16, 7))
    np.testing.assert_allclose(prior.inverse(prior.sample(z, images), images), z, atol=1e-4)


@pytest.mark.fault
def test_nan_loss_stops_before_saving_bad_params(dataset, tmp_path, monkeypatch):
    batch = BatchSampler.batch

    def poisoned(self, k):
        out = batch(self, k)
        if k >= 13 and self.dataset.num_episodes > 2:  # training batches only
            out["actions"] = np.full_like(out["actions"], np.nan)
        return out

    monkeypatch.setattr(BatchSampler, "batch", poisoned)
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 13 .*last good "
                                                 r"checkpoint is step 10"):
        train.train_and_evaluate(_config(dataset), str(tmp_path))
    manager = checkpoint.Checkpoints(os.path.join(tmp_path, checkpoint.DIRECTORY))
    assert manager.all_steps() == [10]
    manager.close()
    prior = load_prior(str(tmp_path))
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(_params(prior)))


def test_different_model_in_the_same_workdir_is_refused(dataset, straight):
    config = _config(dataset)
    config.model.hidden = (16, 16)
    with pytest.raises(ValueError, match=r"holds a different training run \(model: .*"
                                         r"'hidden': \[32, 32\]"):
        train.train_and_evaluate(config, straight[0])
    with pytest.raises(ValueError, match=r"validation_fraction: workdir has 0.05"):
        train.train_and_evaluate(_config(dataset, validation_fraction=0.1), straight[0])


def test_missing_dataset(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset directory"):
        train.train_and_evaluate(_config(tmp_path / "nowhere"), str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"config.dataset=''"):
        train.train_and_evaluate(_config(""), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_max_episodes_trains_on_a_prefix(dataset, tmp_path):
    state = train.train_and_evaluate(_config(dataset, max_episodes=20, num_steps=10),
                                     str(tmp_path / "prefix"))
    assert int(state.step) == 10
    with open(tmp_path / "prefix" / "config.json") as f:
        data = json.load(f)["data"]
    full = load_dataset(str(dataset))
    assert data["num_episodes"] == 20
    assert data["num_steps"] == int(full.episode_lengths[:20].sum())
    prefix = run_config.first_episodes(full, 20)
    np.testing.assert_array_equal(prefix.actions, full.actions[:data["num_steps"]])
    assert run_config.first_episodes(full, 0) is full
    for bad in (-1, 41):
        with pytest.raises(ValueError, match=rf"config.max_episodes={bad}; expected 0 \(all\) "
                                             r"or at most the dataset's 40 episodes"):
            train.train_and_evaluate(_config(dataset, max_episodes=bad), str(tmp_path / "bad"))


def test_bad_settings_are_named(dataset, tmp_path):
    with pytest.raises(ValueError, match=r"config.log_every=10 is not a multiple of "
                                         r"config.steps_per_dispatch=4"):
        train.train_and_evaluate(_config(dataset, steps_per_dispatch=4), str(tmp_path))
    with pytest.raises(ValueError, match=r"config.lr_schedule='linear'; expected one of"):
        train.train_and_evaluate(_config(dataset, lr_schedule="linear"), str(tmp_path))
    with pytest.raises(ValueError, match=r"config.augment_pad=-1; expected >= 0"):
        train.train_and_evaluate(_config(dataset, augment_pad=-1), str(tmp_path))


@pytest.mark.multi_device
def test_a_batch_the_devices_cannot_split_is_named(dataset, tmp_path):
    with pytest.raises(ValueError, match="batch_size=30 must be a positive multiple of 4"):
        train.train_and_evaluate(_config(dataset, batch_size=30), str(tmp_path))


def test_actions_depend_on_the_image_after_training(tmp_path):
    # Black-image episodes act near +0.5, white-image episodes near -0.5.
    rng = np.random.default_rng(0)
    episodes, length = 40, 10
    white = np.repeat(np.arange(episodes) % 2, length)
    observations = np.broadcast_to((255 * white)[:, None, None, None].astype(np.uint8),
                                   (episodes * length, 48, 48, 3)).copy()
    actions = (0.5 - white)[:, None] + 0.1 * rng.normal(size=(episodes * length, 7))
    write_frames_dataset(str(tmp_path / "data"), observations, actions, length)
    config = _config(tmp_path / "data", num_steps=150, log_every=50, eval_every=50,
                     checkpoint_every=150)
    train.train_and_evaluate(config, str(tmp_path / "run"))
    prior = load_prior(str(tmp_path / "run"))
    z = jax.random.normal(jax.random.key(0), (256, 7))
    means = [float(prior.sample(z, jnp.full((256, 48, 48, 3), v, jnp.uint8)).mean())
             for v in (0, 255)]
    assert means[0] > 0.3 and means[1] < -0.3, means


def test_offset_loss_is_the_nll_plus_the_weighted_huber_loss_in_cm():
    config = prior_config.get_config("tiny")
    flow = make_flow({**config.model.to_dict(), "action_dim": 7, "offset_head": True})
    params = init_params(flow, jax.random.key(0))
    rng = np.random.default_rng(0)
    batch = {"observations": jnp.asarray(rng.integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)),
             "actions": jnp.asarray(rng.uniform(-0.9, 0.9, (5, 7)), jnp.float32),
             "object_offsets": jnp.asarray(rng.uniform(-0.1, 0.1, (5, 3)), jnp.float32)}
    log_prob, offsets = flow.apply({"params": params}, batch["actions"],
                                   batch["observations"], method="log_prob_and_offsets")
    errors = 100 * np.asarray(offsets - batch["object_offsets"])  # cm
    huber = np.where(np.abs(errors) <= 1, 0.5 * errors ** 2, np.abs(errors) - 0.5).mean()
    loss, metrics = train_state.loss_fn(params, flow, batch, 0.999999, offset_weight=0.5)
    np.testing.assert_allclose(loss, -np.mean(log_prob) + 0.5 * huber, rtol=1e-5)
    np.testing.assert_allclose(metrics["offset_error_cm"], np.abs(errors).mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["nll"], -np.mean(log_prob), rtol=1e-5)
    # The head reads the image and nothing else: sampling is the flow's without it.
    plain = make_flow({**config.model.to_dict(), "action_dim": 7})
    without_head = {k: v for k, v in params.items() if k != "offset_readout"}
    z = jnp.asarray(rng.normal(size=(5, 7)), jnp.float32)
    np.testing.assert_array_equal(
        flow.apply({"params": params}, z, batch["observations"], method="sample"),
        plain.apply({"params": without_head}, z, batch["observations"], method="sample"))
    with pytest.raises(ValueError, match="no offset head; build it with offset_head=True"):
        plain.apply({"params": without_head}, batch["actions"], batch["observations"],
                    method="log_prob_and_offsets")


def test_offset_head_learns_the_offsets_the_images_show(tmp_path):
    # Each episode's images are one grey level; its offsets are a linear function of it.
    rng = np.random.default_rng(0)
    episodes, length = 40, 10
    level = np.repeat(rng.uniform(0, 1, episodes), length)
    observations = np.broadcast_to((255 * level)[:, None, None, None].astype(np.uint8),
                                   (episodes * length, 48, 48, 3)).copy()
    offsets = np.stack([0.1 * level - 0.05, 0.05 - 0.1 * level, 0.02 + 0 * level], axis=1)
    actions = 0.1 * rng.normal(size=(episodes * length, 7))
    write_frames_dataset(str(tmp_path / "data"), observations, actions, length, offsets)
    config = _config(tmp_path / "data", num_steps=200, log_every=50, eval_every=50,
                     checkpoint_every=200)
    config.model.offset_head = True
    train.train_and_evaluate(config, str(tmp_path / "run"))
    rows = _rows(str(tmp_path / "run"))
    assert rows[200]["eval/offset_error_cm"] < 0.3 * rows[0]["eval/offset_error_cm"], rows
    assert rows[200]["eval/nll"] < rows[0]["eval/nll"]
    assert np.isfinite(rows[200]["train/offset_loss"])
    prior = load_prior(str(tmp_path / "run"))
    assert prior.flow.offset_head
    assert prior.sample(jnp.zeros((2, 7)), jnp.zeros((2, 48, 48, 3), jnp.uint8)).shape == (2, 7)


def test_offset_head_needs_a_dataset_with_offsets(dataset, tmp_path):
    config = _config(dataset)
    config.model.offset_head = True
    with pytest.raises(ValueError, match=r"offset_head=True needs the object offsets, but the "
                                         r"dataset .* does not store them"):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"config.offset_loss_weight=-1.0; expected a number"):
        train.train_and_evaluate(_config(dataset, offset_loss_weight=-1.0), str(tmp_path))


def test_fit_reaches_the_entropy_of_a_two_d_conditional_density():
    """a = tanh(u), u ~ N(mu_c, Sigma_c) for a black (c=0) or white (c=1) image. Its
    entropy is H(u | c) + E[sum_j log(1 - a_j^2)]; the fitted NLL on fresh samples is the
    cross-entropy H + KL, so it should come within a little of H."""
    mus = jnp.array([[0.4, -0.3], [-0.5, 0.2]])
    chols = jnp.linalg.cholesky(jnp.array([[[0.25, 0.1], [0.1, 0.16]],
                                           [[0.16, -0.08], [-0.08, 0.36]]]))

    def draw(key, n):
        kc, kz = jax.random.split(key)
        c = jax.random.bernoulli(kc, 0.5, (n,)).astype(jnp.int32)
        u = mus[c] + jnp.einsum("nij,nj->ni", chols[c], jax.random.normal(kz, (n, 2)))
        images = jnp.broadcast_to((255 * c)[:, None, None, None], (n, 8, 8, 3))
        return {"observations": images.astype(jnp.uint8), "actions": jnp.tanh(u)}, u

    _, u = draw(jax.random.key(1), 400_000)
    gaussian = jnp.mean(jnp.sum(jnp.log(jnp.diagonal(chols, axis1=1, axis2=2)), -1)) + \
        jnp.log(2 * jnp.pi * jnp.e)
    entropy = float(gaussian + jnp.mean(jnp.sum(jnp.log1p(-jnp.tanh(u) ** 2), -1)))

    flow = make_flow(dict(action_dim=2, num_couplings=4, hidden=(64, 64),
                          encoder_channels=(4, 4, 4), encoder_hidden=(32,), embedding=16))
    optimizer = train_state.make_optimizer(3e-3)
    state = jax.jit(train_state.create_train_state, static_argnums=(0, 1, 3))(
        flow, optimizer, jax.random.key(0), (8, 8, 3))
    kwargs = dict(flow=flow, optimizer=optimizer, max_abs_action=0.999999)

    @functools.partial(jax.jit, donate_argnums=0)
    def fit(state, key):
        batches, _ = draw(key, 100 * 256)
        batches = jax.tree.map(lambda x: x.reshape((100, 256) + x.shape[1:]), batches)
        return train_state.train_steps(state, batches, **kwargs)[0]

    for key in jax.random.split(jax.random.key(2), 4):  # 400 steps
        state = fit(state, key)
    fresh, _ = draw(jax.random.key(3), 50_000)
    nll = -float(flow.apply({"params": state.params}, fresh["actions"],
                            fresh["observations"], method="log_prob").mean())
    assert entropy - 0.02 < nll < entropy + 0.1, (nll, entropy)


def test_binary_smoke(dataset, tmp_path):
    command = [sys.executable, "-m", "experiments.train_prior",
               "--config=experiments/configs/prior.py:tiny", f"--config.dataset={dataset}",
               "--config.num_steps=2", "--config.log_every=1", "--config.eval_every=2",
               "--config.checkpoint_every=2", f"--workdir={tmp_path}"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{tmp_path}: prior at step 2" in done.stdout
    assert sorted(_rows(str(tmp_path))) == [0, 1, 2] and load_prior(str(tmp_path)).step == 2


def test_cpu_recipe_trains_and_its_prior_loads(dataset, tmp_path):
    """The `:cpu` recipe (strided encoder, 8 couplings, bound 2, shifts, clipping, cosine)
    as configured, a few steps at a small batch: it runs, lowers the loss, and loads."""
    config = prior_config.get_config("cpu")
    assert config.model.num_couplings == 8 and config.lr_schedule == "cosine"
    config.dataset = str(dataset)
    config.update(num_steps=6, batch_size=8, eval_every=6, log_every=3, checkpoint_every=6,
                  eval_batches=1, progress=False)
    workdir = str(tmp_path / "cpu")
    state = train.train_and_evaluate(config, workdir)
    rows = _rows(workdir)
    assert int(state.step) == 6 and rows[6]["eval/nll"] < rows[0]["eval/nll"]
    prior = load_prior(workdir)
    assert prior.flow.num_couplings == 8 and prior.flow.log_scale_bound == 2.0
    z = jnp.zeros((2, 7))
    images = jnp.zeros((2, 48, 48, 3), jnp.uint8)
    assert prior.sample(z, images).shape == (2, 7)


TINY_ENCODER = {"channels": [4, 4, 4], "hidden": [32], "features": 16, "pooled": 2}


def _saved_encoder(directory, seed=7, **fields):
    from parrot_jax.networks import saved_encoder
    from parrot_jax.networks.encoder import ConvEncoder

    fields = {**TINY_ENCODER, **fields}
    module = ConvEncoder(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    params = module.init(jax.random.key(seed), jnp.zeros((1, 48, 48, 3), jnp.uint8))["params"]
    return saved_encoder.save_encoder(str(directory), fields, params), params


def test_a_prior_starts_from_a_saved_encoder_and_a_frozen_one_stays(dataset, tmp_path):
    directory, saved = _saved_encoder(tmp_path / "encoder")
    states = {}
    for freeze in (False, True):
        workdir = str(tmp_path / f"freeze_{freeze}")
        config = _config(dataset, encoder_init=directory, freeze_encoder=freeze, num_steps=10,
                         checkpoint_every=10)
        states[freeze] = train.train_and_evaluate(config, workdir)
    frozen, tuned = _params(states[True]), _params(states[False])
    jax.tree.map(np.testing.assert_array_equal, frozen["encoder"], saved)
    assert not np.allclose(tuned["encoder"]["fc0"]["kernel"], saved["fc0"]["kernel"])
    # the couplings learn in both
    rows = _rows(str(tmp_path / "freeze_True"))
    assert rows[10]["eval/nll"] < rows[0]["eval/nll"]
    with open(tmp_path / "freeze_True" / "config.json") as f:
        assert json.load(f)["encoder_init"] == directory
    # a finished run, rerun with another init, is refused (the init defines the run)
    with pytest.raises(ValueError, match=r"holds a different training run \(freeze_encoder"):
        train.train_and_evaluate(_config(dataset, encoder_init=directory, num_steps=10,
                                         checkpoint_every=10), str(tmp_path / "freeze_True"))


def test_the_saved_encoders_init_is_exactly_the_first_state(dataset, tmp_path):
    from parrot_jax.flows.programs import pretrained_encoder

    directory, saved = _saved_encoder(tmp_path / "encoder")
    config = _config(dataset)
    flow = make_flow({**config.model.to_dict(), "action_dim": 7})
    optimizer = train_state.make_optimizer(1e-3)
    state = train_state.create_train_state(
        flow, optimizer, jax.random.key(0), (48, 48, 3),
        pretrained_encoder(flow, directory, (48, 48, 3)))
    fresh = train_state.create_train_state(flow, optimizer, jax.random.key(0), (48, 48, 3))
    jax.tree.map(np.testing.assert_array_equal, _params(state)["encoder"], saved)
    for name in fresh.params:
        if name != "encoder":  # everything else as a fresh run's, the flow the identity
            jax.tree.map(np.testing.assert_array_equal, _params(state)[name],
                         _params(fresh)[name])


def test_frozen_random_encoder_is_a_control_that_keeps_its_init(dataset, tmp_path):
    config = _config(dataset, freeze_encoder=True, num_steps=10, checkpoint_every=10)
    state = train.train_and_evaluate(config, str(tmp_path / "run"))
    flow = make_flow({**config.model.to_dict(), "action_dim": 7})
    fresh = train_state.create_train_state(flow, train_state.make_optimizer(1e-3),
                                           jax.random.key(config.seed), (48, 48, 3))
    # the jitted init rounds a few values differently from this eager one
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7),
                 _params(state)["encoder"], _params(fresh)["encoder"])
    config.unlock().num_steps = 20
    later = train.train_and_evaluate(config, str(tmp_path / "run"))  # resumed at 10
    jax.tree.map(np.testing.assert_array_equal, _params(later)["encoder"],
                 _params(state)["encoder"])
    assert not np.allclose(_params(later)["conditioners_0"]["out"]["kernel"],
                           _params(state)["conditioners_0"]["out"]["kernel"])  # still learning


def test_a_saved_encoder_of_another_architecture_is_refused_before_training(dataset, tmp_path):
    directory, _ = _saved_encoder(tmp_path / "encoder", channels=[8, 8, 8])
    with pytest.raises(ValueError, match=r"is not the one this model builds: channels is "
                                         r"\[8, 8, 8\] there, \[4, 4, 4\] here"):
        train.train_and_evaluate(_config(dataset, encoder_init=directory), str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match=r"no pretrained ConvEncoder here"):
        train.train_and_evaluate(_config(dataset, encoder_init=str(tmp_path / "nowhere")),
                                 str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
