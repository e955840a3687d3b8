"""parrot_jax: PARROT behavioral priors for reinforcement learning, in JAX."""

__version__ = "0.1.0"
