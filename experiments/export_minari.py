"""Writes a Minari dataset: a collected dataset, or episodes of a trained agent.

    python -m experiments.export_minari --dataset=runs/data/pickupcan \
        --dataset_id=parrot/PickUpCan/scripted-v0
    python -m experiments.export_minari --run=runs/rl/sac_pendulum --episodes=50 \
        --stochastic --dataset_id=pendulum/sac-v0

Datasets go under ``MINARI_DATASETS_PATH`` (Minari's default ``~/.minari/datasets``),
images raw (``--jpeg`` for Minari's smaller, lossy encoding). ``--run`` rolls the agent
of an ``experiments.train_rl`` workdir out from its latest checkpoint (or ``--step``;
episode ``i`` from
env seed ``--seed + i``; ``--stochastic`` samples its policy, else its mode) and prints
the episodes' mean return: the behaviour policy's, to compare offline learners with. Any
agent reads the result with ``--config.offline.dataset=minari:ID``.
"""

import os
import sys

from absl import app, flags

from experiments.common import check_or_exit, warnings_only_unless_asked

_DATASET = flags.DEFINE_string("dataset", None, "Dataset DIR[,DIR] of experiments.collect_data.")
_RUN = flags.DEFINE_string("run", None, "Run directory of experiments.train_rl.")
_DATASET_ID = flags.DEFINE_string("dataset_id", None, "Minari id, e.g. parrot/PickUpCan/x-v0.",
                                  required=True)
_EPISODES = flags.DEFINE_integer("episodes", 50, "--run: episodes to record.", lower_bound=1)
_STOCHASTIC = flags.DEFINE_boolean("stochastic", False, "--run: sample the policy.")
_STEP = flags.DEFINE_integer("step", None, "--run: checkpoint (env steps); default: latest.")
_SEED = flags.DEFINE_integer("seed", 0, "--run: env seed of the first episode.", lower_bound=0)
_JPEG = flags.DEFINE_boolean("jpeg", False, "JPEG-encode images (lossy).")


def check_flags(dataset, run) -> None:
    if (dataset is None) == (run is None):
        raise ValueError("pass exactly one of --dataset=DIR (a collected dataset) or "
                         "--run=WORKDIR (a trained agent's episodes)")
    if dataset is not None:
        from parrot_jax import run_config

        run_config.check_datasets(dataset)
    else:
        from parrot_jax.agents.evaluate import read_description

        read_description(run)


def main(argv):
    del argv
    warnings_only_unless_asked()
    check_or_exit(check_flags, _DATASET.value, _RUN.value)
    from parrot_jax.data import minari_io

    if _DATASET.value is not None:
        from parrot_jax import run_config
        from parrot_jax.data import load_dataset

        data = load_dataset(run_config.dataset_paths(_DATASET.value))
        spaces, what = {}, f"{data.num_episodes} episodes of {_DATASET.value}"
    else:
        from parrot_jax.agents.evaluate import agent_episodes

        data, obs_space, act_space, step = agent_episodes(
            _RUN.value, _EPISODES.value, _STOCHASTIC.value, _SEED.value, _STEP.value)
        spaces = {"observation_space": obs_space, "action_space": act_space}
        returns = data.episode_returns()
        what = (f"{data.num_episodes} episodes of {_RUN.value} at env step {step} "
                f"({'sampled' if _STOCHASTIC.value else 'mode'}): mean return "
                f"{returns.mean():.1f} (std {returns.std():.1f})")
    try:
        exported = minari_io.export_dataset(data, _DATASET_ID.value, jpeg=_JPEG.value,
                                            description=what, **spaces)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
    print(f"wrote Minari dataset {_DATASET_ID.value} under {root}: {what}; "
          f"{exported.total_steps} steps")


if __name__ == "__main__":
    app.run(main)
