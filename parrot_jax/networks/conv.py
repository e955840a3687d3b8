"""The networks' 2-D convolution: XLA's (default) or oneDNN's on the CPU.

``Conv`` is ``flax.linen.Conv`` calling ``conv_general_dilated``, which has
``lax.conv_general_dilated``'s signature; the encoders and the VAE build their
convolutions with it (same parameters, same checkpoints). With ``PARROT_JAX_CONV=onednn``
in the environment (read when a network is traced, so set it before a program is first
built), a float32 NHWC/HWIO convolution without dilation or groups that runs on the CPU
goes through oneDNN instead, as three XLA FFI custom calls (``csrc/onednn_conv.cc``):

    y = conv(x, w)                     forward
    dx = conv_backward_data(dy, w)     the input's gradient (a transposed convolution)
    dw = conv_backward_weights(x, dy)  the kernel's gradient (summed over the batch)

tied together by ``jax.custom_vjp``. Every other case (a GPU, other layouts or dtypes)
keeps XLA's. Why: XLA:CPU computes these small-channel convolutions far below the
machine's matmul rate (README "Performance"); oneDNN, which PyTorch's CPU convolutions
use, runs the paper encoder's forward and backward at batch 256 in 91 ms against XLA's
200 ms on this project's 2-core CPU. The results agree with XLA's to float32 rounding
(summation order), not bit for bit, which is why XLA stays the default.

oneDNN comes from PyPI (``requirements-onednn.txt``: ``onednn-cpu-gomp`` and its headers,
``onednn-devel-cpu-gomp``); the handlers are compiled with the system's C++ compiler on
first use into ``$PARROT_JAX_CACHE`` (default ``~/.cache/parrot_jax``), keyed by a hash of
the source, JAX's version and the oneDNN found, and loaded from there afterwards.

Under ``jax.vmap`` (``agents.together``) the custom calls run once per vmapped agent
(``vmap_method="sequential"``). With several devices XLA does not split a custom call
by the batch's sharding: keep the default there.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

BACKENDS = ("xla", "onednn")
ENV_VAR = "PARROT_JAX_CONV"
SOURCE = os.path.join(os.path.dirname(__file__), "csrc", "onednn_conv.cc")
TARGETS = ("OnednnConvForward", "OnednnConvBackwardData", "OnednnConvBackwardWeights")
INSTALL_HINT = "pip install -r requirements-onednn.txt (or make install-onednn)"


def backend() -> str:
    """The convolution backend chosen by ``$PARROT_JAX_CONV`` ("xla" when unset)."""
    name = os.environ.get(ENV_VAR, "xla") or "xla"
    if name not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={name!r}; expected one of {BACKENDS}")
    return name


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None):
    """``lax.conv_general_dilated``, through oneDNN where the backend and case allow."""
    args = (lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, batch_group_count, precision, preferred_element_type)
    if backend() == "onednn" and _onednn_case(*args):
        pads = (lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
                if isinstance(padding, str) else padding)
        return onednn_conv(lhs, rhs, tuple(window_strides),
                           tuple(tuple(int(p) for p in pair) for pair in pads))
    return lax.conv_general_dilated(*args)


Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)


def _onednn_case(lhs, rhs, strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                 feature_group_count, batch_group_count, precision,
                 preferred_element_type) -> bool:
    """Whether oneDNN computes this convolution: float32 NHWC x HWIO on the CPU, 2-D, no
    dilation, no groups."""
    if lhs.ndim != 4 or rhs.ndim != 4 or jax.default_backend() != "cpu":
        return False
    nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
    given = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    ones = (None, (1, 1), [1, 1])
    return (given == nhwc and lhs.dtype == rhs.dtype == jnp.float32
            and lhs_dilation in ones and rhs_dilation in ones and feature_group_count == 1
            and batch_group_count == 1 and preferred_element_type in (None, jnp.float32)
            and not (isinstance(padding, str) and padding not in ("SAME", "VALID")))


# --- the custom calls ------------------------------------------------------------------

def _attrs(strides, pads) -> dict:
    (top, bottom), (left, right) = pads
    return dict(stride_h=np.int64(strides[0]), stride_w=np.int64(strides[1]),
                pad_top=np.int64(top), pad_left=np.int64(left), pad_bottom=np.int64(bottom),
                pad_right=np.int64(right))


def _call(target: str, shape, *operands, strides, pads):
    load()
    return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(shape, jnp.float32),
                            vmap_method="sequential")(*operands, **_attrs(strides, pads))


def _out_shape(x_shape, w_shape, strides, pads) -> tuple[int, ...]:
    out = [(size + lo + hi - k) // s + 1
           for size, (lo, hi), k, s in zip(x_shape[1:3], pads, w_shape[:2], strides)]
    return (x_shape[0], *out, w_shape[3])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def onednn_conv(x: jnp.ndarray, w: jnp.ndarray, strides: tuple[int, int],
                pads: tuple[tuple[int, int], tuple[int, int]]) -> jnp.ndarray:
    """x (N, H, W, C) float32, w (KH, KW, C, O) -> (N, OH, OW, O); ``pads`` ((top, bottom),
    (left, right)) as ``lax.padtype_to_pads`` gives them. The oneDNN custom call."""
    return _call("OnednnConvForward", _out_shape(x.shape, w.shape, strides, pads), x, w,
                 strides=strides, pads=pads)


def _forward(x, w, strides, pads):
    return onednn_conv(x, w, strides, pads), (x, w)


def _backward(strides, pads, residuals, dy):
    x, w = residuals
    dx = _call("OnednnConvBackwardData", x.shape, dy, w, strides=strides, pads=pads)
    dw = _call("OnednnConvBackwardWeights", w.shape, x, dy, strides=strides, pads=pads)
    return dx, dw


onednn_conv.defvjp(_forward, _backward)


# --- building and loading the handlers -----------------------------------------------

def _onednn_root() -> str:
    """The prefix holding oneDNN's headers and library (``$DNNL_ROOT``, else where pip put
    the wheels' data files)."""
    prefixes = [os.environ.get("DNNL_ROOT", ""), sysconfig.get_paths()["data"], sys.prefix]
    for prefix in filter(None, prefixes):
        if (os.path.exists(os.path.join(prefix, "include", "oneapi", "dnnl", "dnnl.hpp"))
                and glob.glob(os.path.join(prefix, "lib", "libdnnl.so*"))):
            return prefix
    raise RuntimeError(f"{ENV_VAR}=onednn needs oneDNN's headers and library, found in none "
                       f"of {[p for p in prefixes if p]}: {INSTALL_HINT}, or set DNNL_ROOT")


def _library_path() -> str:
    """The compiled handlers, built first if this source, JAX and oneDNN have none."""
    root = _onednn_root()
    lib = sorted(glob.glob(os.path.join(root, "lib", "libdnnl.so*")))[-1]
    key = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        key.update(f.read())
    for part in (jax.__version__, lib, str(os.path.getsize(lib))):
        key.update(part.encode())
    cache = os.path.expanduser(os.environ.get("PARROT_JAX_CACHE", "~/.cache/parrot_jax"))
    path = os.path.join(cache, f"onednn_conv-{key.hexdigest()[:16]}.so")
    if os.path.exists(path):
        return path
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"{ENV_VAR}=onednn compiles {SOURCE} on first use, but the C++ "
                           f"compiler {compiler!r} is not on PATH (set CXX)")
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    cmd = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", "-I", jax.ffi.include_dir(),
           "-I", os.path.join(root, "include"), SOURCE, "-L", os.path.join(root, "lib"),
           "-ldnnl", f"-Wl,-rpath,{os.path.join(root, 'lib')}", "-o", tmp]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"compiling the oneDNN convolution failed ({' '.join(cmd)}):\n"
                               f"{done.stderr[-4000:]}")
        os.replace(tmp, path)  # atomic: concurrent builders each install a whole library
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


@functools.cache
def load() -> str:
    """Build (once) and register the oneDNN handlers with XLA; returns the library's path."""
    path = _library_path()
    library = ctypes.CDLL(path)
    for name in TARGETS:
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, name)),
                                    platform="cpu")
    return path
