"""Merges prior datasets collected separately (e.g. on several machines) into one.

    python -m experiments.merge_data --inputs=runs/data/a,runs/data/b --workdir=runs/data/ab

Validates every input (images checksummed), refuses inputs collected with the same
seed, and writes a new dataset whose shards are hard links (or copies) of the inputs'.
Training can also read several directories directly without merging:
``load_dataset(["runs/data/a", "runs/data/b"])``.
"""

from absl import app, flags

from parrot_jax.data import merge

_INPUTS = flags.DEFINE_list("inputs", None, "Dataset directories to merge, in order.",
                            required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "New dataset directory.", required=True)


def main(argv):
    del argv
    metadata = merge.merge_datasets(_INPUTS.value, _WORKDIR.value)
    print(f"{_WORKDIR.value}: {metadata['num_episodes']} trajectories, {metadata['num_steps']} "
          f"steps in {len(metadata['shards'])} shards from {len(_INPUTS.value)} datasets")


if __name__ == "__main__":
    app.run(main)
