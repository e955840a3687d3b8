"""The training run's description in ``WORKDIR/config.json``, and the checks made on it.

``config.json`` holds the full training config plus what the dataset decided (the
model's ``action_dim``, ``image_shape``, the resolved dataset paths and sizes), so
``load_prior(WORKDIR)`` can rebuild the flow. A rerun in the same workdir must agree on
the fields that define what is trained (``RUN_DEFINING``); the rest (``num_steps``,
logging intervals, ...) may change, e.g. to extend a finished run.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from parrot_jax import run_config as shared
from parrot_jax.flows.prior import LEGACY_MODEL_FIELDS, make_flow
from parrot_jax.flows.realnvp import flow_encoder_fields
from parrot_jax.networks import saved_encoder
from parrot_jax.pretrained.loop import check_loop_config, first_episodes  # noqa: F401 (this module's API)
from parrot_jax.run_config import dataset_paths, to_json  # noqa: F401 (this module's API)

RUN_DEFINING = ("model", "data", "validation_fraction", "seed", "lr_schedule", "encoder_init",
                "freeze_encoder")
# The value a run written before a defining field existed had.
LEGACY_DEFAULTS = {"lr_schedule": "constant", "encoder_init": "", "freeze_encoder": False}
LR_SCHEDULES = ("constant", "cosine")


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raise ``ValueError`` naming the first invalid training setting."""
    check_loop_config(config)
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"config.lr_schedule={config.lr_schedule!r}; expected one of "
                         f"{LR_SCHEDULES}")
    if config.augment_pad < 0:
        raise ValueError(f"config.augment_pad={config.augment_pad}; expected >= 0 pixels")
    if not 0.0 < config.max_abs_action < 1.0:
        raise ValueError(f"config.max_abs_action={config.max_abs_action}; expected a number "
                         "in (0, 1) (atanh is infinite at +-1)")
    if not 0.0 <= config.final_lr_fraction <= 1.0:
        raise ValueError(f"config.final_lr_fraction={config.final_lr_fraction}; expected a "
                         "number in [0, 1]")
    if not config.offset_loss_weight >= 0:
        raise ValueError(f"config.offset_loss_weight={config.offset_loss_weight}; expected a "
                         "number >= 0")
    check_model(config.model)


def check_model(model) -> None:
    """ValueError naming the first invalid ``config.model`` field (sizes, bounds)."""
    if int(model.num_couplings) < 1:
        raise ValueError(f"config.model.num_couplings={model.num_couplings}; expected >= 1")
    for name in ("hidden", "encoder_channels", "encoder_hidden"):
        shared.check_layer_sizes(f"model.{name}", model[name])
    if int(model.embedding) < 1:
        raise ValueError(f"config.model.embedding={model.embedding}; expected >= 1")
    if not model.log_scale_bound > 0:
        raise ValueError(f"config.model.log_scale_bound={model.log_scale_bound}; expected a "
                         "positive bound")


def check_inputs(config: ml_collections.ConfigDict) -> None:
    """``check_config``, that every ``config.dataset`` directory holds a dataset (a
    ``metadata.json``) and that ``config.encoder_init`` holds a saved encoder of the
    model's architecture: what a user can get wrong before training starts."""
    check_config(config)
    shared.check_datasets(config.dataset)
    if config.encoder_init:
        saved = saved_encoder.read_config(config.encoder_init)["encoder"]
        saved_encoder.check_same_encoder(
            saved, flow_encoder_fields(make_flow(config.model.to_dict())), config.encoder_init)


def describe_run(config: ml_collections.ConfigDict, dataset) -> dict[str, Any]:
    """The JSON written to ``config.json``: the config plus dataset-derived fields."""
    description = to_json(config.to_dict())
    model = dict(description["model"])
    if model.get("action_dim") not in (None, dataset.action_dim):
        raise ValueError(f"config.model.action_dim={model['action_dim']} but the dataset's "
                         f"actions are {dataset.action_dim}-D; leave it unset (None)")
    model["action_dim"] = dataset.action_dim
    if model.get("offset_head") and dataset.object_offsets is None:
        raise ValueError(f"config.model.offset_head=True needs the object offsets, but the "
                         f"dataset {list(dataset.paths)} does not store them (collected "
                         "before they were kept, or merged with such a dataset); collect it "
                         "again with experiments.collect_data, or set offset_head=False")
    description.update(
        model=model, image_shape=list(dataset.image_shape), action_dim=dataset.action_dim,
        data={"paths": dataset_paths(config.dataset), "num_episodes": dataset.num_episodes,
              "num_steps": dataset.num_steps})
    return description


def check_and_write(workdir: str, description: dict[str, Any]) -> None:
    """``parrot_jax.run_config.check_and_write`` with the prior run's defining fields and
    the values of fields added since (``LEGACY_DEFAULTS``, ``prior.LEGACY_MODEL_FIELDS``)."""
    shared.check_and_write(workdir, description, RUN_DEFINING,
                           added={"model": LEGACY_MODEL_FIELDS}, missing=LEGACY_DEFAULTS)
