"""Rolls out a behavioral prior with z ~ N(0, I) beside uniform random actions (Figure 4).

    python -m experiments.evaluate_prior --prior=runs/prior --env=parrot/PickUpCan-v0 \
        --episodes=100 --workdir=runs/prior_rollouts
    python -m experiments.evaluate_prior --prior=runs/prior --env=all --workdir=...
    python -m experiments.evaluate_prior --prior=runs/prior --env=parrot/PlaceCanInPan-v0 \
        --container_rgba=0.7,0.45,0.15 --workdir=...   # the pan drawn in brown

Episode i of both policies starts from env seed seed + i. ``--env=all`` runs the eight
test tasks; ``--env`` also takes a task outside the suite by ``module:id``, e.g.
``experiments.diagnostic_envs:parrot/PickUpAnyNovel-v0``. Writes to the workdir:
- ``prior_rollouts.json``: per task the prior's and random actions' successes, episodes,
  success rate and 95% Wilson interval (and per-episode outcomes), and the same for
  "object lifted" (the gripper held any object off the table at some step: useful
  interaction, the paper's Figure 4 point), with the flags, the prior's model config and
  checkpoint step;
- ``prior_rollouts.md``: the table (also printed);
- ``gifs/<Task>_prior.gif`` and ``gifs/<Task>_random.gif``: the first ``--gif_episodes``
  episodes side by side (the same scenes for both).
"""

from __future__ import annotations

import time

from absl import app, flags

from experiments.common import check_or_exit, warnings_only_unless_asked
from experiments.prior_rollouts import check_env_kwargs, env_ids, run
from parrot_jax.flows.prior import check_prior_dir

_PRIOR = flags.DEFINE_string("prior", None, "Workdir of experiments.train_prior.", required=True)
_ENV = flags.DEFINE_string("env", "parrot/PickUpCan-v0",
                           "Env id(s), comma-separated ('module:id' imports its module), or "
                           "'all' (the test tasks).")
_EPISODES = flags.DEFINE_integer("episodes", 100, "Episodes per task and policy.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "First env seed; also seeds z and the random actions.",
                             lower_bound=0)
_NUM_ENVS = flags.DEFINE_integer("num_envs", 8, "Envs stepped together (one batch per step).",
                                 lower_bound=1)
_WORKERS = flags.DEFINE_integer("workers", 0, "Env processes (0: all cores).", lower_bound=0)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of the prior (default: latest).")
_GIF_EPISODES = flags.DEFINE_integer("gif_episodes", 4, "Episodes per GIF (0: no GIFs).",
                                     lower_bound=0)
_CONTAINER_RGBA = flags.DEFINE_list(
    "container_rgba", [], "R,G,B[,A] in [0, 1]: draw the place tasks' container in this "
    "colour instead of its own (the same scenes otherwise), e.g. 0.7,0.45,0.15.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)


def _env_kwargs(env: str, container_rgba: list[str]) -> dict:
    """The envs' constructor arguments from the flags, checked against ``--env``."""
    if not container_rgba:
        return {}
    try:
        rgba = tuple(float(v) for v in container_rgba)
    except ValueError:
        raise ValueError(f"--container_rgba={','.join(container_rgba)}: expected 3 or 4 "
                         "numbers in [0, 1]") from None
    check_env_kwargs(env_ids(env), {"container_rgba": rgba})
    return {"container_rgba": rgba}


def main(argv):
    del argv
    warnings_only_unless_asked()
    check_or_exit(check_prior_dir, _PRIOR.value)
    env_kwargs = check_or_exit(_env_kwargs, _ENV.value, _CONTAINER_RGBA.value)
    start = time.time()
    run(_PRIOR.value, _ENV.value, _EPISODES.value, _SEED.value, _NUM_ENVS.value, _WORKERS.value,
        _WORKDIR.value, _STEP.value, _GIF_EPISODES.value, env_kwargs)
    print(f"wrote {_WORKDIR.value}/prior_rollouts.json, prior_rollouts.md, gifs/ "
          f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    app.run(main)
