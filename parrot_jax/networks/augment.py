"""Random-shift image augmentation: pad by ``pad`` pixels (edge replication), then crop a
random window of the original size, independently per image (DrQ; PARROT's original
code used random crops with pad 4). Runs on the device on uint8 images."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_crop(key: jax.Array, images: jax.Array, pad: int = 4) -> jax.Array:
    """images (B, H, W, C) -> (B, H, W, C) of the same dtype, each shifted by an
    independent offset in ``[-pad, pad]^2``."""
    if pad == 0:
        return images
    batch, height, width, channels = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (batch, 2), 0, 2 * pad + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0),
                                     (height, width, channels))

    return jax.vmap(crop)(padded, offsets)
