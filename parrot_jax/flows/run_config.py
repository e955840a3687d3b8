"""The training run's description in ``WORKDIR/config.json``, and the checks made on it.

``config.json`` holds the full training config plus what the dataset decided (the
model's ``action_dim``, ``image_shape``, the resolved dataset paths and sizes), so
``load_prior(WORKDIR)`` can rebuild the flow. A rerun in the same workdir must agree on
the fields that define what is trained (``RUN_DEFINING``); the rest (``num_steps``,
logging intervals, ...) may change, e.g. to extend a finished run.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import ml_collections

from parrot_jax import io, legacy
from parrot_jax.flows.prior import CONFIG_FILE, with_legacy_fields

RUN_DEFINING = ("model", "data", "validation_fraction", "seed", "lr_schedule")
# The value a run written before a defining field existed had.
LEGACY_DEFAULTS = {"lr_schedule": "constant"}
LR_SCHEDULES = ("constant", "cosine")


def dataset_paths(spec: str) -> list[str]:
    """``config.dataset`` ("DIR" or "DIR1,DIR2") as a list of absolute paths."""
    paths = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not paths:
        raise ValueError(f"config.dataset={spec!r}; expected a dataset directory or a "
                         "comma-separated list of them (--config.dataset=DIR[,DIR...])")
    return [os.path.abspath(p) for p in paths]


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


def check_and_write(workdir: str, description: dict[str, Any],
                    defining: tuple[str, ...] = RUN_DEFINING,
                    added: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Compares ``description`` with ``WORKDIR/config.json`` (if any), then writes it.

    Raises ``ValueError`` listing every ``defining`` field that differs. ``added``: section
    -> {field: value}, fields added to a section after runs were written, with the value
    those runs had (``parrot_jax.legacy``).
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)

        def comparable(k, d):
            return _comparable(k, d.get(k), added)

        differing = [k for k in defining if comparable(k, saved) != comparable(k, description)]
        if differing:
            details = "; ".join(f"{k}: workdir has {comparable(k, saved)!r}, config "
                                f"has {comparable(k, description)!r}"
                                for k in differing)
            raise ValueError(f"{workdir} holds a different training run ({details}). Use a "
                             "new --workdir, or the same settings to resume")
    io.write_json(path, description)


def _comparable(field: str, value, added: Mapping[str, Mapping[str, Any]] | None = None):
    """``value`` as a run written before the field existed had it: a missing field as
    ``LEGACY_DEFAULTS`` says, a ``model`` section with its missing fields as
    ``prior.LEGACY_MODEL_FIELDS`` says, another section's as ``added`` says; lists for
    tuples."""
    if value is None:
        return LEGACY_DEFAULTS.get(field)
    if field == "model" and isinstance(value, dict):
        value = with_legacy_fields(value)
    if added and field in added and isinstance(value, dict):
        value = legacy.with_added_fields(field, value, added)
    return to_json(value)


def to_json(value):
    """Tuples to lists, as a JSON round trip would make them (so comparisons agree)."""
    return json.loads(json.dumps(value))
