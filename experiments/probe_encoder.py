"""Probes an image encoder: can it read the gripper's offset to the nearest object, and
the scripted gripper decision, from one frame? (``experiments/encoder_probe.py`` says how.)

    python -m experiments.probe_encoder --workdir=runs/probe
    python -m experiments.probe_encoder --encoder='{"channels": [32, 64, 64], "strides": [2, 2, 1], "pooled": 0}' \
        --episodes=500 --steps=24000 --workdir=runs/probe_wide
    python -m experiments.probe_encoder --positions --workdir=runs/probe_positions

Writes ``probe.json`` and ``probe.md`` (also printed) to the workdir, and the trained
encoder to ``WORKDIR/encoder`` (a prior can start from it:
``experiments.train_prior --config.encoder_init=WORKDIR/encoder``).
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from experiments.encoder_probe import run

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
_AUGMENT_PAD = flags.DEFINE_integer(
    "augment_pad", 4, "Random shifts of up to this many pixels (0: none; the prior's: 4).",
    lower_bound=0)
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
    result = run(_WORKDIR.value, _EPISODES.value, _STEPS.value, encoder, _HELD_OUT.value,
                 _BATCH.value, _SEED.value, _POSITIONS.value,
                 _AUGMENT_PAD.value, _PERTURB.value)
    with open(os.path.join(_WORKDIR.value, "probe.md")) as f:
        print(f.read())
    print(f"wrote {_WORKDIR.value}/probe.json, probe.md, encoder/ "
          f"({result['seconds']:.0f} s)")


if __name__ == "__main__":
    app.run(main)
