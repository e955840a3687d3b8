"""A training run's description in ``WORKDIR/config.json``, shared by the prior and RL
trainers: a rerun in the same workdir must agree on the fields that define what is
trained; the rest (step budgets, logging intervals, ...) may change, e.g. to extend a
finished run.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from parrot_jax import io, legacy

CONFIG_FILE = "config.json"


def dataset_paths(spec: str) -> list[str]:
    """``config.dataset`` ("DIR" or "DIR1,DIR2") as a list of absolute paths."""
    paths = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not paths:
        raise ValueError(f"config.dataset={spec!r}; expected a dataset directory or a "
                         "comma-separated list of them (--config.dataset=DIR[,DIR...])")
    return [os.path.abspath(p) for p in paths]


def check_layer_sizes(field: str, sizes) -> None:
    """ValueError unless ``sizes`` (the config field ``field``) is a non-empty tuple of
    positive layer sizes."""
    sizes = tuple(sizes)
    if not sizes or any(int(n) < 1 for n in sizes):
        raise ValueError(f"config.{field}={sizes}; expected a non-empty tuple of positive "
                         "layer sizes")


def check_datasets(spec: str) -> list[str]:
    """``dataset_paths(spec)``; ``DatasetError`` (a ValueError) naming the first one that
    is not a dataset (missing, no or a bad ``metadata.json``). Reads only the metadata."""
    from parrot_jax.data.dataset import read_metadata

    paths = dataset_paths(spec)
    for path in paths:
        read_metadata(path)
    return paths


def check_and_write(workdir: str, description: dict[str, Any], defining: tuple[str, ...],
                    added: Mapping[str, Mapping[str, Any]] | None = None,
                    missing: Mapping[str, Any] | None = None) -> None:
    """Compares ``description`` with ``WORKDIR/config.json`` (if any), then writes it.

    Raises ``ValueError`` listing every ``defining`` field that differs. Runs written
    before a field existed compare as if they held the value they had: ``added`` maps a
    section to {field: value} for fields added inside it (``parrot_jax.legacy``),
    ``missing`` a top-level field to its value.
    """
    path = os.path.join(workdir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)

        def comparable(field, run):
            value = run.get(field)
            if value is None and added and field in added:
                value = {}  # a section added whole: its old values
            if value is None:
                return (missing or {}).get(field)
            if added and field in added and isinstance(value, dict):
                value = legacy.with_added_fields(field, value, added)
            return to_json(value)

        differing = [k for k in defining if comparable(k, saved) != comparable(k, description)]
        if differing:
            details = "; ".join(f"{k}: workdir has {comparable(k, saved)!r}, config "
                                f"has {comparable(k, description)!r}" for k in differing)
            raise ValueError(f"{workdir} holds a different training run ({details}). Use a "
                             "new --workdir, or the same settings to resume")
    io.write_json(path, description)


def to_json(value):
    """Tuples to lists, as a JSON round trip would make them (so comparisons agree)."""
    return json.loads(json.dumps(value))
