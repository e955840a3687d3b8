"""Reward-labelled transitions: next observations, n-step sums, the task and space checks."""

import numpy as np
import pytest

from parrot_jax.data import transitions
from parrot_jax.data.synthetic import frame_ids, write_synthetic_dataset
from parrot_jax.data.transitions import Transitions


def _toy(terminal_at=None):
    """Two episodes of 3 and 2 steps; observation i is [i], finals are [100 + e]."""
    terminated = np.zeros(5, bool)
    if terminal_at is not None:
        terminated[terminal_at] = True
    return Transitions(observations=np.arange(5, dtype=np.float32)[:, None],
                       actions=np.zeros((5, 1), np.float32),
                       rewards=np.asarray([1.0, 2.0, 4.0, 8.0, 16.0], np.float32),
                       terminated=terminated, episode_lengths=np.asarray([3, 2]),
                       final_observations=np.asarray([[100.0], [101.0]], np.float32),
                       env_ids=("toy-v0",), source="toy")


def _all(data, n_step=1, discount=1.0):
    """Every transition: sample enough that each start appears, keyed by its observation."""
    batch = data.sample(np.random.default_rng(0), 400, n_step, discount)
    out = {}
    for i, start in enumerate(batch["observations"][:, 0].astype(int)):
        out[start] = {k: v[i] for k, v in batch.items()}
    assert sorted(out) == list(range(len(data)))
    return out


def test_next_observations_stay_in_their_episode():
    batch = _all(_toy())
    assert [float(batch[i]["next_observations"][0]) for i in range(5)] == [1, 2, 100, 4, 101]
    assert not any(batch[i]["terminated"] for i in range(5))  # truncated: bootstrap
    np.testing.assert_array_equal(_toy().episode_returns(), [7.0, 24.0])
    assert "discounts" not in batch[0]


def test_n_step_sums_discounted_rewards_within_the_episode():
    batch = _all(_toy(), n_step=2, discount=0.5)
    assert float(batch[0]["rewards"]) == 1 + 0.5 * 2
    assert float(batch[1]["rewards"]) == 2 + 0.5 * 4
    assert float(batch[2]["rewards"]) == 4  # the episode's last step: one step taken
    assert float(batch[2]["discounts"]) == 0.5 and float(batch[0]["discounts"]) == 0.25
    assert float(batch[1]["next_observations"][0]) == 100  # the episode's final image
    assert float(batch[3]["rewards"]) == 8 + 0.5 * 16


def test_n_step_stops_after_a_terminal_step():
    batch = _all(_toy(terminal_at=0), n_step=3, discount=0.5)
    assert float(batch[0]["rewards"]) == 1 and bool(batch[0]["terminated"])
    assert float(batch[0]["discounts"]) == 0.5
    assert float(batch[1]["rewards"]) == 2 + 0.5 * 4 and not batch[1]["terminated"]


def test_a_prior_dataset_reads_as_transitions(tmp_path):
    write_synthetic_dataset(str(tmp_path), num_episodes=4, episode_length=5,
                            episodes_per_shard=2)
    data = transitions.load_transitions(str(tmp_path))
    assert len(data) == 20 and data.num_episodes == 4 and data.observation_shape == (48, 48, 3)
    assert data.env_ids == ("synthetic/A-v0", "synthetic/B-v0")
    batch = data.sample(np.random.default_rng(1), 64)
    ids, next_ids = frame_ids(batch["observations"]), frame_ids(batch["next_observations"])
    last = ids % 5 == 4  # the final images are not frames of the dataset
    np.testing.assert_array_equal(next_ids[~last], ids[~last] + 1)
    np.testing.assert_array_equal(batch["actions"], data.actions[ids])


def test_actions_are_mapped_to_the_policy_range():
    np.testing.assert_allclose(transitions.to_policy_actions([[-2.0], [0.0], [2.0]], -2.0, 2.0),
                               [[-1.0], [0.0], [1.0]])


def test_rewards_of_another_task_are_refused_unless_zeroed():
    data = _toy()
    transitions.check_task(data, "toy-v0", "dataset")
    transitions.check_task(data, "some.module:toy-v0", "dataset")
    with pytest.raises(ValueError, match="holds episodes of toy-v0, not of the run's task "
                                         "parrot/PickUpCan-v0: its rewards are not this "
                                         "task's.*--config.offline.rewards=zero"):
        transitions.check_task(data, "parrot/PickUpCan-v0", "dataset")
    transitions.check_task(data, "parrot/PickUpCan-v0", "zero")
    assert not data.with_zero_rewards().rewards.any()
    with pytest.raises(ValueError, match="offline.rewards='task'; expected one of"):
        transitions.check_task(data, "toy-v0", "task")


def test_spaces_are_checked():
    data = _toy()
    transitions.check_spaces(data, (1,), np.float32, 1)
    with pytest.raises(ValueError, match="observations of shape \\(1,\\); the env's are "
                                         "\\(48, 48, 3\\)"):
        transitions.check_spaces(data, (48, 48, 3), np.uint8, 1)
    with pytest.raises(ValueError, match="float32 observations; the env's are uint8"):
        transitions.check_spaces(data, (1,), np.uint8, 1)
    with pytest.raises(ValueError, match="has 1-D actions; the env's are 7-D"):
        transitions.check_spaces(data, (1,), np.float32, 7)


def test_inconsistent_arrays_are_refused():
    with pytest.raises(ValueError, match="episode lengths sum to 4, expected 5 steps"):
        Transitions(observations=np.zeros((5, 1)), actions=np.zeros((5, 1)),
                    rewards=np.zeros(5), terminated=np.zeros(5, bool),
                    episode_lengths=np.asarray([2, 2]), final_observations=np.zeros((2, 1)),
                    env_ids=(), source="bad")
    with pytest.raises(ValueError, match="bad: rewards has 4 rows; expected 5"):
        Transitions(observations=np.zeros((5, 1)), actions=np.zeros((5, 1)),
                    rewards=np.zeros(4), terminated=np.zeros(5, bool),
                    episode_lengths=np.asarray([5]), final_observations=np.zeros((1, 1)),
                    env_ids=(), source="bad")


def test_a_missing_dataset_is_named(tmp_path):
    with pytest.raises(ValueError, match="no such dataset directory"):
        transitions.check_spec(str(tmp_path / "nothing"))
