"""Phase tracking: hand-made info sequences, and the scripted policy's own episodes."""

import numpy as np
import pytest

from parrot_jax.envs import phases, rollout, scripted
from parrot_jax.envs.manipulation import ManipulationEnv

# Two envs, three objects resting on the table (bottom 0, centre 2 cm up); env 1 has a
# container at (0.6, 0.2) with radius 5 cm.
CENTERS = np.array([[0.5, 0.0, 0.02], [0.4, -0.1, 0.02], [0.6, 0.1, 0.02]])


def infos(ee, gripper_open, centers=None, bottoms=None, held=None, grasped=None, placed=None):
    n = len(ee)
    centers = np.broadcast_to(CENTERS if centers is None else centers, (n, 3, 3))
    return {
        "ee_pos": np.asarray(ee, float), "object_pos": np.array(centers),
        "object_bottom": np.zeros((n, 3)) if bottoms is None else np.asarray(bottoms),
        "gripper_open": np.asarray(gripper_open, bool),
        "held": np.zeros((n, 3), bool) if held is None else np.asarray(held),
        "grasped": np.zeros((n, 3), bool) if grasped is None else np.asarray(grasped),
        "placed": np.zeros((n, 3), bool) if placed is None else np.asarray(placed),
        "has_container": np.array([False, True]),
        "container_pos": np.array([[0, 0, 0], [0.6, 0.2, 0.0]]),
        "container_radius": np.array([0.0, 0.05]),
    }


def test_phases_from_hand_made_steps():
    tracker = phases.PhaseTracker(2, 3)
    live, not_ended = np.ones(2, bool), np.zeros(2, bool)
    far = [0.5, 0.3, 0.2]
    tracker.start(infos([far, far], [True, True]))
    # Env 0 reaches object 0 and closes on it; env 1 closes in the air.
    tracker.update(infos([[0.5, 0.0, 0.03], far], [False, False]), live, not_ended)
    held = np.array([[True, False, False], [False, False, False]])
    tracker.update(infos([[0.5, 0.0, 0.1], far], [False, False], held=held), live, not_ended)
    # Env 1: object 2 is carried over the container (it counts held there), then placed.
    over = CENTERS.copy()
    over[2] = [0.61, 0.19, 0.1]
    held_1 = np.array([[True, False, False], [False, False, True]])
    bottoms = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.08]])  # object 2 lifted 8 cm
    tracker.update(infos([[0.5, 0.0, 0.1], [0.61, 0.19, 0.12]], [False, False],
                         centers=np.stack([CENTERS, over]), bottoms=bottoms, held=held_1),
                   live, not_ended)
    grasped = np.array([[True, False, False], [False, False, False]])
    placed = np.array([[False, False, False], [False, False, True]])
    tracker.update(infos([[0.5, 0.0, 0.1], far], [False, True], grasped=grasped, placed=placed),
                   live, np.ones(2, bool))
    out = tracker.result()
    assert out.reached[0].tolist() == [True, False, False]
    assert out.reached[1].tolist() == [False, False, True]  # only while carrying it
    assert out.closed_near[0].tolist() == [True, False, False] and not out.closed_near[1].any()
    assert out.closed_away.tolist() == [False, True]
    # First close: env 0 1 cm above object 0's grasp point; env 1 in the air.
    nearest = CENTERS[np.linalg.norm(np.array(far) - CENTERS, axis=1).argmin()]
    np.testing.assert_allclose(out.close_offset, [[0.0, 0.0, 0.01], np.array(far) - nearest],
                               atol=1e-12)
    assert out.lifted.tolist() == held_1.tolist()
    assert out.carried.tolist() == [[False] * 3, [False, False, True]]
    assert out.grasped.tolist() == grasped.tolist() and out.placed.tolist() == placed.tolist()
    assert out.target("lifted").tolist() == [True, False]
    assert out.any_object("lifted").tolist() == [True, True]
    rates = out.rates()
    assert rates["lifted"] == {"target": 0.5, "any": 1.0}
    assert rates["closed_away"] == {"any": 0.5}
    assert rates["close_offset"]["closed"] == 1.0
    assert rates["close_offset"]["median_z"] == pytest.approx(
        np.median([0.01, far[2] - nearest[2]]))
    assert len(out) == 2 and len(out.take(1)) == 1
    assert len(phases.Phases.concatenate([out, out])) == 4


def test_steps_after_the_end_are_ignored():
    tracker = phases.PhaseTracker(2, 3)
    tracker.start(infos([[0.5, 0.3, 0.2]] * 2, [True, True]))
    near = [0.5, 0.0, 0.03]
    # Env 1 is no longer live: what it reports must not count.
    tracker.update(infos([near, near], [False, False]), np.array([True, False]),
                   np.array([True, False]))
    out = tracker.result()
    assert out.reached[:, 0].tolist() == [True, False]
    assert out.closed_near[:, 0].tolist() == [True, False]


def test_grasp_point_of_a_tall_object_is_below_its_top():
    center = np.array([[0.5, 0.0, 0.1]])  # 20 cm tall, bottom on the table
    point = scripted.grasp_point(center, np.array([0.0]))
    assert point.shape == (1, 3) and point[0, 2] == pytest.approx(0.2 - 0.03 + 0.005)
    low = scripted.grasp_point(np.array([0.5, 0.0, 0.02]), 0.0)
    assert low[2] == pytest.approx(0.02)


@pytest.mark.parametrize("env_id", ["parrot/GraspTrain-v0", "parrot/PickPlaceTrain-v0"])
def test_scripted_episode_phases_agree_with_its_outcome(env_id):
    env = ManipulationEnv(env_id)
    episodes = [rollout.scripted_episode(env, s, keep_frames=False) for s in range(3)]
    env.close()
    end = "placed" if "Place" in env_id else "grasped"
    for e in episodes:
        p = e.phases
        assert len(p) == 1
        assert bool(p.target(end)[0]) == e.success
        if e.success:
            assert p.target("reached")[0] and p.target("closed_near")[0]
            assert p.target("lifted")[0]
        assert e.means.shape == (25, 7) and e.gripper_open.shape == (25,)
        assert e.gripper_open[0]  # every episode starts open
        # The executed actions are the noise-free ones plus clipped noise.
        assert np.all(np.abs(e.actions - np.clip(e.means, -0.9, 0.9)) < 0.6)
