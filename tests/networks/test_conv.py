"""The oneDNN convolution against XLA's: values, gradients, fallbacks, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from parrot_jax.networks import conv
from parrot_jax.networks.encoder import ConvEncoder
from parrot_jax.pretrained.vae import VAEEncoder

NHWC = ("NHWC", "HWIO", "NHWC")
CASES = [  # image, kernel, strides, padding
    ((3, 48, 48, 3), (3, 3, 3, 16), (1, 1), "SAME"),  # the paper encoder's first layer
    ((3, 48, 48, 3), (3, 3, 3, 16), (2, 2), "SAME"),  # :cpu's strided one (pad 0 / 1)
    ((2, 12, 12, 16), (3, 3, 16, 32), (1, 1), "SAME"),
    ((2, 13, 11, 5), (4, 4, 5, 7), (2, 2), "VALID"),
    ((2, 13, 11, 5), (4, 4, 5, 7), (2, 1), "SAME"),
    ((2, 6, 6, 8), (1, 1, 8, 8), (1, 1), "SAME"),  # the VAE's 1x1
    ((1, 9, 9, 2), (3, 3, 2, 3), (1, 1), ((2, 0), (1, 3))),  # explicit, uneven
]


@pytest.fixture
def onednn(monkeypatch):
    monkeypatch.setenv(conv.ENV_VAR, "onednn")


def _xla(x, w, strides, padding):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)


def _ours(x, w, strides, padding):
    return conv.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)


@pytest.mark.parametrize("image,kernel,strides,padding", CASES)
def test_onednn_matches_xla_with_gradients(onednn, image, kernel, strides, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=image), jnp.float32)
    w = jnp.asarray(rng.normal(size=kernel), jnp.float32)
    expected = jax.jit(_xla, static_argnums=(2, 3))(x, w, strides, padding)
    program = jax.jit(_ours, static_argnums=(2, 3))
    assert "Onednn" in str(jax.make_jaxpr(_ours, static_argnums=(2, 3))(x, w, strides, padding))
    got = program(x, w, strides, padding)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    cotangent = jnp.asarray(rng.normal(size=expected.shape), jnp.float32)

    def grads(fn):
        loss = lambda x, w: jnp.sum(fn(x, w, strides, padding) * cotangent)
        return jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)

    for ours, theirs in zip(grads(_ours), grads(_xla)):
        scale = float(np.max(np.abs(theirs)))
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * scale)


def test_onednn_is_deterministic(onednn):
    # Exact resume (the training loops' tests) needs the same bits from the same inputs.
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(64, 24, 24, 16)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 16, 16)), jnp.float32)
    program = jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(_ours(x, w, (1, 1), "SAME") ** 2),
                                         argnums=(0, 1)))
    first = program(x, w)
    for _ in range(3):
        jax.tree.map(np.testing.assert_array_equal, program(x, w), first)


def test_onednn_under_vmap(onednn):
    # agents.together vmaps whole agents: images and kernels both carry the agent axis.
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 3, 10, 10, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(2, 3, 3, 4, 5)), jnp.float32)
    got = jax.jit(jax.vmap(lambda x, w: _ours(x, w, (1, 1), "SAME")))(x, w)
    for i in range(2):
        np.testing.assert_allclose(got[i], _xla(x[i], w[i], (1, 1), "SAME"), rtol=1e-5,
                                   atol=1e-4)


def test_encoders_agree_across_backends(monkeypatch):
    """Same parameters, same outputs and gradients: a checkpoint serves both backends."""
    rng = np.random.default_rng(2)
    images = jnp.asarray(rng.integers(0, 256, (4, 48, 48, 3)), jnp.uint8)
    # The paper's and the :cpu convolutions (small dense layers: the convolutions are tested)
    for model in (ConvEncoder(hidden=(32,), features=8),
                  ConvEncoder(channels=(8, 8, 8), strides=(2, 1, 1), pooled=1, hidden=(),
                              features=8),
                  VAEEncoder(channels=8, num_residual=1, latent_dim=4, mean_only=True)):
        # Random parameters of the model's shapes (compiling its initialisers takes longer)
        shapes = jax.eval_shape(model.init, jax.random.key(0), images)
        params = jax.tree.map(lambda s: jnp.asarray(0.1 * rng.normal(size=s.shape), s.dtype),
                              shapes)
        results = {}
        for name in conv.BACKENDS:
            monkeypatch.setenv(conv.ENV_VAR, name)
            # A new function: JAX caches traces by function, and the backend is read when
            # tracing (in a real run it is set once, before the process traces anything).
            loss = lambda p: jnp.sum(model.apply(p, images) ** 2)
            results[name] = jax.jit(jax.value_and_grad(loss))(params)
            jaxpr = str(jax.make_jaxpr(loss)(params))
            assert ("Onednn" in jaxpr) == (name == "onednn")
        (lx, gx), (lo, go) = results["xla"], results["onednn"]
        np.testing.assert_allclose(lo, lx, rtol=1e-5)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(
            a, b, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(b)))), go, gx)


@pytest.mark.parametrize("case", ["dilated", "nchw", "bfloat16", "grouped"])
def test_other_cases_keep_xla(onednn, case):
    x = jnp.ones((2, 8, 8, 4), jnp.float32)
    w = jnp.ones((3, 3, 4, 4), jnp.float32)
    kw = dict(dimension_numbers=NHWC)
    if case == "dilated":
        kw["rhs_dilation"] = (2, 2)
    elif case == "nchw":
        x, kw["dimension_numbers"] = jnp.ones((2, 4, 8, 8)), ("NCHW", "HWIO", "NCHW")
    elif case == "bfloat16":
        x, w = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    else:
        w, kw["feature_group_count"] = jnp.ones((3, 3, 2, 4)), 2
    fn = lambda x, w: conv.conv_general_dilated(x, w, (1, 1), "SAME", **kw)
    assert "Onednn" not in str(jax.make_jaxpr(fn)(x, w))
    np.testing.assert_array_equal(fn(x, w), lax.conv_general_dilated(x, w, (1, 1), "SAME", **kw))


def test_bad_backend_named(monkeypatch):
    monkeypatch.setenv(conv.ENV_VAR, "cudnn")
    with pytest.raises(ValueError, match=r"PARROT_JAX_CONV='cudnn'; expected one of \('xla', "
                                         r"'onednn'\)"):
        jax.eval_shape(ConvEncoder().init, jax.random.key(0), jnp.zeros((1, 48, 48, 3), jnp.uint8))


def test_missing_onednn_and_compiler_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(conv.sysconfig, "get_paths", lambda: {"data": str(tmp_path)})
    monkeypatch.setattr(conv.sys, "prefix", str(tmp_path))
    monkeypatch.setenv("DNNL_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeError, match="needs oneDNN's headers and library.*"
                                           "requirements-onednn.txt"):
        conv._library_path()
    monkeypatch.undo()
    monkeypatch.setenv("PARROT_JAX_CACHE", str(tmp_path / "cache"))  # nothing built there
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(RuntimeError, match="compiler 'no-such-compiler' is not on PATH"):
        conv._library_path()
