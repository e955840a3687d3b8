"""PyTorch reference implementations of our flow prior and SAC update, for benchmarks.

``flow``: the image-conditioned real NVP and its maximum-likelihood Adam step;
``sac``: SAC from images (or vectors). Both mirror the JAX code's architecture and math
exactly and load its parameters, so that JAX and PyTorch are timed on the same work.
Only ``benchmarks/`` and the tests import torch; ``parrot_jax`` never does.
"""
