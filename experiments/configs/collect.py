"""Prior dataset collection (paper appendix C.2): scripted grasp and pick-and-place.

    python -m experiments.collect_data --config=experiments/configs/collect.py \
        --config.num_trajectories=10000 --workdir=runs/data/prior

Variants (``--config=experiments/configs/collect.py:VARIANT``):
- default: the paper's 50K trajectories of 25 steps (10K already give most of the benefit);
- ``tiny``: 24 trajectories in shards of 6, for tests and smoke runs;
- ``recoloured``: the training tasks with half of their objects and containers in random
  colours (``parrot/GraspTrainRecoloured-v0``, ``parrot/PickPlaceTrainRecoloured-v0``: the
  same scenes and scripted episodes in other colours), so that the gripper's dark fingers
  are not the only dark thing a prior sees in training (docs/prior_diagnosis.md, "Dark
  containers");
- ``container_colours``: the same with only the pick-and-place containers recoloured
  (``parrot/GraspTrain-v0``, ``parrot/PickPlaceTrainContainerColours-v0``);
- ``dark_containers``: half of the pick-and-place containers in dark colours only (HSV
  value 0.05-0.25, ``parrot/PickPlaceTrainDarkContainers-v0``), every other colour the
  library's;
the training-set variants combine with ``tiny``, e.g. ``recoloured,tiny``
(``parrot_jax.envs.tasks.TRAINING_SETS``).
"""

import ml_collections

from parrot_jax.envs.tasks import TRAINING_SETS


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.num_trajectories = 50_000  # accepted trajectories to collect (see keep)
    config.trajectories_per_shard = 200  # a killed collection loses at most a shard per worker
    config.seed = 0  # different machines collecting one dataset use different seeds
    config.env_ids = TRAINING_SETS["library"]
    config.mix = (0.5, 0.5)  # share of accepted trajectories per env id
    config.horizon = 25
    config.noise = 0.1  # std of the Gaussian noise on every scripted action
    config.clip = 0.9  # scripted actions are clipped to [-clip, clip] (atanh stays finite)
    # Scripted policy fields to change (parrot_jax.envs.scripted.ScriptedGrasp), as a JSON
    # object, e.g. --config.policy_kwargs='{"approach": "over"}' or
    # '{"gripper": "state", "gripper_command": 0.7}'; recorded in the metadata. Empty: the
    # policies the README measures.
    config.policy_kwargs = ""
    # Probability per step of a random translation executed in place of the scripted action
    # (which is still what the data records): recovery states for the prior (DART-style).
    config.perturb = 0.0
    # Acceptance rule: "successes" (the prior's data) or "all" (each trajectory slot keeps
    # its first attempt, failures included: reward-labelled data, e.g. on a test task).
    config.keep = "successes"
    config.max_attempts = 100  # attempts per trajectory before the collector gives up
    config.num_workers = 0  # worker processes; 0: one per CPU core
    config.progress = True
    variants = [v for v in variant.split(",") if v]
    sets = [v for v in variants if v in TRAINING_SETS]
    unknown = [v for v in variants if v != "tiny" and v not in TRAINING_SETS]
    if unknown or len(sets) > 1:
        what = (f"unknown collect config variant {unknown[0]!r}" if unknown
                else f"training sets {sets} together")
        raise ValueError(f"{what} in {variant!r}; expected 'tiny' and/or one training set "
                         f"of {', '.join(TRAINING_SETS)}, joined by a comma")
    if "tiny" in variants:
        config.num_trajectories = 24
        config.trajectories_per_shard = 6
    if sets:
        config.env_ids = TRAINING_SETS[sets[0]]
    return config
