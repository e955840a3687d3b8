import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parrot_jax import parallel

pytestmark = pytest.mark.multi_device  # meshes over the 4 host devices


def test_make_mesh_default_uses_all_devices():
    mesh = parallel.make_mesh()
    assert jax.device_count() == 4
    assert mesh.axis_names == (parallel.DATA_AXIS,) == ("data",)
    assert mesh.shape[parallel.DATA_AXIS] == 4
    assert list(mesh.devices.flat) == jax.devices()


def test_make_mesh_subset():
    mesh = parallel.make_mesh(2)
    assert mesh.shape["data"] == 2
    assert list(mesh.devices.flat) == jax.devices()[:2]


@pytest.mark.parametrize("n", [0, -1, 5])
def test_make_mesh_rejects_bad_count(n):
    with pytest.raises(ValueError, match=rf"num_devices={n}.*4"):
        parallel.make_mesh(n)


def test_shardings_split_batch_and_replicate():
    mesh = parallel.make_mesh()
    x = jax.device_put(np.arange(16.0).reshape(8, 2), parallel.batch_sharding(mesh))
    assert [s.data.shape for s in x.addressable_shards] == [(2, 2)] * 4
    w = jax.device_put(np.ones(3), parallel.replicated(mesh))
    assert [s.data.shape for s in w.addressable_shards] == [(3,)] * 4
    # A reduction over the sharded batch axis compiles and is exact (auto axes).
    assert float(jax.jit(jnp.sum)(x)) == float(np.arange(16.0).sum())


def test_check_batch_size():
    mesh = parallel.make_mesh()
    parallel.check_batch_size(8, mesh)
    for bad in (0, 6, 2):
        with pytest.raises(ValueError, match=rf"batch_size={bad}.*4 devices"):
            parallel.check_batch_size(bad, mesh)
    parallel.check_batch_size(3, parallel.make_mesh(1))
