"""Diagnoses behavioral priors: where their rollouts lose against the scripted policies.

    python -m experiments.diagnose_prior --prior=runs/prior --workdir=runs/diagnosis
    python -m experiments.diagnose_prior --prior=runs/p1k,runs/p4k --labels=1K,4K \
        --env=train --checkpoints=all --workdir=runs/diagnosis

For each prior and task (``--env``: ``train``, the default, for GraspTrain and
PickPlaceTrain; ``all`` for the eight test tasks; or ids joined by commas), on the same
env seeds: the scripted policy, the prior with a fresh z every step, z = 0 and z held
per episode, and uniform random actions; task and some-object success, phase-resolved
outcomes, the prior's density per action dimension against the data's floor, and
learning curves (``experiments/prior_diagnosis.py`` says what each measures). Writes
``diagnosis.json``, ``diagnosis.md`` (also printed) and ``gifs/<label>/<Task>_<policy>.gif``
to the workdir.
"""

from __future__ import annotations

import os
import time

from absl import app, flags

from experiments.common import warnings_only_unless_asked
from experiments.prior_diagnosis import run

_PRIOR = flags.DEFINE_list("prior", None, "Workdir(s) of experiments.train_prior.",
                           required=True)
_LABELS = flags.DEFINE_list("labels", None, "A name per prior (default: directory names).")
_ENV = flags.DEFINE_string("env", "train", "'train', 'all' (the test tasks) or env ids.")
_EPISODES = flags.DEFINE_integer("episodes", 100, "Episodes per task and policy.")
_SEED = flags.DEFINE_integer("seed", 0, "First env seed; also seeds z and random actions.")
_NUM_ENVS = flags.DEFINE_integer("num_envs", 8, "Envs stepped together.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Env processes (0: all cores).")
_LATENTS = flags.DEFINE_list("latents", ["fresh", "zero", "episode"],
                             "How the prior draws z: fresh (every step), zero, episode.")
_NLL_EPISODES = flags.DEFINE_integer(
    "nll_episodes", 40, "Scripted episodes per training task whose states the density "
    "section uses (0: skip it).")
_NLL_SAMPLES = flags.DEFINE_integer("nll_samples", 64, "Prior samples per state (KDE).")
_CHECKPOINTS = flags.DEFINE_enum("checkpoints", "latest", ["latest", "all"],
                                 "'all': fresh-z rollouts at every saved checkpoint too.")
_CURVE_EPISODES = flags.DEFINE_integer("curve_episodes", 48,
                                       "Episodes per task at each checkpoint (--checkpoints=all).")
_GIF_EPISODES = flags.DEFINE_integer("gif_episodes", 4, "Episodes per GIF (0: none).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)


def main(argv):
    del argv
    warnings_only_unless_asked()
    start = time.time()
    run(_PRIOR.value, _WORKDIR.value, _ENV.value, _EPISODES.value, _SEED.value,
        _NUM_ENVS.value, _WORKERS.value, _LATENTS.value, _NLL_EPISODES.value,
        _NLL_SAMPLES.value, _CHECKPOINTS.value, _CURVE_EPISODES.value, _GIF_EPISODES.value,
        _LABELS.value)
    with open(os.path.join(_WORKDIR.value, "diagnosis.md")) as f:
        print(f.read())
    print(f"wrote {_WORKDIR.value}/diagnosis.json, diagnosis.md, gifs/ "
          f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    app.run(main)
