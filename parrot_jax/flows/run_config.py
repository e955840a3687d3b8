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
from parrot_jax.flows.prior import LEGACY_MODEL_FIELDS
from parrot_jax.run_config import dataset_paths, to_json  # noqa: F401 (this module's API)

RUN_DEFINING = ("model", "data", "validation_fraction", "seed", "lr_schedule")
# The value a run written before a defining field existed had.
LEGACY_DEFAULTS = {"lr_schedule": "constant"}
LR_SCHEDULES = ("constant", "cosine")


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raise ``ValueError`` naming the first invalid training setting."""
    for name in ("num_steps", "batch_size", "steps_per_dispatch", "log_every", "eval_every",
                 "checkpoint_every", "max_checkpoints"):
        if int(config[name]) < 1:
            raise ValueError(f"config.{name}={config[name]}; expected a positive integer")
    if config.eval_batches < 0:
        raise ValueError(f"config.eval_batches={config.eval_batches}; expected >= 0")
    n = config.steps_per_dispatch
    for name in ("num_steps", "log_every", "eval_every", "checkpoint_every"):
        if config[name] % n:
            raise ValueError(f"config.{name}={config[name]} is not a multiple of "
                             f"config.steps_per_dispatch={n} (steps run {n} at a time)")
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"config.lr_schedule={config.lr_schedule!r}; expected one of "
                         f"{LR_SCHEDULES}")
    if config.augment_pad < 0:
        raise ValueError(f"config.augment_pad={config.augment_pad}; expected >= 0 pixels")
    if not 0.0 < config.max_abs_action < 1.0:
        raise ValueError(f"config.max_abs_action={config.max_abs_action}; expected a number "
                         "in (0, 1) (atanh is infinite at +-1)")
    if not config.learning_rate > 0:
        raise ValueError(f"config.learning_rate={config.learning_rate}; expected a positive "
                         "number")
    if not 0.0 <= config.final_lr_fraction <= 1.0:
        raise ValueError(f"config.final_lr_fraction={config.final_lr_fraction}; expected a "
                         "number in [0, 1]")
    if config.grad_clip_norm is not None and not config.grad_clip_norm >= 0:
        raise ValueError(f"config.grad_clip_norm={config.grad_clip_norm}; expected None or "
                         ">= 0 (0: off)")
    if not 0.0 <= config.validation_fraction < 1.0:
        raise ValueError(f"config.validation_fraction={config.validation_fraction}; expected "
                         "a fraction in [0, 1) of the episodes")
    for name in ("seed", "num_devices"):  # max_episodes: first_episodes, with the dataset
        if int(config[name]) < 0:
            raise ValueError(f"config.{name}={config[name]}; expected an integer >= 0")
    for name in ("prefetch", "prefetch_threads"):
        if int(config[name]) < 1:
            raise ValueError(f"config.{name}={config[name]}; expected a positive integer")
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
    """``check_config``, and that every ``config.dataset`` directory holds a dataset (a
    ``metadata.json``): what a user can get wrong before training starts."""
    check_config(config)
    shared.check_datasets(config.dataset)


def first_episodes(dataset, max_episodes: int):
    """The dataset's first ``max_episodes`` episodes in stored order (0: all of them).

    A collection's shards hold an exact task mix, so a prefix of whole shards is the
    dataset a smaller collection with the same seed would have written (paper Figure 6
    trains priors on prefixes of one dataset).
    """
    if max_episodes < 0 or max_episodes > dataset.num_episodes:
        raise ValueError(f"config.max_episodes={max_episodes}; expected 0 (all) or at most "
                         f"the dataset's {dataset.num_episodes} episodes")
    if max_episodes in (0, dataset.num_episodes):
        return dataset
    return dataset.select_episodes(range(max_episodes))


def describe_run(config: ml_collections.ConfigDict, dataset) -> dict[str, Any]:
    """The JSON written to ``config.json``: the config plus dataset-derived fields."""
    description = to_json(config.to_dict())
    model = dict(description["model"])
    if model.get("action_dim") not in (None, dataset.action_dim):
        raise ValueError(f"config.model.action_dim={model['action_dim']} but the dataset's "
                         f"actions are {dataset.action_dim}-D; leave it unset (None)")
    model["action_dim"] = dataset.action_dim
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
