"""The conv stack: the strided-slice max-pool equals flax's, strides, the keypoint head."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parrot_jax.networks import encoder
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


def test_spatial_softmax_gives_feature_coordinates():
    maps = np.zeros((2, 5, 7, 3), np.float32)
    maps[0, 4, 0, 0] = 100.0  # bottom-left corner: x = -1, y = 1
    maps[0, 2, 3, 1] = 100.0  # centre
    maps[1] = 0.0  # flat maps: the centre, in expectation
    out = np.asarray(encoder.spatial_softmax(jnp.asarray(maps), jnp.asarray(1.0)))
    assert out.shape == (2, 6)  # x for 3 channels, then y for 3
    np.testing.assert_allclose(out[0, [0, 3]], [-1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(out[0, [1, 4]], [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(out[1], 0.0, atol=1e-6)


def test_keypoint_head_and_strides():
    module = encoder.ConvEncoder(channels=(4, 8), pooled=0, strides=(2, 2), hidden=(16,),
                                 features=5, head="keypoints")
    images = jnp.zeros((3, 48, 48, 3), jnp.uint8)
    params = module.init(jax.random.key(0), images)
    assert module.apply(params, images).shape == (3, 5)
    # Input of the first dense layer: 2 coordinates + 1 max per channel of the last map.
    assert params["params"]["fc0"]["kernel"].shape == (3 * 8, 16)
    assert params["params"]["log_temperature"].shape == ()
    flat = encoder.ConvEncoder(channels=(4, 8), pooled=0, strides=(2, 2), hidden=(16,),
                               features=5)
    assert flat.init(jax.random.key(0), images)["params"]["fc0"]["kernel"].shape == (
        12 * 12 * 8, 16)
    with pytest.raises(ValueError, match="encoder head 'pool'"):
        encoder.ConvEncoder(head="pool").init(jax.random.key(0), images)
    with pytest.raises(ValueError, match=r"one stride per convolution \(2 channels"):
        encoder.ConvEncoder(channels=(4, 8), strides=(2,)).init(jax.random.key(0), images)
