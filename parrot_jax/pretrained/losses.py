"""Losses the pretrained latent-variable models share (VAE, cVAE, skill VAE).

- ``gaussian_kl``: ``KL(N(m1, diag s1^2) || N(m2, diag s2^2))``, summed over the last axis:
  ``sum_j [log(s2_j / s1_j) + (s1_j^2 + (m1_j - m2_j)^2) / (2 s2_j^2) - 1/2]``; with the
  defaults ``m2 = 0, s2 = 1`` it is the VAE's KL to its standard normal prior,
  ``sum_j [(m_j^2 + s_j^2) / 2 - log s_j - 1/2]``.
- ``sample_latent``: the reparameterised draw ``z = mu + sigma * eps``.
- ``beta_schedule``: the KL weight at an update, ``beta(t) = beta* sigmoid((t - t_half) /
  width)``, a logistic anneal from about 0 to ``beta*`` that passes ``beta* / 2`` at
  ``t_half`` (the PARROT paper's TrajVAE: ``beta* / 2`` at 25K updates; its width is not
  given, ``../shared/BASELINES.md`` assumes 2,500); ``width = 0`` is a constant ``beta*``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gaussian_kl(mean: jax.Array, log_std: jax.Array, prior_mean=0.0,
                prior_log_std=0.0) -> jax.Array:
    """``KL(N(mean, exp(log_std)^2) || N(prior_mean, exp(prior_log_std)^2))`` per sample:
    (..., D) -> (...)."""
    variance_ratio = jnp.exp(2.0 * (log_std - prior_log_std))
    mahalanobis = jnp.square((mean - prior_mean) * jnp.exp(-prior_log_std))
    return 0.5 * jnp.sum(variance_ratio + mahalanobis - 1.0 - 2.0 * (log_std - prior_log_std),
                         axis=-1)


def sample_latent(mean: jax.Array, log_std: jax.Array, key: jax.Array | None) -> jax.Array:
    """``z = mu + sigma * eps``, ``eps ~ N(0, I)`` (the reparameterisation); ``key=None``
    gives ``z = mu`` (deterministic decoding, for validation)."""
    if key is None:
        return mean
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)


def beta_schedule(step, beta: float, midpoint: float = 0.0, width: float = 0.0) -> jax.Array:
    """The KL weight at update ``step`` (module docstring); ``width=0``: constant ``beta``."""
    if width < 0 or beta < 0:
        raise ValueError(f"beta={beta}, width={width}; expected a weight >= 0 and a width "
                         ">= 0 updates (0: constant)")
    if width == 0:
        return jnp.asarray(beta, jnp.float32)
    return beta * jax.nn.sigmoid((jnp.asarray(step, jnp.float32) - midpoint) / width)
