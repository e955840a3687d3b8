"""parrot_jax: PARROT behavioral priors for reinforcement learning, in JAX."""

from parrot_jax import host_memory as _host_memory

__version__ = "0.1.0"

# Before JAX starts its CPU backend: XLA:CPU's per-call buffers reuse freed heap memory
# instead of fresh pages (parrot_jax/host_memory.py; $PARROT_JAX_MALLOC=system opts out).
_host_memory.configure()
