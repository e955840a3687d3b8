"""The latent-variable losses: Gaussian KL against closed forms, the beta schedule."""

import distrax
import jax.numpy as jnp
import numpy as np
import pytest

from parrot_jax.pretrained.losses import beta_schedule, gaussian_kl


def test_kl_to_the_standard_normal_by_hand():
    # one dimension, mu = 1, sigma = 2: (1 + 4) / 2 - log 2 - 1/2 = 2 - log 2
    np.testing.assert_allclose(gaussian_kl(jnp.array([1.0]), jnp.log(jnp.array([2.0]))),
                               2.0 - np.log(2.0), rtol=1e-6)
    # N(0, I) to itself: 0
    assert float(gaussian_kl(jnp.zeros(5), jnp.zeros(5))) == 0.0


def test_kl_between_two_gaussians_matches_distrax():
    rng = np.random.default_rng(0)
    m1, m2, s1, s2 = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(4))
    expected = distrax.MultivariateNormalDiag(m1, np.exp(s1)).kl_divergence(
        distrax.MultivariateNormalDiag(m2, np.exp(s2)))
    np.testing.assert_allclose(gaussian_kl(m1, s1, m2, s2), expected, rtol=1e-5, atol=1e-5)
    assert gaussian_kl(m1, s1, m2, s2).shape == (4,)


def test_beta_schedule_values():
    assert float(beta_schedule(123, 0.5)) == 0.5  # width 0: constant
    # the PARROT paper's TrajVAE anneal: beta* / 2 at 25K updates, width 2,500 (assumed)
    np.testing.assert_allclose(beta_schedule(25_000, 1e-3, 25_000, 2_500), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(beta_schedule(0, 1e-3, 25_000, 2_500),
                               1e-3 / (1 + np.exp(10.0)), rtol=1e-5)
    np.testing.assert_allclose(beta_schedule(100_000, 1e-3, 25_000, 2_500), 1e-3, rtol=1e-6)
    values = [float(beta_schedule(t, 1.0, 50, 10)) for t in range(0, 200, 10)]
    assert values == sorted(values)  # rises monotonically
    with pytest.raises(ValueError, match="width=-1"):
        beta_schedule(0, 1.0, 0, -1)
