"""PyTorch reference of the image-conditioned real NVP prior and its maximum-likelihood step.

Written the way a PyTorch user would write it (eager mode, NCHW convolutions, ``torch.nn``
modules, ``torch.optim.Adam``) with the architecture and the math of
``parrot_jax.flows.realnvp.ConditionalRealNVP`` and ``parrot_jax.flows.train_state``, so
that the benchmarks time the same computation in both frameworks. Only ``benchmarks/``
and the tests import this module; ``parrot_jax`` never depends on torch.

The flow (see ``realnvp.py``): ``e = psi(s)`` the image embedding, masks ``m_k``
alternating halves of the action dimensions, coupling ``k``

    y = m_k * x + (1 - m_k) * (x * exp(l) + t),   (t, l_raw) = MLP_k([e, m_k * x]),
    l = tanh(l_raw),

chained ``k = 0 .. K-1`` and followed by ``tanh``: ``a = tanh(f(z; s))``, ``z ~ N(0, I)``.

The layers shared with ``sac.py`` (the conv trunk, the MLP, flax-like initialisation and
the flax -> torch parameter conversion) live here too.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SHAPE = (48, 48, 3)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOG_2 = math.log(2.0)


# --------------------------------------------------------------------------------------
# Shared layers (mirroring parrot_jax.networks)
# --------------------------------------------------------------------------------------

def lecun_normal_(weight: torch.Tensor, fan_in: int) -> torch.Tensor:
    """In place: flax's default kernel init, ``variance_scaling(1, 'fan_in',
    'truncated_normal')``: a normal truncated to +-2 standard deviations, rescaled so that
    the variance is ``1 / fan_in``. Only initialisation, so trained or loaded parameters
    do not depend on it; it keeps from-scratch torch runs statistically like ours."""
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # stddev of N(0, 1) cut at +-2
    return nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


def images_to_nchw(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) uint8 (or float in [0, 1]) -> (B, C, H, W) float32.

    Mirrors the start of ``conv_features``: uint8 is converted to float and divided by 255
    (a division, as ours, not a multiplication by 1/255, so the values are bit-identical);
    float images are taken as already in [0, 1]. The permutation is a view: the memory
    stays channels-last, the layout ``ConvTrunk`` computes in by default.
    """
    if images.dim() != 4:
        raise ValueError(f"images have shape {tuple(images.shape)}; expected (B, H, W, C)")
    x = images.permute(0, 3, 1, 2).to(torch.float32)
    if images.dtype == torch.uint8:
        x = x.div_(255.0)
    return x


def conv_output_shape(image_shape: Sequence[int], channels: Sequence[int],
                      pooled: int = 2) -> tuple[int, int, int]:
    """(C, H, W) of the conv trunk's output for (H, W, C) images: 'SAME' 3x3 convolutions
    keep H and W; each 2x2 max-pool (stride 2, no padding) floors them to half."""
    height, width, _ = image_shape
    for _ in range(min(pooled, len(channels))):
        height, width = height // 2, width // 2
    return int(channels[-1]), int(height), int(width)


class ConvTrunk(nn.Module):
    """Mirrors ``conv_features`` / ``ConvTrunk``: 3x3 convolutions (stride 1, padding 1 =
    flax's 'SAME' for 3x3), each followed by a 2x2 max-pool (the first ``pooled`` only) and
    a ReLU; the output is flattened in NCHW order (``load_jax_params`` permutes the next
    layer's input rows, which our NHWC flatten orders (h, w, c)). As ours, the pool comes
    before the ReLU where both are applied: ``relu(max(x)) = max(relu(x))``, and the ReLU
    then touches a quarter of the values (faster in PyTorch too).

    Input: float images (B, C, H, W) from ``images_to_nchw``. Output: (B, C' H' W').

    ``channels_last`` (default): tensors keep PyTorch's logical NCHW shape but are stored
    channels-last, PyTorch's recommended layout for CNNs (oneDNN on CPUs, cuDNN on GPUs).
    Measured here (one CPU thread, the paper's trunk, batch 256): forward 46 ms against
    160 ms in contiguous NCHW, whose max-pool is particularly slow; forward and backward
    118 ms against 205 ms. The uint8 NHWC input is already in that layout.
    ``channels_last=False``: contiguous NCHW throughout.
    """

    def __init__(self, channels: Sequence[int] = (16, 16, 16), pooled: int = 2,
                 in_channels: int = 3, channels_last: bool = True):
        super().__init__()
        if not channels:
            raise ValueError("channels=(); expected at least one convolution")
        self.pooled = int(pooled)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        convs, previous = [], in_channels
        for c in channels:
            conv = nn.Conv2d(previous, int(c), kernel_size=3, padding=1)
            lecun_normal_(conv.weight, 9 * previous)
            nn.init.zeros_(conv.bias)
            convs.append(conv)
            previous = int(c)
        self.convs = nn.ModuleList(convs)
        self.to(memory_format=self.memory_format)  # the conv weights' layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)  # no copy when already so
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < self.pooled:
                x = F.max_pool2d(x, 2)
            x = F.relu(x, inplace=True)  # in place: no new tensor (autograd allows it here)
        return x.flatten(1)


class MLP(nn.Module):
    """Mirrors ``parrot_jax.networks.mlp.MLP``: Linear + ReLU for each hidden width, then a
    linear output layer, zero-initialised with ``zero_init_output`` (so the module outputs
    0 at init); flax's init elsewhere (lecun normal weights, zero biases)."""

    def __init__(self, in_features: int, hidden: Sequence[int], features: int,
                 zero_init_output: bool = False):
        super().__init__()
        layers, previous = [], in_features
        for h in hidden:
            layer = nn.Linear(previous, int(h))
            lecun_normal_(layer.weight, previous)
            nn.init.zeros_(layer.bias)
            layers.append(layer)
            previous = int(h)
        self.hidden = nn.ModuleList(layers)
        self.out = nn.Linear(previous, features)
        if zero_init_output:
            nn.init.zeros_(self.out.weight)
        else:
            lecun_normal_(self.out.weight, previous)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = F.relu(layer(x), inplace=True)
        return self.out(x)


class ConvEncoder(nn.Module):
    """Mirrors ``parrot_jax.networks.encoder.ConvEncoder``: the conv trunk, then an MLP
    (``encoder_hidden`` with ReLU, linear ``features`` output). Input: float NCHW."""

    def __init__(self, channels: Sequence[int] = (16, 16, 16), pooled: int = 2,
                 hidden: Sequence[int] = (1024, 512), features: int = 256,
                 image_shape: Sequence[int] = IMAGE_SHAPE, channels_last: bool = True):
        super().__init__()
        self.trunk = ConvTrunk(channels, pooled, int(image_shape[-1]), channels_last)
        self.feature_shape = conv_output_shape(image_shape, channels, pooled)
        self.mlp = MLP(math.prod(self.feature_shape), hidden, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.trunk(x))


# --------------------------------------------------------------------------------------
# flax -> torch parameter conversion
# --------------------------------------------------------------------------------------

def _tensor(x: Any) -> torch.Tensor:
    # np.array (a copy): jax arrays are read-only and torch wants writable memory
    return torch.from_numpy(np.array(x, dtype=np.float32))


def nhwc_rows_to_nchw(kernel: torch.Tensor, feature_shape: Sequence[int]) -> torch.Tensor:
    """Reorders the first ``C*H*W`` rows of a flax Dense kernel (in, out) that reads
    NHWC-flattened conv features (row ``(h*W + w)*C + c``) so that row ``(c*H + h)*W + w``
    holds them, as torch's NCHW flatten orders its inputs; rows after them (e.g. the
    critic's action inputs) stay in place."""
    c, h, w = feature_shape
    n = c * h * w
    if kernel.shape[0] < n:
        raise ValueError(f"kernel has {kernel.shape[0]} input rows; expected at least {n} "
                         f"for conv features of shape (C, H, W) = {tuple(feature_shape)}")
    # order[(c, h, w)] = NHWC index of that feature
    order = torch.arange(n).reshape(h, w, c).permute(2, 0, 1).reshape(-1)
    return torch.cat([kernel[:n][order], kernel[n:]], dim=0)


def dense_to_linear(params: Mapping[str, Any], prefix: str,
                    feature_shape: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """A flax Dense {kernel (in, out), bias} as ``nn.Linear`` entries (weight (out, in));
    ``feature_shape``: the layer reads NCHW-flattened conv features first (see
    ``nhwc_rows_to_nchw``)."""
    kernel = _tensor(params["kernel"])
    if feature_shape is not None:
        kernel = nhwc_rows_to_nchw(kernel, feature_shape)
    return {f"{prefix}weight": kernel.T.contiguous(), f"{prefix}bias": _tensor(params["bias"])}


def mlp_state(params: Mapping[str, Any], prefix: str, names: Sequence[str],
              feature_shape: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """The flax Dense layers ``names`` (hidden ones, then the output one) as our ``MLP``
    entries under ``prefix``; the first may read conv features (``feature_shape``)."""
    state = {}
    for i, name in enumerate(names):
        target = f"{prefix}hidden.{i}." if i < len(names) - 1 else f"{prefix}out."
        state.update(dense_to_linear(params[name], target, feature_shape if i == 0 else None))
    return state


def conv_state(params: Mapping[str, Any], prefix: str, num_convs: int) -> dict[str, torch.Tensor]:
    """flax convs ``conv0..`` (kernel HWIO) as our ``ConvTrunk`` entries (weight OIHW)."""
    state = {}
    for i in range(num_convs):
        p = params[f"conv{i}"]
        state[f"{prefix}convs.{i}.weight"] = _tensor(p["kernel"]).permute(3, 2, 0, 1).contiguous()
        state[f"{prefix}convs.{i}.bias"] = _tensor(p["bias"])
    return state


def load_state(module: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copies ``state`` into ``module``'s parameters in place (the optimizers keep pointing
    at them), requiring exactly the module's keys and shapes."""
    own = dict(module.named_parameters())
    if set(own) != set(state):
        raise ValueError(f"parameter names differ: missing {sorted(set(own) - set(state))}, "
                         f"unexpected {sorted(set(state) - set(own))}")
    with torch.no_grad():
        for name, value in state.items():
            if own[name].shape != value.shape:
                raise ValueError(f"{name}: shape {tuple(value.shape)} from the JAX params; the "
                                 f"torch module has {tuple(own[name].shape)}")
            own[name].copy_(value)


# --------------------------------------------------------------------------------------
# The flow
# --------------------------------------------------------------------------------------

def coupling_masks(action_dim: int, num_couplings: int) -> torch.Tensor:
    """(K, A) float masks, 1 = passed through unchanged: mirrors ``realnvp.coupling_masks``
    (the first ``A // 2`` dimensions for even ``k``, the rest for odd ``k``)."""
    first = (torch.arange(action_dim) < action_dim // 2).float()
    return torch.stack([first if k % 2 == 0 else 1.0 - first for k in range(num_couplings)])


def tanh_log_det(x: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log(d tanh(x) / dx) = log(1 - tanh(x)^2)`` in distrax's stable form
    ``2 (log 2 - x - softplus(-2 x))`` (``distrax.Tanh.forward_log_det_jacobian``)."""
    return 2.0 * (LOG_2 - x - F.softplus(-2.0 * x))


class Flow(nn.Module):
    """``ConditionalRealNVP`` in PyTorch: ``log_prob(actions, images)``,
    ``sample(z, images)``, ``inverse(actions, images)``; images (B, H, W, 3) uint8 as the
    env and the dataset give them, actions and z (B, action_dim) float32."""

    def __init__(self, action_dim: int = 7, num_couplings: int = 4,
                 hidden: Sequence[int] = (256, 256),
                 encoder_channels: Sequence[int] = (16, 16, 16),
                 encoder_hidden: Sequence[int] = (1024, 512), embedding: int = 256,
                 image_shape: Sequence[int] = IMAGE_SHAPE, channels_last: bool = True):
        super().__init__()
        if action_dim < 2:
            raise ValueError(f"action_dim={action_dim}; a coupling flow needs at least 2")
        if num_couplings < 1:
            raise ValueError(f"num_couplings={num_couplings}; expected at least 1")
        self.action_dim, self.num_couplings = int(action_dim), int(num_couplings)
        self.encoder_hidden = tuple(encoder_hidden)
        self.encoder = ConvEncoder(encoder_channels, 2, encoder_hidden, embedding, image_shape,
                                   channels_last)
        self.conditioners = nn.ModuleList(
            MLP(embedding + action_dim, hidden, 2 * action_dim, zero_init_output=True)
            for _ in range(num_couplings))
        self.register_buffer("masks", coupling_masks(action_dim, num_couplings))

    @classmethod
    def from_module(cls, flow, image_shape: Sequence[int] = IMAGE_SHAPE,
                    channels_last: bool = True) -> "Flow":
        """The torch flow with the fields of a ``ConditionalRealNVP`` (fresh parameters;
        ``load_jax_params`` copies ours). ``channels_last``: see ``ConvTrunk``."""
        return cls(flow.action_dim, flow.num_couplings, tuple(flow.hidden),
                   tuple(flow.encoder_channels), tuple(flow.encoder_hidden), flow.embedding,
                   image_shape, channels_last)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """psi(s): (B, embedding) from (B, H, W, C) uint8 images."""
        return self.encoder(images_to_nchw(images))

    def _coupling(self, k: int, x: torch.Tensor, embedding: torch.Tensor):
        """(mask, shift, log_scale) of coupling ``k``: distrax's ``MaskedCoupling`` feeds
        the conditioner the input with the transformed entries zeroed (``m * x``), ours
        prepends the embedding; ``log_scale = tanh(raw)`` (``realnvp._affine``)."""
        mask = self.masks[k]
        params = self.conditioners[k](torch.cat([embedding, x * mask], dim=-1))
        shift, raw_log_scale = params.chunk(2, dim=-1)
        return mask, shift, torch.tanh(raw_log_scale)

    def forward_given(self, z: torch.Tensor, embedding: torch.Tensor,
                      with_log_det: bool = False):
        """(a, log|det da/dz| or None): couplings 0 .. K-1, then tanh (our Chain's order),
        ``y = m * x + (1 - m) * (x * exp(l) + t)`` (``ScalarAffine.forward``). The log-det
        only ``with_log_det``: sampling (distrax's ``forward``) does not compute it."""
        x, log_det = z, None
        for k in range(self.num_couplings):
            mask, shift, log_scale = self._coupling(k, x, embedding)
            x = mask * x + (1.0 - mask) * (x * torch.exp(log_scale) + shift)
            if with_log_det:
                log_det = ((1.0 - mask) * log_scale).sum(-1) + (0 if log_det is None
                                                                 else log_det)
        if with_log_det:
            log_det = log_det + tanh_log_det(x).sum(-1)
        return torch.tanh(x), log_det

    def inverse_and_log_det_given(self, actions: torch.Tensor, embedding: torch.Tensor):
        """(z, log|det dz/da|): atanh, then the couplings' inverses K-1 .. 0,
        ``x = m * y + (1 - m) * (y - t) * exp(-l)`` (``ScalarAffine.inverse``)."""
        y = torch.atanh(actions)
        log_det = -tanh_log_det(y).sum(-1)
        for k in reversed(range(self.num_couplings)):
            mask, shift, log_scale = self._coupling(k, y, embedding)
            y = mask * y + (1.0 - mask) * (torch.exp(-log_scale) * (y - shift))
            log_det = log_det - ((1.0 - mask) * log_scale).sum(-1)
        return y, log_det

    def log_prob_given(self, actions: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """log p(a | s) = log N(f^{-1}(atanh a); 0, I) + log|det J_{f^{-1}}| (+ tanh's)."""
        z, log_det = self.inverse_and_log_det_given(actions, embedding)
        base = (-0.5 * z.square() - HALF_LOG_2PI).sum(-1)
        return base + log_det

    def log_prob(self, actions: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """log p(a | s) of squashed actions in (-1, 1), tanh Jacobian included: (B,)."""
        return self.log_prob_given(actions, self.embed(images))

    forward = log_prob  # module(actions, images), as ConditionalRealNVP.__call__

    def sample(self, z: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """a = tanh(f(z; s)): (B, action_dim) in (-1, 1)."""
        return self.forward_given(z, self.embed(images))[0]

    def inverse(self, actions: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """z = f^{-1}(atanh(a); s): (B, action_dim)."""
        return self.inverse_and_log_det_given(actions, self.embed(images))[0]

    def forward_and_log_det(self, z: torch.Tensor, images: torch.Tensor):
        """(a, log|det da/dz|) for each sample."""
        return self.forward_given(z, self.embed(images), with_log_det=True)


def jax_flow_state(flow: Flow, params: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A ``ConditionalRealNVP`` params pytree as ``flow``'s parameters (names -> tensors):
    Dense kernels transposed, conv kernels HWIO -> OIHW, the encoder's first dense layer's
    input rows permuted from NHWC- to NCHW-flatten order."""
    enc = params["encoder"]
    fc_names = [f"fc{i}" for i in range(len(flow.encoder_hidden))] + ["out"]
    state = conv_state(enc, "encoder.trunk.", len(flow.encoder.trunk.convs))
    state.update(mlp_state(enc, "encoder.mlp.", fc_names, flow.encoder.feature_shape))
    for k, conditioner in enumerate(flow.conditioners):
        names = [f"hidden{i}" for i in range(len(conditioner.hidden))] + ["out"]
        state.update(mlp_state(params[f"conditioners_{k}"], f"conditioners.{k}.", names))
    return state


def load_jax_params(flow: Flow, params: Mapping[str, Any]) -> None:
    """Copies a flax ``ConditionalRealNVP`` params pytree into ``flow`` (in place), so that
    both compute the same function (see ``jax_flow_state``)."""
    load_state(flow, jax_flow_state(flow, params))


# --------------------------------------------------------------------------------------
# Maximum-likelihood training (mirroring parrot_jax.flows.train_state)
# --------------------------------------------------------------------------------------

def nll_loss(flow: Flow, images: torch.Tensor, actions: torch.Tensor,
             max_abs_action: float = 0.999999) -> torch.Tensor:
    """``-1/B sum_i log p(a_i | s_i)`` of the actions clipped to
    ``[-max_abs_action, max_abs_action]`` (tanh Jacobian included): ``loss_fn``'s loss."""
    actions = actions.clamp(-max_abs_action, max_abs_action)
    return -flow.log_prob(actions, images).mean()


def adam(params, learning_rate: float) -> torch.optim.Adam:
    """``torch.optim.Adam``, whose defaults are ``optax.adam``'s (betas 0.9, 0.999; eps 1e-8
    added to sqrt(v_hat); bias correction), in the fastest implementation for where the
    parameters are (decided now: build it after moving the module): fused on CUDA, as
    PyTorch recommends; multi-tensor (``foreach``) elsewhere, which torch picks by itself
    only on GPUs (on CPU it measured faster than the per-parameter loop torch defaults to,
    and as fast as the fused CPU kernel)."""
    params = list(params)
    if params and all(p.is_cuda for p in params):
        return torch.optim.Adam(params, lr=learning_rate, fused=True)
    return torch.optim.Adam(params, lr=learning_rate, foreach=True)


def clip_by_global_norm_(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """In place, ``optax.clip_by_global_norm``'s rule: gradients unchanged when their global
    norm is below ``max_norm``, else scaled by ``max_norm / norm`` (no epsilon, unlike
    ``torch.nn.utils.clip_grad_norm_``). Returns the norm; no host sync."""
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    scale = torch.where(norm < max_norm, torch.ones_like(norm), max_norm / norm)
    torch._foreach_mul_(grads, scale)
    return norm


class Trainer:
    """One Adam step per ``step(images, actions)`` on ``nll_loss``: mirrors
    ``train_state.train_step`` with ``make_optimizer(learning_rate, grad_clip_norm)``
    (Adam: see ``adam``; clipping: ``clip_by_global_norm_``). Move the flow to its device
    before building the trainer.
    """

    def __init__(self, flow: Flow, learning_rate: float = 1e-4,
                 grad_clip_norm: float | None = None, max_abs_action: float = 0.999999):
        if not learning_rate > 0:
            raise ValueError(f"learning_rate={learning_rate}; expected a positive number")
        if grad_clip_norm is not None and not grad_clip_norm > 0:
            raise ValueError(f"grad_clip_norm={grad_clip_norm}; expected a positive number "
                             "or None")
        self.flow = flow
        self.params = [p for p in flow.parameters() if p.requires_grad]
        self.optimizer = adam(self.params, learning_rate)
        self.grad_clip_norm = grad_clip_norm
        self.max_abs_action = max_abs_action

    def step(self, images: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """One update; returns the loss before it (detached, as our metrics)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = nll_loss(self.flow, images, actions, self.max_abs_action)
        loss.backward()
        if self.grad_clip_norm is not None:
            # parameters without a gradient (none in this model) would be skipped by Adam too
            clip_by_global_norm_([p.grad for p in self.params if p.grad is not None],
                                 self.grad_clip_norm)
        self.optimizer.step()
        return loss.detach()
