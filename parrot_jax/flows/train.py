"""``train_and_evaluate(config, workdir)``: fit the flow prior by maximum likelihood.

Writes ``WORKDIR/config.json`` (read by ``load_prior``), Orbax checkpoints of the whole
train state in ``WORKDIR/checkpoints``, and metrics (``parrot_jax.metrics``); evaluation
reports the validation NLLs ``eval/nll`` and ``eval/nll_atanh`` (per action, nats).
Batches are split over every device on the ``"data"`` mesh axis with parameters
replicated. The loop, and with it exact resume, is the one every pretrained model shares
(``parrot_jax.pretrained.loop``).
"""

from __future__ import annotations

import ml_collections

from parrot_jax.flows import run_config, train_state
from parrot_jax.flows.prior import make_flow
from parrot_jax.flows.programs import compile_programs
from parrot_jax.pretrained import loop


class FlowPrior:
    """The flow prior as a ``loop.Model``."""

    check_inputs = staticmethod(run_config.check_inputs)
    describe = staticmethod(run_config.describe_run)
    check_and_write = staticmethod(run_config.check_and_write)

    @staticmethod
    def sampling(config) -> dict:
        # single frames with their images, and the offsets an offset head is trained on
        return {"extras": ("object_offsets",)} if config.model.offset_head else {}

    @staticmethod
    def programs(description, mesh, config) -> loop.Programs:
        return compile_programs(
            make_flow(description["model"]), mesh, tuple(description["image_shape"]),
            config.learning_rate, config.grad_clip_norm, config.steps_per_dispatch,
            config.max_abs_action, config.fast_compile, config.augment_pad,
            config.num_steps if config.lr_schedule == "cosine" else 0,
            config.final_lr_fraction, config.offset_loss_weight, config.encoder_init,
            config.freeze_encoder)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> train_state.TrainState:
    """Trains (or resumes, or finds finished) the run in ``workdir``; returns its state."""
    return loop.fit(config, workdir, FlowPrior)
