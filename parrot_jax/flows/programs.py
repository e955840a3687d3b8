"""The jitted programs of a flow-prior training run, with their shardings.

Parameters and optimizer state are replicated over the mesh; a batch is split over its
``"data"`` axis (``parrot_jax.pretrained.loop.jit_programs``, shared with every
pretrained model).
"""

from __future__ import annotations

import functools

from jax.sharding import Mesh

from parrot_jax.flows import train_state
from parrot_jax.flows.realnvp import ConditionalRealNVP, flow_encoder_fields
from parrot_jax.networks import saved_encoder
from parrot_jax.pretrained.loop import FAST_COMPILE, Programs, StackedSampler, jit_programs  # noqa: F401 (this module's API)


# Cached so that runs repeated in one process (tests, sweeps) reuse compiled programs;
# every argument is hashable and fixes the compiled code.
@functools.lru_cache(maxsize=16)
def compile_programs(flow: ConditionalRealNVP, mesh: Mesh, image_shape: tuple[int, ...],
                     learning_rate: float, grad_clip_norm: float | None,
                     steps_per_dispatch: int, max_abs_action: float,
                     fast_compile: bool = False, augment_pad: int = 0,
                     decay_steps: int = 0, final_lr_fraction: float = 0.1,
                     offset_weight: float = 1.0, encoder_init: str = "",
                     freeze_encoder: bool = False) -> Programs:
    """Jits ``train_state``'s pure functions for this flow, optimizer and mesh.
    ``encoder_init``: a saved encoder's directory (``networks.saved_encoder``) the init
    starts the flow's encoder from; ``freeze_encoder``: updates leave the encoder as is."""
    optimizer = train_state.make_optimizer(learning_rate, grad_clip_norm, decay_steps,
                                           final_lr_fraction)
    kwargs = dict(flow=flow, max_abs_action=max_abs_action)
    step_kwargs = dict(optimizer=optimizer, augment_pad=augment_pad,
                       offset_weight=offset_weight, freeze_encoder=freeze_encoder, **kwargs)
    return jit_programs(
        mesh,
        init=functools.partial(train_state.create_train_state, flow, optimizer,
                               image_shape=image_shape,
                               encoder_params=pretrained_encoder(flow, encoder_init,
                                                                 image_shape)),
        step=functools.partial(train_state.train_step, **step_kwargs),
        fused_step=functools.partial(train_state.train_steps, **step_kwargs),
        eval_step=functools.partial(train_state.eval_step, **kwargs),
        all_finite=train_state.all_finite, steps_per_dispatch=steps_per_dispatch,
        fast_compile=fast_compile)


def pretrained_encoder(flow: ConditionalRealNVP, directory: str, image_shape):
    """The parameters of the encoder saved in ``directory`` (None for ""), checked to be
    the flow's encoder (ValueError naming every field that differs)."""
    if not directory:
        return None
    fields, params = saved_encoder.load_encoder(directory, image_shape)
    saved_encoder.check_same_encoder(fields, flow_encoder_fields(flow), directory)
    return params
