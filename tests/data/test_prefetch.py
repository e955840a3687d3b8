import threading
import time

import jax
import numpy as np
import pytest

from parrot_jax import parallel
from parrot_jax.data.prefetch import Prefetcher
from parrot_jax.data.sampling import BatchSampler
from tests.data.test_sampling import make_dataset


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("prefetch") and t.is_alive()]


class FailingSampler:
    """Delegates to a BatchSampler but raises while building batch ``fail_at``."""

    def __init__(self, sampler, fail_at):
        self.sampler, self.fail_at, self.batch_size = sampler, fail_at, sampler.batch_size

    def batch(self, k):
        if k == self.fail_at:
            raise KeyError(f"broken batch {k}")
        return self.sampler.batch(k)


class SlowSampler(FailingSampler):
    def __init__(self, sampler):
        super().__init__(sampler, fail_at=-1)
        self.calls = 0

    def batch(self, k):
        self.calls += 1
        time.sleep(0.05)
        return self.sampler.batch(k)


@pytest.mark.parametrize("num_devices, window", [
    pytest.param(4, None, marks=pytest.mark.multi_device),
    pytest.param(4, 3, marks=pytest.mark.multi_device), (1, None)])
def test_yields_sampler_batches_in_order_with_sharding(num_devices, window):
    sampler = BatchSampler(make_dataset(), 8, seed=0, window=window)
    sharding = parallel.batch_sharding(parallel.make_mesh(num_devices))
    with Prefetcher(sampler, sharding, start=5, buffer_size=3, num_threads=3) as prefetcher:
        for k in range(5, 12):
            assert prefetcher.next_index == k
            batch = next(prefetcher)
            expected = sampler.batch(k)
            for key in ("observations", "actions"):
                x = batch[key]
                assert isinstance(x, jax.Array) and x.sharding == sharding
                np.testing.assert_array_equal(np.asarray(x), expected[key])
                shards = x.addressable_shards
                assert len(shards) == num_devices
                assert all(s.data.shape == (8 // num_devices,) + x.shape[1:] for s in shards)
        assert prefetcher.next_index == 12


def test_worker_error_is_raised_by_next():
    sampler = FailingSampler(BatchSampler(make_dataset(), 8, seed=0), fail_at=3)
    prefetcher = Prefetcher(sampler, parallel.batch_sharding(parallel.make_mesh()), start=1)
    next(prefetcher), next(prefetcher)
    with pytest.raises(KeyError, match="broken batch 3") as info:
        next(prefetcher)
    assert any("prefetching batch 3" in note for note in info.value.__notes__)
    assert info.traceback[-1].name == "batch"  # the worker's frame is kept
    assert prefetcher.next_index == 3 and not prefetch_threads()
    with pytest.raises(StopIteration):
        next(prefetcher)


def test_close_stops_threads_and_cancels_pending_work():
    sampler = SlowSampler(BatchSampler(make_dataset(), 8, seed=0))
    prefetcher = Prefetcher(sampler, parallel.batch_sharding(parallel.make_mesh()),
                            buffer_size=20, num_threads=1)
    assert prefetch_threads()
    prefetcher.close()
    prefetcher.close()
    assert not prefetch_threads()
    assert sampler.calls < 20
    with pytest.raises(StopIteration):
        next(prefetcher)


@pytest.mark.parametrize("kwargs, message", [
    pytest.param(dict(), r"batch_size=6.*4 devices", marks=pytest.mark.multi_device),
    (dict(buffer_size=0), r"buffer_size=0"),
    (dict(num_threads=0), r"num_threads=0"),
    (dict(start=-1), r"start=-1"),
])
def test_rejects_bad_arguments(kwargs, message):
    batch_size = 6 if not kwargs else 8
    sampler = BatchSampler(make_dataset(), batch_size, seed=0)
    with pytest.raises(ValueError, match=message):
        Prefetcher(sampler, parallel.batch_sharding(parallel.make_mesh()), **kwargs)
    assert not prefetch_threads()
