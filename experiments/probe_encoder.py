"""Probes an image encoder: can it read the gripper's offset to the nearest object, and
the scripted gripper decision, from one frame? (``experiments/encoder_probe.py`` says how.)

    python -m experiments.probe_encoder --workdir=runs/probe
    python -m experiments.probe_encoder --encoder='{"channels": [32, 64, 64], "strides": [2, 2, 1], "pooled": 0}' \
        --episodes=500 --steps=24000 --workdir=runs/probe_wide
    python -m experiments.probe_encoder --positions --workdir=runs/probe_positions
    python -m experiments.probe_encoder --positions --test_envs=test --workdir=runs/probe_test

Writes ``probe.json`` and ``probe.md`` (also printed) to the workdir, and the trained
encoder to ``WORKDIR/encoder`` (a prior can start from it:
``experiments.train_prior --config.encoder_init=WORKDIR/encoder``).
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from experiments.encoder_probe import run
from parrot_jax.envs import TEST_ENV_IDS, TRAIN_ENV_IDS, TRAINING_SETS

_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)
_ENCODER = flags.DEFINE_string(
    "encoder", '{"strides": [2, 2, 1], "pooled": 0}',
    "ConvEncoder fields as JSON (default: the :cpu prior recipe's encoder).")
_EPISODES = flags.DEFINE_integer("episodes", 500, "Scripted episodes per training task.")
_STEPS = flags.DEFINE_integer("steps", 6000, "Training steps of batch --batch_size.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_HELD_OUT = flags.DEFINE_float("held_out", 0.15, "Share of the episodes held out.")
_SEED = flags.DEFINE_integer("seed", 0, "First env seed; also seeds the training.")
_POSITIONS = flags.DEFINE_bool(
    "positions", False, "Also read the end effector's position and every object's offset from "
    "it (a third head), to tell where the nearest offset's error comes from.")
_STATE_HEADS = flags.DEFINE_bool(
    "state_heads", False, "Also read whether the gripper is open, whether some object is "
    "held, and the container's offset from the end effector (three more heads).")
_AUGMENT_PAD = flags.DEFINE_integer(
    "augment_pad", 4, "Random shifts of up to this many pixels (0: none; the prior's: 4).",
    lower_bound=0)
_TEST_ENVS = flags.DEFINE_list(
    "test_envs", [], "Also score the probe on scripted episodes of these suite envs (e.g. "
    "parrot/PlaceCanInPan-v0; 'test': every test task), scenes it was not trained on.")
_TRAIN_ENVS = flags.DEFINE_list(
    "train_envs", list(TRAIN_ENV_IDS), "Suite envs whose scripted episodes train the probe, "
    f"or the name of a training set ({', '.join(TRAINING_SETS)}: parrot_jax.envs.tasks."
    "TRAINING_SETS).")
_TEST_EPISODES = flags.DEFINE_integer("test_episodes", 100, "Scripted episodes per test env.")
_PERTURB = flags.DEFINE_float(
    "perturb", 0.0, "Share of the collected steps that execute a random translation "
    "(DART-style, as experiments.collect_data --config.perturb).", lower_bound=0.0,
    upper_bound=0.99)


def main(argv):
    del argv
    try:
        encoder = json.loads(_ENCODER.value)
    except json.JSONDecodeError as e:
        raise app.UsageError(f"--encoder={_ENCODER.value!r} is not JSON: {e}") from e
    train_envs = (TRAINING_SETS[_TRAIN_ENVS.value[0]] if len(_TRAIN_ENVS.value) == 1
                  and _TRAIN_ENVS.value[0] in TRAINING_SETS else tuple(_TRAIN_ENVS.value))
    test_envs = tuple(TEST_ENV_IDS) if _TEST_ENVS.value == ["test"] else tuple(_TEST_ENVS.value)
    result = run(_WORKDIR.value, _EPISODES.value, _STEPS.value, encoder, _HELD_OUT.value,
                 _BATCH.value, _SEED.value, _POSITIONS.value,
                 _AUGMENT_PAD.value, _PERTURB.value, test_envs, _TEST_EPISODES.value,
                 train_envs, _STATE_HEADS.value)
    with open(os.path.join(_WORKDIR.value, "probe.md")) as f:
        print(f.read())
    print(f"wrote {_WORKDIR.value}/probe.json, probe.md, encoder/ "
          f"({result['seconds']:.0f} s)")


if __name__ == "__main__":
    app.run(main)
