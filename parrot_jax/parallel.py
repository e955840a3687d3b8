"""Device mesh and sharding helpers for data-parallel training.

Training is pure data parallelism: one 1-D mesh axis ``"data"`` over devices; batches are
split along their leading axis over it (``batch_sharding``) and parameters and optimizer
state are replicated (``replicated``). The same code runs on one CPU, one GPU, several
GPUs, or several hosts (after ``initialize_distributed``).
"""

from __future__ import annotations

import math

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over the first ``num_devices`` of ``jax.devices()``.

    ``num_devices=None`` uses every device (of every process, in a multi-process run).
    """
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    if not 1 <= num_devices <= len(devices):
        raise ValueError(
            f"num_devices={num_devices} is invalid: expected 1 <= num_devices <= "
            f"{len(devices)} (the number of available devices)")
    # Auto axes keep ordinary GSPMD propagation inside jit; jax.make_mesh defaults to
    # Explicit axes, which put shardings in types and reject some unsharded reductions.
    return jax.make_mesh((num_devices,), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                         devices=devices[:num_devices])


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the ``"data"`` axis; other axes whole."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh`` (parameters, optimizer state, rng keys)."""
    return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raise ``ValueError`` unless the global ``batch_size`` splits evenly.

    It must be divisible by the number of devices on the ``"data"`` axis (each holds an
    equal slice) and by ``jax.process_count()`` (each process builds an equal share).
    """
    num_devices = mesh.shape[DATA_AXIS]
    num_processes = jax.process_count()
    multiple = math.lcm(num_devices, num_processes)
    if batch_size < 1 or batch_size % multiple:
        raise ValueError(
            f"batch_size={batch_size} must be a positive multiple of {multiple}: it is split "
            f"over {num_devices} devices on the '{DATA_AXIS}' mesh axis and "
            f"{num_processes} processes")


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Join a multi-process (multi-host) JAX run; call it first, before any other JAX call.

    Only call it for multi-process runs: it forwards to ``jax.distributed.initialize``,
    which with all arguments ``None`` detects the cluster itself (SLURM, Cloud TPU, ...).
    Afterwards ``jax.devices()`` lists every process's devices, so ``make_mesh()`` spans
    them all. A second call (e.g. a binary's flags, then ``config.distributed``) is a no-op.
    """
    if jax.distributed.is_initialized():
        return
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)


def place_batch(batch, sharding: NamedSharding):
    """This process's share of a global batch, as global arrays laid out by ``sharding``.

    One process: ``jax.device_put``. Several: each process holds rows
    ``[process_index * B, (process_index + 1) * B)`` of the global batch (``B`` its local
    batch size) and the shares are assembled into one array spanning every process.
    """
    if jax.process_count() > 1:
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                            batch)
    return jax.device_put(batch, sharding)


def local(tree):
    """This process's copy of replicated arrays, readable on the host (``np.asarray``)
    and usable by single-device code such as acting; other leaves pass through.

    In a one-process run every array is already addressable and nothing changes; in a
    multi-process run a replicated array spans devices this process cannot read, so its
    copy on the first local device stands for it.
    """
    return jax.tree.map(
        lambda x: x.addressable_data(0)
        if isinstance(x, jax.Array) and not x.is_fully_addressable else x, tree)
