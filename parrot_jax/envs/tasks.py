"""Task definitions: which objects a scene holds and what counts as success.

Every scene holds three graspable objects, one of which is the target; pick-and-place
scenes add a container. Training tasks draw all of them from the training library on
every reset; the paper's eight test tasks fix a novel target (and container) and draw
the two distractors from the other novel objects.

Success (checked after every step, reward 1.0 when it holds):
- grasp: the target's bottom is at least ``lift_height`` above the table and its
  centre is within ``HOLD_DISTANCE`` of the end effector (held, not tossed);
- place: the target's centre is within the container's radius (xy) and its bottom is
  no higher than ``PLACE_TOLERANCE`` above the container's resting surface.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

HOLD_DISTANCE = 0.08
HELD_CLEARANCE = 0.01  # info["held"]: closed gripper, near, and this far off the table
PLACE_TOLERANCE = 0.03
NUM_OBJECTS = 3
RECOLOUR_VALUE = (0.05, 1.0)  # HSV value range of a random colour (TaskSpec.recolour_*)
# ... of a dark one: the gripper's fingers are 0.15 grey, the pan 0.18, the checkerboard's
# dark tiles 0.05 (no training object or container in the library is below 0.5)
DARK_VALUE = (0.05, 0.25)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a scene contains and what the agent must do in it."""

    name: str
    goal: Literal["grasp", "place"]
    split: Literal["train", "test"]  # which library objects and containers come from
    target: Optional[str] = None  # fixed target object; None draws one per reset
    container: Optional[str] = None  # fixed container for "place"; None draws one
    lift_height: float = 0.05  # grasp: metres between table and the object's bottom
    # Probability that each object (recolour_objects) and the container (recolour_container)
    # is drawn in a random colour on reset (hue and saturation uniform, value uniform in
    # recolour_value: by default RECOLOUR_VALUE, black to white), after the scene's
    # objects, positions and yaws, so a seed's scene is the one of the same task without
    # it, in other colours. 0: every thing in its library colour.
    recolour_objects: float = 0.0
    recolour_container: float = 0.0
    recolour_value: tuple[float, float] = RECOLOUR_VALUE

    @property
    def env_id(self) -> str:
        return f"parrot/{self.name}-v0"


TRAIN_TASKS = (
    TaskSpec("GraspTrain", "grasp", "train"),
    TaskSpec("PickPlaceTrain", "place", "train"),
)

# The training tasks with half of their objects and containers in random colours, and the
# pick-and-place task with half of its containers so (its objects as in the library). In
# the library's colours the gripper's dark fingers are the only dark thing a training
# scene holds, so an encoder may find the gripper by its colour and lose it next to a dark
# test container (the pan, the checkerboard's tiles); docs/prior_diagnosis.md measures it.
RECOLOURED_TRAIN_TASKS = (
    TaskSpec("GraspTrainRecoloured", "grasp", "train", recolour_objects=0.5),
    TaskSpec("PickPlaceTrainRecoloured", "place", "train", recolour_objects=0.5,
             recolour_container=0.5),
    TaskSpec("PickPlaceTrainContainerColours", "place", "train", recolour_container=0.5),
    # half of the containers dark, so dark is no longer the gripper alone, and no other
    # colour changed (docs/prior_diagnosis.md: random colours cost the grasp tasks)
    TaskSpec("PickPlaceTrainDarkContainers", "place", "train", recolour_container=0.5,
             recolour_value=DARK_VALUE),
)

TEST_TASKS = (
    TaskSpec("PlaceCanInPan", "place", "test", target="can", container="pan"),
    TaskSpec("PlaceSculptureInBasket", "place", "test", target="sculpture", container="basket"),
    TaskSpec("PlaceChairOnCheckerboard", "place", "test", target="chair",
             container="checkerboard_table"),
    TaskSpec("PickUpCup", "grasp", "test", target="cup", lift_height=0.08),
    TaskSpec("PickUpCan", "grasp", "test", target="can"),
    TaskSpec("PickUpVase", "grasp", "test", target="vase"),
    TaskSpec("PickUpBaseballCap", "grasp", "test", target="baseball_cap"),
    TaskSpec("PlaceBaseballCapOnBlock", "place", "test", target="baseball_cap", container="block"),
)

TASKS = {t.env_id: t for t in TRAIN_TASKS + TEST_TASKS + RECOLOURED_TRAIN_TASKS}

# The sets of training tasks a prior's data (and its encoder's pretraining) can come from,
# by name: experiments.collect_data's config variants, experiments.probe_encoder's
# --train_envs.
TRAINING_SETS = {
    "library": tuple(t.env_id for t in TRAIN_TASKS),
    "recoloured": ("parrot/GraspTrainRecoloured-v0", "parrot/PickPlaceTrainRecoloured-v0"),
    "container_colours": ("parrot/GraspTrain-v0", "parrot/PickPlaceTrainContainerColours-v0"),
    "dark_containers": ("parrot/GraspTrain-v0", "parrot/PickPlaceTrainDarkContainers-v0"),
}
