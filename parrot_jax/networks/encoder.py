"""The paper's image encoder psi: 48x48 RGB uint8 image -> conditioning vector.

Three 3x3 convolutions of 16 channels (stride 1, 'SAME' padding, ReLU), a 2x2 max-pool
after the first two (48 -> 24 -> 12), flatten (12 * 12 * 16 = 2304), then fully
connected layers 1024 -> 512 -> 256 (ReLU between, linear output). Images arrive as
uint8 and are scaled to [0, 1] on the device, so only bytes cross the host boundary.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from parrot_jax.networks import conv

HEADS = ("flatten", "keypoints")
ACTIVATIONS = {"relu": nn.relu, "elu": nn.elu}


class ConvEncoder(nn.Module):
    channels: Sequence[int] = (16, 16, 16)
    pooled: int = 2  # max-pool after this many of the first convolutions
    hidden: Sequence[int] = (1024, 512)
    features: int = 256
    strides: Sequence[int] | None = None  # per convolution; None: all 1 (the paper)
    # What the fully connected layers read: "flatten", every position of the last feature
    # map (the paper), or "keypoints", its spatial softmax (:func:`spatial_softmax`, two
    # coordinates per channel) beside each channel's maximum (whether the feature is seen).
    head: str = "flatten"
    # The fully connected layers' activation: "relu" (the paper) or "elu", which has no
    # dead units (with a high learning rate most ReLU units there stop firing for good).
    activation: str = "relu"

    @nn.compact
    def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
        """images (..., H, W, C) uint8 or float in [0, 1] -> (..., features) float32."""
        if self.head not in HEADS:
            raise ValueError(f"encoder head {self.head!r}; expected one of {HEADS}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"encoder activation {self.activation!r}; expected one of "
                             f"{tuple(ACTIVATIONS)}")
        activation = ACTIVATIONS[self.activation]
        maps = conv_maps(images, self.channels, self.pooled, self.strides)
        batch = maps.shape[:-3]
        maps = maps.reshape((-1,) + maps.shape[-3:])
        if self.head == "keypoints":
            temperature = jnp.exp(self.param("log_temperature", nn.initializers.zeros, ()))
            x = jnp.concatenate([spatial_softmax(maps, temperature), maps.max(axis=(1, 2))],
                                axis=-1)
        else:
            x = maps.reshape(maps.shape[0], -1)
        for i, h in enumerate(self.hidden):
            x = activation(nn.Dense(h, name=f"fc{i}")(x))
        x = nn.Dense(self.features, name="out")(x)
        return x.reshape(batch + (self.features,))


def spatial_softmax(maps: jnp.ndarray, temperature: jnp.ndarray) -> jnp.ndarray:
    """Expected image coordinates of each channel: (B, H, W, C) -> (B, 2C).

    ``p_c(i, j) = softmax_ij(maps[:, i, j, c] / temperature)``; the outputs are
    ``sum_ij p_c(i, j) x_j`` and ``sum_ij p_c(i, j) y_i`` with x and y spanning [-1, 1]
    (Levine et al. 2016's keypoints): where each feature is, as two numbers per channel,
    which a few fully connected layers map to positions far more readily than a flattened
    map.
    """
    b, h, w, c = maps.shape
    probs = jax.nn.softmax((maps / temperature).reshape(b, h * w, c), axis=1).reshape(b, h, w, c)
    xs, ys = jnp.linspace(-1.0, 1.0, w), jnp.linspace(-1.0, 1.0, h)
    return jnp.concatenate([jnp.einsum("bhwc,w->bc", probs, xs),
                            jnp.einsum("bhwc,h->bc", probs, ys)], axis=-1)


def conv_features(images: jnp.ndarray, channels: Sequence[int], pooled: int,
                  strides: Sequence[int] | None = None, dtype=jnp.float32) -> jnp.ndarray:
    """The convolutions, flattened: (..., H, W, C) -> (..., H' W' channels[-1]) (see
    :func:`conv_maps`)."""
    maps = conv_maps(images, channels, pooled, strides, dtype)
    return maps.reshape(maps.shape[:-3] + (-1,))


def conv_maps(images: jnp.ndarray, channels: Sequence[int], pooled: int,
              strides: Sequence[int] | None = None, dtype=jnp.float32) -> jnp.ndarray:
    """The convolutions: (..., H, W, C) -> (..., H', W', channels[-1]).

    ``strides`` (one per convolution, default all 1): a stride-2 convolution halves the
    resolution itself, e.g. ``strides=(2, 1, 1)`` with ``pooled=1`` gives the paper's
    12 x 12 output with the first layer computed at a quarter of the positions (XLA:CPU
    runs convolutions far below its matmul rate, README "Performance").

    Call it inside a module's ``@nn.compact`` method: the layers (``conv0``, ``conv1``, ...)
    become that module's. uint8 images are scaled to [0, 1] here, on the device. Where a
    layer is pooled, the pool comes before the ReLU: ``relu(max(x)) = max(relu(x))`` (both
    monotone), and the ReLU then touches a quarter of the values.

    ``dtype``: the convolutions' compute type (the parameters stay float32 and are cast;
    e.g. ``jnp.bfloat16`` for a GPU's bf16 convolution kernels); the maps come back float32.
    """
    x = images.astype(dtype)
    if images.dtype == jnp.uint8:
        x = x / 255.0
    batch = x.shape[:-3]
    x = x.reshape((-1,) + x.shape[-3:])
    strides = tuple(strides) if strides is not None else (1,) * len(channels)
    if len(strides) != len(channels):
        raise ValueError(f"strides {strides} must give one stride per convolution "
                         f"({len(channels)} channels {tuple(channels)})")
    for i, (c, stride) in enumerate(zip(channels, strides)):
        x = conv.Conv(c, (3, 3), strides=stride, padding="SAME", dtype=dtype,
                      name=f"conv{i}")(x)
        if i < pooled:
            x = max_pool_2x2(x)
        x = nn.relu(x)
    return x.astype(jnp.float32).reshape(batch + x.shape[1:])


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 max-pool with stride 2 ('VALID': an odd last row or column is dropped), (B, H, W,
    C) -> (B, H // 2, W // 2, C), as the elementwise max of the four strided sub-grids.

    Same values as ``nn.max_pool(x, (2, 2), strides=(2, 2))``, but XLA:CPU differentiates
    that ``reduce_window`` through select-and-scatter: at 256 x 48 x 48 x 16 the pool's
    forward and backward took 140 ms that way, 70 ms as a reshape and max, 15.6 ms as
    this (README, "Performance"). Gradient: tied maxima share it (``jnp.maximum`` splits ties
    evenly; reduce_window gives it all to one of them); both are subgradients, and where
    the tied values come from identical patches (flat image regions) the kernel gradients
    are the same.
    """
    h, w = x.shape[1] - x.shape[1] % 2, x.shape[2] - x.shape[2] % 2
    top = jnp.maximum(x[:, 0:h:2, 0:w:2], x[:, 0:h:2, 1:w:2])
    bottom = jnp.maximum(x[:, 1:h:2, 0:w:2], x[:, 1:h:2, 1:w:2])
    return jnp.maximum(top, bottom)
