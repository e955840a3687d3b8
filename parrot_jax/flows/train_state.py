"""Maximum-likelihood training of the flow prior: train state, loss and pure update steps.

The loss (paper section 4.1) is the negative log-likelihood of the data actions,

    L(theta) = -1/B sum_i log p_theta(a_i | s_i),

computed on the squashed actions ``a`` (tanh Jacobian included). The paper trains on
``u = atanh(a)`` instead; ``log p(a | s) = log p(u | s) - sum_j log(1 - a_j^2)`` and the
second term has no parameters, so both losses have the same gradients. Both are reported
(``nll`` and ``nll_atanh``); the second is comparable with the paper's numbers.

A flow built with ``offset_head=True`` adds an auxiliary term: the Huber loss (delta 1 cm)
of its read-out of the image embedding against the end effector's offset to the nearest
object, in cm, averaged over the 3 axes and the batch, times ``offset_weight``:

    L(theta) = -1/B sum_i log p_theta(a_i | s_i) + w 1/B sum_i huber(o_theta(s_i) - o_i).

Everything here is a pure function of ``(state, batch)``; ``train.py`` jits it with
shardings and donation.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from parrot_jax import fused
from parrot_jax.flows.prior import init_params
from parrot_jax.flows.realnvp import ConditionalRealNVP
from parrot_jax.networks.augment import random_crop

# {"observations": (B, H, W, C) uint8, "actions": (B, A) float32, and for a flow with an
# offset head "object_offsets": (B, 3) float32 metres}
Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class TrainState(flax.struct.PyTreeNode):
    """Everything a resumed run needs; saved whole in every checkpoint."""

    step: jax.Array  # int32 scalar: number of updates applied
    params: Any
    opt_state: optax.OptState
    rng: jax.Array  # typed key for the random shifts (config.augment_pad), so a resumed run
    # draws the same ones


def make_optimizer(learning_rate: float, grad_clip_norm: float | None = None,
                   decay_steps: int = 0, final_lr_fraction: float = 0.1):
    """Adam (paper: lr 1e-4, constant), optionally after clipping the global gradient norm.

    ``decay_steps > 0``: the rate follows a cosine from ``learning_rate`` down to
    ``final_lr_fraction * learning_rate`` at step ``decay_steps`` (and stays there); the
    optimizer state then also counts steps, so a run cannot switch between the two.
    """
    if not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate}; expected a positive number")
    if decay_steps < 0 or not 0 < final_lr_fraction <= 1:
        raise ValueError(f"decay_steps={decay_steps}, final_lr_fraction={final_lr_fraction}; "
                         "expected decay_steps >= 0 and a fraction in (0, 1]")
    rate = (optax.cosine_decay_schedule(learning_rate, decay_steps, final_lr_fraction)
            if decay_steps else learning_rate)
    if grad_clip_norm is None:
        return optax.adam(rate)
    if not grad_clip_norm > 0:
        raise ValueError(f"grad_clip_norm={grad_clip_norm}; expected a positive number or None")
    return optax.chain(optax.clip_by_global_norm(grad_clip_norm), optax.adam(rate))


def create_train_state(flow: ConditionalRealNVP, optimizer: optax.GradientTransformation,
                       rng: jax.Array, image_shape, encoder_params=None) -> TrainState:
    """Step 0: identity-initialised flow, fresh optimizer state. ``encoder_params`` (a
    ``ConvEncoder``'s tree of the flow's encoder shapes, e.g. a saved encoder's) replace the
    fresh encoder's: the flow still starts as the identity, on pretrained features."""
    init_rng, rng = jax.random.split(rng)
    params = init_params(flow, init_rng, image_shape)
    if encoder_params is not None:
        params = {**params, "encoder": jax.tree.map(jnp.asarray, encoder_params)}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=rng)


CM = 100.0  # the offset loss works in cm (targets of order 1)


def nll_terms(params, flow: ConditionalRealNVP, batch: Batch, max_abs_action: float,
              ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Per-sample ``-log p(a | s)`` and ``-log p(atanh a | s)`` (two (B,) arrays), and the
    offset head's per-sample offset errors in cm ((B, 3); None without the head).

    Actions are clipped to ``[-max_abs_action, max_abs_action]``: data in [-1, 1] may
    touch the boundary, where ``atanh`` and the density are infinite.
    """
    actions = jnp.clip(batch["actions"], -max_abs_action, max_abs_action)
    errors = None
    if flow.offset_head:
        log_prob, offsets = flow.apply({"params": params}, actions, batch["observations"],
                                       method="log_prob_and_offsets")
        errors = (offsets - batch["object_offsets"]) * CM
    else:
        log_prob = flow.apply({"params": params}, actions, batch["observations"],
                              method="log_prob")
    log_jacobian = jnp.sum(jnp.log1p(-jnp.square(actions)), axis=-1)  # sum log(1 - a^2)
    return -log_prob, -(log_prob + log_jacobian), errors


def loss_fn(params, flow: ConditionalRealNVP, batch: Batch, max_abs_action: float,
            offset_weight: float = 1.0, freeze_encoder: bool = False
            ) -> tuple[jax.Array, Metrics]:
    """``-mean log p(a | s)`` over the batch (plus ``offset_weight`` times the offset
    head's Huber loss, with the head), and the same NLL in atanh space.
    ``freeze_encoder``: no gradient reaches the image encoder (its gradients are zeros, so
    Adam leaves it unchanged, and XLA skips the convolutions' backward pass)."""
    if freeze_encoder:
        params = {**params, "encoder": jax.lax.stop_gradient(params["encoder"])}
    nll, nll_atanh, errors = nll_terms(params, flow, batch, max_abs_action)
    loss = jnp.mean(nll)
    metrics = {"nll_atanh": jnp.mean(nll_atanh)}
    if errors is not None:
        offset_loss = jnp.mean(optax.huber_loss(errors, delta=1.0))
        metrics.update(nll=loss, offset_loss=offset_loss,
                       offset_error_cm=jnp.mean(jnp.abs(errors)))
        loss = loss + offset_weight * offset_loss
    return loss, {"loss": loss, **metrics}


def train_step(state: TrainState, batch: Batch, *, flow: ConditionalRealNVP,
               optimizer: optax.GradientTransformation, max_abs_action: float,
               augment_pad: int = 0, offset_weight: float = 1.0,
               freeze_encoder: bool = False) -> tuple[TrainState, Metrics]:
    """One Adam step on ``loss_fn``; metrics are those of the parameters before the step.

    ``augment_pad > 0`` shifts every image by a random offset in ``[-pad, pad]^2`` first
    (``networks.augment.random_crop``, edge padding), the key being
    ``fold_in(state.rng, state.step)``, so a resumed run draws the same shifts.
    """
    if augment_pad:
        key = jax.random.fold_in(state.rng, state.step)
        batch = {**batch, "observations": random_crop(key, batch["observations"], augment_pad)}
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, flow, batch, max_abs_action,
                                                     offset_weight, freeze_encoder)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def train_steps(state: TrainState, batches: Batch, **kwargs) -> tuple[TrainState, Metrics]:
    """``train_step`` over stacked batches (leading axis K), fused with ``lax.scan``
    (``parrot_jax.fused``): one dispatch for K updates. Metrics come back stacked, (K,)."""
    return fused.scan_steps(lambda s, b: train_step(s, b, **kwargs), state, batches)


def eval_step(params, batch: Batch, *, flow: ConditionalRealNVP,
              max_abs_action: float) -> Metrics:
    """Summed (not averaged) NLLs of a batch, so batches of any size combine exactly (with
    an offset head, also the summed mean-over-axes absolute offset error, cm)."""
    nll, nll_atanh, errors = nll_terms(params, flow, batch, max_abs_action)
    sums = {"nll": jnp.sum(nll), "nll_atanh": jnp.sum(nll_atanh),
            "count": jnp.asarray(nll.shape[0], jnp.float32)}
    if errors is not None:
        sums["offset_error_cm"] = jnp.sum(jnp.mean(jnp.abs(errors), axis=-1))
    return sums


def all_finite(tree) -> jax.Array:
    """True iff every leaf of ``tree`` is finite (a scalar bool)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)
