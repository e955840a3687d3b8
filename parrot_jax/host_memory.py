"""The host allocator's policy: keep freed memory for XLA:CPU's next call.

XLA:CPU allocates each call's buffers (its temporaries as one block: 138 MB for the
``:cpu`` SAC update at batch 256) with ``malloc`` on its worker threads and frees them when
the call ends. glibc gives each thread an arena of at most 64 MB per heap and serves a
larger request from such a thread with a fresh ``mmap``, returned to the kernel by
``munmap`` on free; so every update writes its temporaries into new pages, one page fault
per 4 KiB (about 35,000 per update there; on this project's VM a quarter of the
update's time). The ``retain`` policy sets, through ``mallopt`` (process-wide; no number
changes):

    M_ARENA_MAX = 1           every thread allocates from the main heap, which grows
                              without the 64 MB bound
    M_MMAP_MAX = 0            no allocation is served by mmap
    M_TRIM_THRESHOLD = 2 GiB  freed memory stays in the heap for the next call
    M_TOP_PAD = 64 MiB        the heap grows in large steps

The cost: memory a process has freed is not given back to the kernel (its resident size
stays at its peak). Arenas are assigned to threads on their first allocation, so the
policy must be set before JAX starts its CPU backend: ``import parrot_jax`` applies it
(``configure``), which every binary and test does before it computes anything.

``$PARROT_JAX_MALLOC`` chooses: ``auto`` (default: ``retain`` where XLA computes on the
CPU, i.e. ``$JAX_PLATFORMS`` starts with ``cpu`` or no GPU/TPU plugin of JAX is installed;
``system`` otherwise, where device buffers are not host memory), ``retain`` or ``system``
(glibc's defaults). Other C libraries than glibc (macOS) keep theirs.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys

ENV_VAR = "PARROT_JAX_MALLOC"
POLICIES = ("auto", "retain", "system")

# mallopt(3) parameters and the retain policy's values
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_ARENA_MAX = -1, -2, -4, -8
RETAIN = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1),
          (M_TOP_PAD, 64 << 20))

# JAX's plugins for accelerators: with one installed, XLA computes on the device
ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin",
                       "jax_rocm7_plugin", "libtpu")

_applied: str | None = None


def policy() -> str:
    """The policy named by ``$PARROT_JAX_MALLOC`` ("auto" when unset)."""
    name = os.environ.get(ENV_VAR, "auto") or "auto"
    if name not in POLICIES:
        raise ValueError(f"{ENV_VAR}={name!r}; expected one of {POLICIES}")
    return name


def computes_on_cpu() -> bool:
    """Whether XLA will compute on the host: ``$JAX_PLATFORMS``'s first choice is the CPU,
    or (unset) no accelerator plugin of JAX is installed."""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    return not any(importlib.util.find_spec(name) for name in ACCELERATOR_PLUGINS)


def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (``mallopt``'s parameters are glibc's)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)  # the symbols already loaded: no search (find_library forks)
    return libc if hasattr(libc, "gnu_get_libc_version") else None


def configure(name: str | None = None) -> str:
    """Apply ``name`` (default: ``policy()``) and return what this process now runs with:
    "retain" or "system" ("system" also where the C library is not glibc). Idempotent;
    "retain" is never undone (the heap's arenas are in use)."""
    global _applied
    name = policy() if name is None else name
    if name not in POLICIES:
        raise ValueError(f"allocator policy {name!r}; expected one of {POLICIES}")
    if name == "auto":
        name = "retain" if computes_on_cpu() else "system"
    if _applied == "retain":
        return _applied
    if name == "retain":
        libc = _glibc()
        if libc is None:
            name = "system"
        else:
            for param, value in RETAIN:
                if libc.mallopt(param, value) != 1:
                    raise OSError(f"mallopt({param}, {value}) failed")
    _applied = name
    return name


def applied() -> str | None:
    """The policy ``configure`` applied in this process (None before it ran)."""
    return _applied
