"""scan_steps: K steps in one program equal K separate steps, unrolled or not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parrot_jax import fused


def _step(state, batch):
    new = {"w": state["w"] * 0.9 + batch.sum(), "n": state["n"] + 1}
    return new, {"sum": batch.sum()}


@pytest.mark.parametrize("k", [1, 3, fused.MAX_UNROLL, fused.MAX_UNROLL + 5])
def test_scan_steps_equals_separate_steps(k):
    batches = jax.random.normal(jax.random.key(k), (k, 4))
    state = {"w": jnp.float32(1.0), "n": jnp.int32(0)}
    out, metrics = jax.jit(lambda s, b: fused.scan_steps(_step, s, b))(state, batches)
    expected = state
    for i in range(k):
        expected, _ = _step(expected, batches[i])
    np.testing.assert_allclose(float(out["w"]), float(expected["w"]), rtol=1e-6)
    assert int(out["n"]) == k and metrics["sum"].shape == (k,)
    np.testing.assert_allclose(np.asarray(metrics["sum"]), np.asarray(batches.sum(1)), rtol=1e-6)


def test_short_scans_are_unrolled_and_long_ones_stay_loops():
    def hlo(k):
        batches = jnp.zeros((k, 4))
        return jax.jit(lambda s, b: fused.scan_steps(_step, s, b)).lower(
            {"w": jnp.float32(1.0), "n": jnp.int32(0)}, batches).as_text()

    assert "while" not in hlo(fused.MAX_UNROLL)
    assert "while" in hlo(fused.MAX_UNROLL + 1)
