"""The conv stack: the strided-slice max-pool equals flax's, values and gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parrot_jax.networks.encoder import ConvEncoder, max_pool_2x2


@pytest.mark.parametrize("shape", [(3, 8, 8, 2), (2, 7, 9, 3), (1, 48, 48, 16)])
def test_max_pool_equals_flax_max_pool(shape):
    x = jax.random.normal(jax.random.key(0), shape)
    ours, theirs = max_pool_2x2(x), nn.max_pool(x, (2, 2), strides=(2, 2))
    assert ours.shape == theirs.shape == (shape[0], shape[1] // 2, shape[2] // 2, shape[3])
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_max_pool_gradient_without_ties_equals_flax():
    x = jax.random.normal(jax.random.key(1), (2, 10, 10, 3))  # continuous: no ties
    weights = jax.random.normal(jax.random.key(2), (2, 5, 5, 3))
    ours = jax.grad(lambda x: jnp.sum(weights * max_pool_2x2(x)))(x)
    theirs = jax.grad(lambda x: jnp.sum(weights * nn.max_pool(x, (2, 2), strides=(2, 2))))(x)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert np.count_nonzero(np.asarray(ours)) == weights.size  # one winner per window


def test_tied_maxima_share_the_gradient():
    x = jnp.ones((1, 2, 2, 1))
    grad = jax.grad(lambda x: jnp.sum(max_pool_2x2(x)))(x)
    np.testing.assert_allclose(np.asarray(grad).ravel(), [0.25] * 4)


def test_encoder_equals_relu_then_flax_pool():
    """Pooling before the ReLU (ours) gives the layer order of the paper's encoder."""
    images = jax.random.randint(jax.random.key(3), (4, 48, 48, 3), 0, 256).astype(jnp.uint8)
    encoder = ConvEncoder(channels=(4, 4, 4), hidden=(8,), features=5)
    params = encoder.init(jax.random.key(4), images)["params"]
    x = images.astype(jnp.float32) / 255.0
    for i in range(3):
        layer = params[f"conv{i}"]
        x = jax.lax.conv_general_dilated(x, layer["kernel"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = nn.relu(x + layer["bias"])
        if i < 2:
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(x.reshape(4, -1) @ params["fc0"]["kernel"] + params["fc0"]["bias"])
    expected = x @ params["out"]["kernel"] + params["out"]["bias"]
    np.testing.assert_allclose(np.asarray(encoder.apply({"params": params}, images)),
                               np.asarray(expected), rtol=1e-5, atol=1e-6)
