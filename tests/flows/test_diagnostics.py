"""Density diagnostics: the estimator's math, the data floor, and a fit on a known prior."""

import dataclasses

import jax
import numpy as np
import pytest
from scipy import stats

from parrot_jax.flows import diagnostics
from parrot_jax.flows.prior import load_prior
from tests.flows.prior_workdir import write_prior

def test_gaussian_floor():
    assert diagnostics.gaussian_nll_floor(0.1) == pytest.approx(-0.8836, abs=1e-4)
    assert diagnostics.gaussian_nll_floor(1.0) == pytest.approx(1.4189, abs=1e-4)


def test_kde_nll_is_a_gaussian_mixture():
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(3, 5, 2))
    values = rng.normal(size=(3, 2))
    got = diagnostics.kde_nll(samples, values, 0.3)
    expected = -np.log(stats.norm.pdf(values[:, None, :], samples, 0.3).mean(axis=1))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_kde_of_the_data_approaches_the_floor():
    rng = np.random.default_rng(1)
    means = rng.uniform(-0.5, 0.5, size=(400, 3))
    actions = means + rng.normal(0, 0.1, size=means.shape)
    reference = diagnostics.data_samples(means, 0.1, 0.9, 2000, rng)
    # A narrow kernel over many samples estimates N(mu, 0.1^2) at the data: its entropy.
    nll = diagnostics.kde_nll(reference, actions, 0.02).mean()
    assert nll == pytest.approx(diagnostics.gaussian_nll_floor(0.1), abs=0.05)


def test_data_samples_are_clipped_noise_around_the_mean():
    rng = np.random.default_rng(2)
    s = diagnostics.data_samples(np.array([[0.0, 2.0]]), 0.1, 0.9, 20000, rng)
    assert s.shape == (1, 20000, 2)
    assert s[0, :, 0].std() == pytest.approx(0.1, abs=0.005)
    assert np.all(s[0, :, 1] == 0.9)  # far beyond the bound: all on it


def test_gripper_decisions_against_the_data_probabilities():
    # Two open-gripper states (scripted: close, keep) and one closed (scripted: open).
    means = np.zeros((3, 7))
    means[0, 6], means[2, 6] = -1.0, 1.0
    samples = np.zeros((3, 4, 7))
    samples[0, :3, 6] = -0.8  # the prior would close in 3 of 4 samples
    samples[2, :1, 6] = 0.8  # and open in 1 of 4
    out = diagnostics.gripper_decisions(samples, means, np.array([True, True, False]), 0.1)
    close = out["gripper open, scripted close"]
    assert close["states"] == 1 and close["prior_close"] == 0.75
    assert close["data_close"] == pytest.approx(stats.norm.cdf(5.0))
    keep = out["gripper open, scripted keep"]
    assert keep["prior_close"] == 0.0 and keep["data_close"] == pytest.approx(stats.norm.cdf(-5.0))
    assert out["gripper closed, scripted open"]["prior_open"] == 0.25
    assert "gripper closed, scripted keep" not in out


@pytest.fixture(scope="module")
def identity_prior(tmp_path_factory):
    return load_prior(write_prior(tmp_path_factory.mktemp("prior")))


def test_likelihood_of_the_identity_prior(identity_prior):
    """At init the prior is a = tanh(z): every number has a closed form."""
    rng = np.random.default_rng(3)
    n = 64
    images = rng.integers(0, 256, size=(n, 48, 48, 3), dtype=np.uint8)
    means = rng.uniform(-1.5, 1.5, size=(n, 7))
    actions = np.clip(means + rng.normal(0, 0.1, size=means.shape), -0.9, 0.9)
    gripper_open = rng.random(n) < 0.5
    fit = diagnostics.likelihood(identity_prior, images, actions, means, gripper_open, 0.1, 0.9,
                                 seed=0, num_samples=16)
    clipped = np.abs(actions) >= 0.9 - 1e-6
    np.testing.assert_allclose(fit.clipped_share, clipped.mean(0))
    u = np.arctanh(actions)
    logp = stats.norm.logpdf(u).sum(-1) - np.log1p(-actions ** 2).sum(-1)
    assert fit.joint_nll == pytest.approx(-logp.mean(), rel=1e-4)
    free = ~clipped.any(1)
    assert fit.unclipped_actions == free.sum()
    gauss = -stats.norm.logpdf(actions, means, 0.1)
    assert fit.joint_floor_unclipped == pytest.approx(gauss[free].sum(1).mean(), rel=1e-6)
    np.testing.assert_allclose(fit.floor_nll, np.nanmean(np.where(clipped, np.nan, gauss), 0))
    # z = 0 gives a = 0: its error from clip(mu) is |clip(mu)|.
    np.testing.assert_allclose(fit.prior_zero_error, np.abs(np.clip(means, -0.9, 0.9)).mean(0),
                               rtol=1e-5)
    # The identity's couplings apply no scale: none at the bound, mean |l| = 0 where moved.
    assert np.nanmax(fit.log_scale_mean_abs) == 0.0
    assert np.isnan(fit.log_scale_saturated[0, 0]) and fit.log_scale_saturated[0, 6] == 0.0
    # The data's own KDE beats an untrained prior in every dimension.
    assert np.all(fit.prior_kde_nll > fit.data_kde_nll)
    d = fit.as_dict()
    assert d["log_scale_saturated"][0][0] is None and len(d["floor_nll"]) == 7
    assert set(fit.encoder["dead_units"]) == {"conv0", "conv1", "conv2", "fc0"}
    assert fit.encoder["num_images"] == n


def test_likelihood_refuses_mismatched_inputs(identity_prior):
    images = np.zeros((2, 48, 48, 3), np.uint8)
    with pytest.raises(ValueError, match="same non-zero length, got 2, 3"):
        diagnostics.likelihood(identity_prior, images, np.zeros((3, 7)), np.zeros((2, 7)),
                               np.ones(2, bool), 0.1, 0.9)


def test_prior_samples_follow_the_identity(identity_prior):
    images = np.zeros((3, 48, 48, 3), np.uint8)
    s = diagnostics.prior_samples(identity_prior, images, 4000, jax.random.key(0))
    assert s.shape == (3, 4000, 7)
    z = np.arctanh(np.clip(s, -0.999999, 0.999999))
    assert z.std() == pytest.approx(1.0, abs=0.03) and abs(z.mean()) < 0.03
    assert not np.allclose(s[0], s[1])  # independent draws per image



def test_offset_readout_scores_the_head_per_band_against_the_mean(tmp_path):
    prior = load_prior(write_prior(str(tmp_path), offset_head=True))
    params = jax.tree.map(np.asarray, prior.params)
    readout = params["offset_readout"]
    readout["kernel"] = np.zeros_like(readout["kernel"])  # a constant head: 10 cm * bias
    readout["bias"] = np.array([0.2, -0.1, 0.0], np.float32)  # (2, -1, 0) cm
    prior = dataclasses.replace(prior, params=params)
    offsets = np.array([[0.01, 0.0, 0.0], [0.0, 0.03, 0.03], [0.1, 0.1, 0.0],
                        [0.2, 0.0, 0.1]])
    images = np.zeros((4, 48, 48, 3), np.uint8)
    bands = diagnostics.offset_readout(prior, images, offsets)
    assert [b["states"] for b in bands.values()] == [2, 1, 1]
    near = bands["within 6 cm"]
    np.testing.assert_allclose(near["head_cm"], [(1 + 2) / 2, (1 + 4) / 2, (0 + 3) / 2],
                               atol=1e-4)
    mean = 100 * offsets.mean(axis=0)  # (7.75, 3.25, 3.25) cm
    np.testing.assert_allclose(bands["15 cm or farther"]["constant_cm"],
                               np.abs(100 * offsets[3] - mean), atol=1e-6)
    with pytest.raises(ValueError, match=r"offsets have shape \(4, 2\); expected \(4, 3\)"):
        diagnostics.offset_readout(prior, images, offsets[:, :2])


def test_gripper_decisions_split_near_and_far_states():
    means = np.zeros((3, 7))
    samples = np.zeros((3, 2, 7))
    samples[2, 0, 6] = -0.9  # a stray close, far from every object
    out = diagnostics.gripper_decisions(samples, means, np.ones(3, bool), 0.1,
                                        object_distance=np.array([0.01, 0.03, 0.2]))
    assert out["gripper open, scripted keep"]["states"] == 3
    assert out["gripper open, scripted keep, within 6 cm of an object"]["prior_close"] == 0.0
    far = out["gripper open, scripted keep, farther"]
    assert far["states"] == 1 and far["prior_close"] == 0.5


def test_encoder_health_finds_dead_units(identity_prior):
    import jax.numpy as jnp
    images = np.random.default_rng(4).integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    healthy = diagnostics.encoder_health(identity_prior, images)
    assert healthy["dead_units"]["fc0"] < 1.0 and healthy["embedding_std"] > 0
    params = jax.tree.map(lambda x: x, identity_prior.params)
    fc0 = params["encoder"]["fc0"]
    params["encoder"]["fc0"] = {"kernel": jnp.zeros_like(fc0["kernel"]),
                                "bias": -jnp.ones_like(fc0["bias"])}  # every unit off
    dead = diagnostics.encoder_health(dataclasses.replace(identity_prior, params=params), images)
    assert dead["dead_units"]["fc0"] == 1.0 and dead["embedding_std"] == 0.0
    assert dead["dead_units"]["conv0"] == healthy["dead_units"]["conv0"]
