"""Config fields added after runs were written, with the value those runs had.

A run's ``config.json`` (or a sweep's record of a finished job) written before a field
existed is read as if it held that value. So a new field whose default keeps the old
behaviour neither refuses to resume an old run ("holds a different training run") nor
makes a sweep run a finished job again. Kept free of JAX: the sweep's scheduler reads it.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

# RL run configs (experiments/configs/rl.py): section -> {field: value before it existed};
# the section ``TOP`` holds fields added at the top level of the config.
TOP = ""
RL_FIELDS: dict[str, dict[str, Any]] = {
    # keep_first_checkpoint's default (True) is not its old value: a sweep's RL jobs
    # recorded done before it run once more, restore their last step and end in seconds
    TOP: {"pretrained": "", "learner": "", "keep_first_checkpoint": False},
    "network": {"trunk": "conv", "freeze_trunk": False, "trunk_dtype": "float32",
                "vmap_trunks": False},
    "parrot": {"critic_input": "z"},
    # sections added whole (a run written before them held these values)
    "offline": {"dataset": "", "rewards": "dataset", "steps": 0, "mix": 0.0},
    "iql": {"value_lr": 3e-4, "expectile": 0.7, "inverse_temperature": 3.0,
            "max_weight": 100.0},
    "awac": {"temperature": 2.0, "max_advantage": None, "q_max": None},
    "spirl": {"target_divergence": 5.0, "max_latent": 2.0, "init_from_prior": True},
}
# Prior training configs (experiments/configs/prior.py), the same way; it lists the fields
# added since the table was made (2026-12-03), not earlier ones.
PRIOR_FIELDS: dict[str, dict[str, Any]] = {
    TOP: {"offset_loss_weight": 1.0},
    "model": {"offset_head": False},
}
# A sweep job's kind -> the added fields of its config (``experiments.jobs``).
JOB_FIELDS = {"rl": RL_FIELDS, "prior": PRIOR_FIELDS}


def with_added_fields(section: str, values: Mapping[str, Any],
                      added: Mapping[str, Mapping[str, Any]] = RL_FIELDS) -> dict[str, Any]:
    """``values`` (one section of a config) with its missing added fields filled in."""
    return {**added.get(section, {}), **values}


def without_added_defaults(config: Mapping[str, Any],
                           added: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A copy of ``config`` without the added fields that hold their old value: what the
    config would have been before they existed (for digests that must not change)."""
    config = copy.deepcopy(dict(config))
    for name, old in added.get(TOP, {}).items():
        if name in config and config[name] == old:
            del config[name]
    for section, fields in added.items():
        values = config.get(section)
        if not isinstance(values, dict):
            continue
        for name, old in fields.items():
            if name in values and values[name] == old:
                del values[name]
        if not values:  # a section added whole, at its old values
            del config[section]
    return config
