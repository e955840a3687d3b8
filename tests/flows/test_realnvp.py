"""The conditional real NVP: identity at init, invertibility, log-determinants, density."""

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parrot_jax.flows.prior import BehavioralPrior, init_params, make_flow
from parrot_jax.flows.realnvp import coupling_masks

SMALL = dict(action_dim=7, num_couplings=4, hidden=(32, 32), encoder_channels=(4, 4, 4),
             encoder_hidden=(32,), embedding=16)


def _perturbed(params, scale=0.1, seed=1):
    """Random non-zero conditioner outputs, so the flow is far from the identity."""
    key = jax.random.key(seed)

    def perturb(path, p):
        names = [getattr(k, "key", "") for k in path]
        if "out" not in names or not any(str(n).startswith("conditioners") for n in names):
            return p
        return p + scale * jax.random.normal(jax.random.fold_in(key, zlib.crc32(str(path).encode())),
                                             p.shape)

    # crc32, not hash(): Python salts str hashes per process, which made the flow (and
    # the numbers of the tests using it) differ from run to run
    return jax.tree_util.tree_map_with_path(perturb, params)


def _images(n, seed=0):
    return jax.random.randint(jax.random.key(seed), (n, 48, 48, 3), 0, 256).astype(jnp.uint8)


@pytest.fixture(scope="module")
def prior():
    flow = make_flow(SMALL)
    return BehavioralPrior(flow, _perturbed(init_params(flow, jax.random.key(0))))


def test_masks_alternate_halves():
    masks = coupling_masks(7, 4)
    assert masks[0].tolist() == [True] * 3 + [False] * 4 and (masks[1] == ~masks[0]).all()
    assert (masks[2] == masks[0]).all()


def test_identity_at_init():
    flow = make_flow(SMALL)
    fresh = BehavioralPrior(flow, init_params(flow, jax.random.key(0)))
    z = jax.random.normal(jax.random.key(2), (5, 7))
    np.testing.assert_allclose(fresh.sample(z, _images(5)), jnp.tanh(z), atol=1e-6)
    normal = jax.scipy.stats.norm.logpdf(z).sum(-1)
    expected = normal - jnp.log1p(-jnp.tanh(z) ** 2).sum(-1)
    np.testing.assert_allclose(fresh.log_prob(jnp.tanh(z), _images(5)), expected, rtol=1e-5)


def test_inverse_round_trip(prior):
    images = _images(64)
    a = jax.random.uniform(jax.random.key(4), (64, 7), minval=-0.95, maxval=0.95)
    np.testing.assert_allclose(prior.sample(prior.inverse(a, images), images), a, atol=1e-5)
    z = jax.random.normal(jax.random.key(3), (64, 7))
    actions = prior.sample(z, images)
    assert float(jnp.abs(actions).max()) < 1.0
    # atanh amplifies float32 rounding by 1 / (1 - a^2): compare where that is below 25.
    ok = np.asarray((jnp.abs(actions) < 0.98).all(-1))
    assert ok.sum() > 25
    np.testing.assert_allclose(prior.inverse(actions, images)[ok], z[ok], atol=1e-5)


def test_log_det_matches_jacobian(prior):
    z = jax.random.normal(jax.random.key(5), (6, 7))
    images = _images(6)
    _, log_det = prior.flow.apply({"params": prior.params}, z, images,
                                  method="forward_and_log_det")
    for i in range(6):
        def f(x, i=i):
            return prior.sample(x[None], images[i:i + 1])[0]
        sign, expected = jnp.linalg.slogdet(jax.jacfwd(f)(z[i]))
        assert sign > 0
        np.testing.assert_allclose(log_det[i], expected, rtol=1e-4, atol=1e-4)
    # Change of variables: log p(a) = log N(z) - log|det da/dz|.
    a = prior.sample(z, images)
    np.testing.assert_allclose(prior.log_prob(a, images),
                               jax.scipy.stats.norm.logpdf(z).sum(-1) - log_det, rtol=1e-4)


def test_two_d_density_integrates_to_one():
    flow = make_flow(dict(SMALL, action_dim=2))
    prior = BehavioralPrior(flow, _perturbed(init_params(flow, jax.random.key(0)), 0.2))
    n = 400  # midpoint rule on (-1, 1)^2
    grid = (jnp.arange(n) + 0.5) / n * 2 - 1
    a = jnp.stack(jnp.meshgrid(grid, grid), -1).reshape(-1, 2)
    def log_prob(params, actions, image):
        def given(module, a, s):
            embedding = module.embed(s)
            return module.distribution_given(
                jnp.broadcast_to(embedding, (a.shape[0], embedding.shape[-1]))).log_prob(a)
        return flow.apply({"params": params}, actions, image, method=given)

    for seed in (0, 1):
        density = np.exp(np.asarray(jax.jit(log_prob)(prior.params, a, _images(1, seed)),
                                    np.float64))
        assert abs(density.sum() * (2 / n) ** 2 - 1.0) < 0.005


def test_jit_matches_eager(prior):
    z = jax.random.normal(jax.random.key(6), (3, 7))
    images = _images(3)
    np.testing.assert_allclose(jax.jit(prior.sample)(z, images), prior.sample(z, images),
                               atol=1e-6)


@pytest.mark.parametrize("args, message", [
    ((jnp.zeros((2, 7)), jnp.zeros((2, 48, 48), jnp.uint8)), r"images have shape \(2, 48, 48\)"),
    ((jnp.zeros((2, 7)), jnp.zeros((2, 48, 48, 3), jnp.float32)), "images have dtype float32"),
    ((jnp.zeros((2, 6)), jnp.zeros((2, 48, 48, 3), jnp.uint8)), r"z has shape \(2, 6\)"),
    ((jnp.zeros((3, 7)), jnp.zeros((2, 48, 48, 3), jnp.uint8)), r"z has shape \(3, 7\)"),
])
def test_bad_inputs(prior, args, message):
    with pytest.raises(ValueError, match=message):
        prior.sample(*args)


def test_unknown_model_field():
    with pytest.raises(ValueError, match=r"unknown model config fields \['layers'\]"):
        make_flow({"layers": 3})


def test_coupling_log_scales_sum_to_the_log_det(prior):
    z = jax.random.normal(jax.random.key(7), (8, 7))
    images = _images(8)
    a, log_det = prior.flow.apply({"params": prior.params}, z, images,
                                  method="forward_and_log_det")
    scales = prior.flow.apply({"params": prior.params}, a, images,
                              method="coupling_log_scales")
    assert scales.shape == (8, 4, 7)
    # A coupling never scales the half it passes through.
    for k, mask in enumerate(coupling_masks(7, 4)):
        assert float(jnp.abs(scales[:, k][:, mask]).max()) == 0.0
    assert float(jnp.abs(scales).max()) <= 1.0 and float(jnp.abs(scales).max()) > 0.01
    # log|det da/dz| = sum of the couplings' log-scales + the tanh's log-derivative.
    tanh_log_det = jnp.log1p(-a ** 2).sum(-1)
    np.testing.assert_allclose(scales.sum((1, 2)) + tanh_log_det, log_det, rtol=1e-4,
                               atol=1e-4)


def test_sample_given_matches_sample(prior):
    z = jax.random.normal(jax.random.key(8), (4, 7))
    images = _images(4)
    embedding = prior.flow.apply({"params": prior.params}, images, method="embed")
    given = prior.flow.apply({"params": prior.params}, z, embedding, method="sample_given")
    np.testing.assert_allclose(given, prior.sample(z, images), atol=1e-6)
