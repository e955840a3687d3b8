"""Build batches in background threads and place them on devices ahead of the training step.

``Prefetcher(sampler, sharding, start=k)`` yields ``sampler.batch(k), sampler.batch(k+1),
...`` in order, as pytrees of ``jax.Array`` laid out by ``sharding``. Up to ``buffer_size``
batches are in flight at once, so the step rarely waits for the host.
"""

from __future__ import annotations

import collections
import concurrent.futures

import jax

from parrot_jax import parallel


class Prefetcher:
    """Ordered iterator over device-placed batches built by a thread pool.

    ``sampler`` needs ``batch(k)`` (a pure function of ``k``, so threads may build batches
    out of order) and ``batch_size`` (the global batch size). ``sharding`` is a
    ``NamedSharding`` whose mesh has the ``"data"`` axis, normally
    ``parallel.batch_sharding(mesh)``. In a multi-process run each process's sampler builds
    its local share and the shares are assembled into one global array.

    An exception while building batch ``k`` is raised by the ``next()`` that would have
    returned it (the original exception, traceback included); the prefetcher is then
    closed. ``next_index`` is the number of the next batch ``next()`` returns: store it in
    a checkpoint and resume with ``start=next_index``. Use as a context manager, or call
    ``close()``, so the threads stop.
    """

    def __init__(self, sampler, sharding: jax.sharding.NamedSharding, start: int = 0,
                 buffer_size: int = 4, num_threads: int = 2):
        if start < 0:
            raise ValueError(f"start={start} must be >= 0")
        if buffer_size < 1:
            raise ValueError(f"buffer_size={buffer_size} must be >= 1")
        if num_threads < 1:
            raise ValueError(f"num_threads={num_threads} must be >= 1")
        if not isinstance(sharding, jax.sharding.NamedSharding):
            raise ValueError(f"sharding must be a NamedSharding, got {type(sharding).__name__}")
        parallel.check_batch_size(sampler.batch_size, sharding.mesh)
        self.sampler = sampler
        self.sharding = sharding
        self.next_index = start
        self._closed = False
        self._executor = concurrent.futures.ThreadPoolExecutor(
            num_threads, thread_name_prefix="prefetch")
        self._futures = collections.deque(
            self._executor.submit(self._build, k) for k in range(start, start + buffer_size))
        self._next_submit = start + buffer_size

    def _build(self, k: int):
        """Batch ``k`` built on the host and placed on the devices (runs in a worker)."""
        return parallel.place_batch(self.sampler.batch(k), self.sharding)

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        if self._closed:
            raise StopIteration
        future = self._futures.popleft()
        # Refill before waiting so buffer_size batches stay in flight during the wait.
        self._futures.append(self._executor.submit(self._build, self._next_submit))
        self._next_submit += 1
        try:
            batch = future.result()
        except Exception as error:
            self.close()
            error.add_note(f"raised while prefetching batch {self.next_index}")
            raise
        self.next_index += 1
        return batch

    def close(self) -> None:
        """Cancel pending batches and wait for the running ones; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
