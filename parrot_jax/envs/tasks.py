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


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a scene contains and what the agent must do in it."""

    name: str
    goal: Literal["grasp", "place"]
    split: Literal["train", "test"]  # which library objects and containers come from
    target: Optional[str] = None  # fixed target object; None draws one per reset
    container: Optional[str] = None  # fixed container for "place"; None draws one
    lift_height: float = 0.05  # grasp: metres between table and the object's bottom

    @property
    def env_id(self) -> str:
        return f"parrot/{self.name}-v0"


TRAIN_TASKS = (
    TaskSpec("GraspTrain", "grasp", "train"),
    TaskSpec("PickPlaceTrain", "place", "train"),
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

TASKS = {t.env_id: t for t in TRAIN_TASKS + TEST_TASKS}
