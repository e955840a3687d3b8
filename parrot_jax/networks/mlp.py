"""Multi-layer perceptron with ReLU hidden layers and an optionally zero-initialised output."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
    hidden: Sequence[int]
    features: int
    zero_init_output: bool = False  # a zero last layer makes the module output 0 at init

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i, h in enumerate(self.hidden):
            x = nn.relu(nn.Dense(h, name=f"hidden{i}")(x))
        init = nn.initializers.zeros if self.zero_init_output else nn.linear.default_kernel_init
        return nn.Dense(self.features, kernel_init=init, name="out")(x)
