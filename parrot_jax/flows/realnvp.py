"""Image-conditioned real NVP: the behavioral prior ``a = tanh(f(z; s))`` (paper 4.1, app. B).

With ``e = psi(s)`` the image embedding (one encoder shared by every coupling) and masks
``m_k`` selecting alternating halves of the action dimensions, coupling ``k`` maps

    y = m_k * x + (1 - m_k) * (x * exp(l) + t),
    (t, l_raw) = MLP_k([e, m_k * x]),   l = b tanh(l_raw / b),

with ``b = log_scale_bound`` (1 in the paper: ``l = tanh(l_raw)``), so its inverse is
``x = m_k * y + (1 - m_k) * (y - t) * exp(-l)`` (the conditioner sees only the unchanged
half) and ``log|det J| = sum((1 - m_k) * l)``. ``f`` chains ``num_couplings`` such
layers; the action is ``a = tanh(f(z; s))`` with ``z ~ N(0, I)``, so ``log p(a | s) = log N(f^{-1}(atanh a); 0, I) + log|det J_{f^{-1}}| - sum log(1 - a^2)``.
The last layer of every conditioner is zero-initialised: at init ``t = l = 0`` and the
flow is the identity (``a = tanh(z)``).

With ``offset_head=True`` the flow also has a linear read-out of the embedding,
``o = W e + b`` (in units of 10 cm, so that Adam's steps move it fast enough), trained
beside the likelihood to predict the end effector's offset to the nearest object
(``train_state.loss_fn``): an auxiliary task meant to make the embedding the couplings
see carry where the gripper is (measured in docs/prior_diagnosis.md: at weight 1 it made
the prior worse). It takes no part in ``a = f(z; s)``.

The couplings are distrax ``MaskedCoupling`` bijectors around ``ScalarAffine``, chained
with distrax's ``Tanh`` under ``Transformed``. distrax conditioners take only the masked
input, so each closes over the image embedding; the bijector is rebuilt inside every
method call, which is free under jit.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import distrax
import flax.linen as nn
import jax.numpy as jnp

from parrot_jax.networks.encoder import ConvEncoder
from parrot_jax.networks.mlp import MLP


def coupling_masks(action_dim: int, num_couplings: int) -> list[jnp.ndarray]:
    """Boolean masks (True: passed through unchanged) alternating between the first
    ``action_dim // 2`` dimensions and the rest."""
    first = jnp.arange(action_dim) < action_dim // 2
    return [first if k % 2 == 0 else ~first for k in range(num_couplings)]


def bounded_log_scale(raw: jnp.ndarray, bound: float) -> jnp.ndarray:
    """``bound * tanh(raw / bound)``: slope 1 at 0, values in (-bound, bound); the paper's
    ``tanh(raw)`` at ``bound = 1``."""
    return bound * jnp.tanh(raw / bound)


def _affine(params: jnp.ndarray, bound: float = 1.0) -> distrax.Bijector:
    shift, raw_log_scale = jnp.split(params, 2, axis=-1)
    return distrax.ScalarAffine(shift=shift, log_scale=bounded_log_scale(raw_log_scale, bound))


def flow_encoder(flow: "ConditionalRealNVP", name: str | None = None) -> ConvEncoder:
    """The flow's image encoder psi as a module of its own (its parameters are the flow's
    ``params["encoder"]``), e.g. for an RL trunk that starts from a trained prior's."""
    return ConvEncoder(channels=flow.encoder_channels, hidden=flow.encoder_hidden,
                       features=flow.embedding, pooled=flow.encoder_pooled,
                       strides=flow.encoder_strides, head=flow.encoder_head,
                       activation=flow.encoder_activation, name=name)


def flow_encoder_fields(flow: "ConditionalRealNVP") -> dict:
    """The ``ConvEncoder`` fields of :func:`flow_encoder` (to compare with a saved encoder)."""
    encoder = flow_encoder(flow)
    return {f.name: getattr(encoder, f.name) for f in dataclasses.fields(ConvEncoder)
            if f.name not in ("parent", "name")}


class ConditionalRealNVP(nn.Module):
    """``log_prob(actions, images)``, ``sample(z, images)``, ``inverse(actions, images)``.

    All take batches: images (B, 48, 48, 3) uint8, actions and z (B, action_dim).
    """

    action_dim: int = 7
    num_couplings: int = 4
    hidden: Sequence[int] = (256, 256)
    encoder_channels: Sequence[int] = (16, 16, 16)
    encoder_hidden: Sequence[int] = (1024, 512)
    embedding: int = 256
    encoder_pooled: int = 2  # max-pool after this many of the first convolutions
    encoder_strides: Sequence[int] | None = None  # per convolution; None: all 1 (the paper)
    encoder_head: str = "flatten"  # or "keypoints" (networks.encoder.ConvEncoder)
    encoder_activation: str = "relu"  # of its fully connected layers; or "elu"
    # Couplings scale by exp(l), |l| < log_scale_bound (1: the paper's tanh). A dimension is
    # scaled by every other coupling, so the flow cannot narrow it below about
    # exp(-ceil(num_couplings / 2) * log_scale_bound) of the base's width (e^-2 in the paper).
    log_scale_bound: float = 1.0
    offset_head: bool = False  # a linear read-out of the object offset (module docstring)

    def setup(self):
        self.encoder = flow_encoder(self)
        self.conditioners = [MLP(self.hidden, 2 * self.action_dim, zero_init_output=True)
                             for _ in range(self.num_couplings)]
        if self.offset_head:
            self.offset_readout = nn.Dense(3)

    def bijector(self, embedding: jnp.ndarray) -> distrax.Bijector:
        """``z -> a`` for the given image embeddings (B, embedding)."""
        layers = []
        for mask, conditioner in zip(coupling_masks(self.action_dim, self.num_couplings),
                                     self.conditioners):
            def condition(x, conditioner=conditioner):
                return conditioner(jnp.concatenate([embedding, x], axis=-1))
            layers.append(distrax.MaskedCoupling(
                mask, condition, functools.partial(_affine, bound=self.log_scale_bound)))
        # Chain applies its last bijector first: z -> coupling 0 -> ... -> tanh.
        return distrax.Chain([distrax.Block(distrax.Tanh(), 1)] + layers[::-1])

    def embed(self, images: jnp.ndarray) -> jnp.ndarray:
        """psi(s): (B, embedding). Compute once to evaluate many actions per image."""
        return self.encoder(images)

    def distribution(self, images: jnp.ndarray) -> distrax.Distribution:
        """p(a | s): the base N(0, I) pushed through the flow and tanh."""
        return self.distribution_given(self.encoder(images))

    def distribution_given(self, embedding: jnp.ndarray) -> distrax.Distribution:
        """p(a | s) from the image embedding psi(s) (B, embedding)."""
        base = distrax.MultivariateNormalDiag(
            jnp.zeros(embedding.shape[:-1] + (self.action_dim,)),
            jnp.ones(embedding.shape[:-1] + (self.action_dim,)))
        return distrax.Transformed(base, self.bijector(embedding))

    def __call__(self, actions: jnp.ndarray, images: jnp.ndarray) -> jnp.ndarray:
        if self.offset_head and self.is_initializing():  # create the read-out's parameters
            return self.log_prob_and_offsets(actions, images)[0]
        return self.log_prob(actions, images)

    def log_prob_and_offsets(self, actions: jnp.ndarray, images: jnp.ndarray):
        """(log p(a | s) (B,), the predicted object offsets (B, 3) in metres), one encoder
        pass; needs ``offset_head=True``."""
        embedding = self.encoder(images)
        return (self.distribution_given(embedding).log_prob(actions),
                self.offsets_given(embedding))

    def predict_offsets(self, images: jnp.ndarray) -> jnp.ndarray:
        """The offset head's offsets (B, 3) in metres for images (B, 48, 48, 3)."""
        return self.offsets_given(self.encoder(images))

    def offsets_given(self, embedding: jnp.ndarray) -> jnp.ndarray:
        """The read-out's offsets (B, 3) in metres (it works in 10 cm: targets of order 1)."""
        if not self.offset_head:
            raise ValueError("this flow has no offset head; build it with offset_head=True "
                             "(config.model.offset_head)")
        return self.offset_readout(embedding) / 10.0

    def log_prob(self, actions: jnp.ndarray, images: jnp.ndarray) -> jnp.ndarray:
        """log p(a | s) of squashed actions in (-1, 1), tanh Jacobian included: (B,)."""
        return self.distribution(images).log_prob(actions)

    def sample(self, z: jnp.ndarray, images: jnp.ndarray) -> jnp.ndarray:
        """a = tanh(f(z; s)): (B, action_dim) in (-1, 1)."""
        return self.bijector(self.encoder(images)).forward(z)

    def inverse(self, actions: jnp.ndarray, images: jnp.ndarray) -> jnp.ndarray:
        """z = f^{-1}(atanh(a); s): (B, action_dim)."""
        return self.bijector(self.encoder(images)).inverse(actions)

    def forward_and_log_det(self, z: jnp.ndarray, images: jnp.ndarray):
        """(a, log|det da/dz|) for each sample."""
        return self.bijector(self.encoder(images)).forward_and_log_det(z)

    def sample_given(self, z: jnp.ndarray, embedding: jnp.ndarray) -> jnp.ndarray:
        """a = tanh(f(z; s)) from the image embedding psi(s) (many z per image, one encoder
        pass)."""
        return self.bijector(embedding).forward(z)

    def coupling_log_scales(self, actions: jnp.ndarray, images: jnp.ndarray) -> jnp.ndarray:
        """The log-scales ``l_k = b tanh(l_raw / b)`` (``b = log_scale_bound``) each
        coupling applies on the way from z to ``atanh(a)``: (B, num_couplings, action_dim),
        coupling 0 first (the one applied to z), 0 where a coupling passes a dimension
        through. Their sum is ``log|det d atanh(a) / dz|``; ``|l_k|`` near ``b`` means the
        coupling is at its bound.
        """
        embedding = self.encoder(images)
        y = jnp.arctanh(actions)
        scales = []
        for k in reversed(range(self.num_couplings)):
            mask = coupling_masks(self.action_dim, self.num_couplings)[k]
            params = self.conditioners[k](jnp.concatenate(
                [embedding, jnp.where(mask, y, 0.0)], axis=-1))
            shift, raw = jnp.split(params, 2, axis=-1)
            log_scale = bounded_log_scale(raw, self.log_scale_bound)
            y = jnp.where(mask, y, (y - shift) * jnp.exp(-log_scale))
            scales.append(jnp.where(mask, 0.0, log_scale))
        return jnp.stack(scales[::-1], axis=1)
