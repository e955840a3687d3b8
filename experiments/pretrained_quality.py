"""What a pretrained baseline model gives an RL agent, on its held-out episodes.

    python -m experiments.pretrained_quality --workdir=runs/cvae
    python -m experiments.pretrained_quality --workdir=runs/trajvae --dataset=runs/data/prior

For a cVAE (HIRL) or TrajVAE (TrajRL): the decoded actions (plans) for ``z = 0`` and for
``z ~ N(0, I)`` against the held-out actions, beside the training mean and shuffled
held-out actions; for a VAE (VAE-features): its reconstruction at ``mu`` against the mean
image (``parrot_jax/pretrained/quality.py``). The held-out episodes are the run's own
validation split. Writes ``WORKDIR/quality.json`` (atomically) and prints it.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from experiments.common import check_or_exit, quiet_orbax, warnings_only_unless_asked
from parrot_jax import io
from parrot_jax.pretrained import quality

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of experiments.pretrain.", required=True)
_DATASET = flags.DEFINE_string("dataset", None, "Dataset (default: the run's own).")
_SAMPLES = flags.DEFINE_integer("samples", 4096, "Held-out steps (cVAE, VAE).", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seeds the held-out sample, z and the shuffle.")


def main(argv):
    del argv
    warnings_only_unless_asked()
    quiet_orbax()
    check_or_exit(quality.held_out, _WORKDIR.value, _DATASET.value)
    result = quality.report(_WORKDIR.value, _DATASET.value, _SAMPLES.value, _SEED.value)
    path = os.path.join(_WORKDIR.value, "quality.json")
    io.write_json(path, result)
    print(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
