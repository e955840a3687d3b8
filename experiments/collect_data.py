"""Collects a prior dataset with the scripted policies; rerun the same command to resume.

    python -m experiments.collect_data --config=experiments/configs/collect.py \
        --config.num_trajectories=10000 --workdir=runs/data/prior

Writes ``WORKDIR/metadata.json`` and ``WORKDIR/shards/shard-*/`` (layout in
``parrot_jax/data/format.py`` and the README). Only successful trajectories are kept.
Killed or interrupted, the same command resumes and ends with the same data as an
uninterrupted run.
"""

from absl import app, flags
from ml_collections import config_flags

from experiments.common import check_or_exit
from parrot_jax.data import collect

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/collect.py",
                                          "Collection config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Dataset directory (created or resumed).",
                               required=True)


def main(argv):
    del argv
    check_or_exit(collect.check_config, _CONFIG.value)
    try:
        metadata = collect.collect(_CONFIG.value, _WORKDIR.value)
    except KeyboardInterrupt:
        print("\ninterrupted; finished shards are kept, rerun the same command to resume")
        raise SystemExit(130)
    rate = metadata["acceptance_rate"] or 0.0
    print(f"{_WORKDIR.value}: {metadata['num_episodes']} trajectories, {metadata['num_steps']} "
          f"steps in {len(metadata['shards'])} shards, acceptance rate {rate:.2f}")
    for env_id, t in metadata["per_task"].items():
        print(f"  {env_id}: {t['episodes']} kept of {t['attempts']} attempts")


if __name__ == "__main__":
    app.run(main)
