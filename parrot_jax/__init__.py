"""parrot_jax: PARROT behavioral priors for reinforcement learning, in JAX."""

import warnings as _warnings

from parrot_jax import host_memory as _host_memory

__version__ = "0.1.0"

# Before JAX starts its CPU backend: XLA:CPU's per-call buffers reuse freed heap memory
# instead of fresh pages (parrot_jax/host_memory.py; $PARROT_JAX_MALLOC=system opts out).
# A bad value warns rather than failing every import (binaries could not report it).
try:
    _host_memory.configure()
except ValueError as _error:
    _warnings.warn(f"{_error}; glibc's allocator defaults kept", stacklevel=2)
