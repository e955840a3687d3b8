"""Random-shift augmentation: every output is a window of its own padded image."""

import jax
import jax.numpy as jnp
import numpy as np

from parrot_jax.networks.augment import random_crop


def test_random_crop_shifts_each_image_within_the_pad():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 12, 12, 3), dtype=np.uint8)
    out = np.asarray(random_crop(jax.random.key(0), jnp.asarray(images), pad=2))
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    shifts = []
    for i in range(len(images)):  # each output is one window of its own padded image
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(out[i], padded[i, dy:dy + 12, dx:dx + 12])]
        assert found, f"image {i} is not a shifted window"
        shifts.append(found[0])
    assert len(set(shifts)) > 10  # independent offsets per image
    np.testing.assert_array_equal(random_crop(jax.random.key(0), jnp.asarray(images), 0), images)
