"""Minari round trips: our datasets out and back, vector datasets in."""

import gymnasium as gym
import numpy as np
import pytest

from parrot_jax.data import minari_io, transitions
from parrot_jax.data.dataset import load_dataset
from parrot_jax.data.synthetic import write_synthetic_dataset

FIELDS = ("observations", "actions", "rewards", "terminated", "episode_lengths",
          "final_observations")


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


def test_a_dataset_goes_to_minari_and_back_unchanged(tmp_path):
    write_synthetic_dataset(str(tmp_path / "data"), num_episodes=5, episode_length=6,
                            episodes_per_shard=2, ragged=True)
    exported = minari_io.export_dataset(load_dataset(str(tmp_path / "data")),
                                        "parrot/synthetic/test-v0")
    ours = transitions.load_transitions(str(tmp_path / "data"))
    assert exported.total_episodes == 5 and exported.total_steps == len(ours)
    back = transitions.load_transitions("minari:parrot/synthetic/test-v0")
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(back, field), getattr(ours, field), err_msg=field)
        assert getattr(back, field).dtype == getattr(ours, field).dtype, field
    assert back.source == "minari:parrot/synthetic/test-v0"
    # an episode's Minari view: T + 1 observations, the last the final image
    episode = next(exported.iterate_episodes())
    assert len(episode.observations) == len(episode.actions) + 1
    assert bool(episode.truncations[-1]) and not episode.terminations.any()
    with pytest.raises(FileExistsError, match="exists; delete it first"):
        minari_io.export_dataset(load_dataset(str(tmp_path / "data")),
                                 "parrot/synthetic/test-v0")


def test_a_vector_dataset_with_terminations_comes_in():
    import minari
    from minari.data_collector import EpisodeBuffer

    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    buffers = []
    for e, length in enumerate((4, 3)):
        buffers.append(EpisodeBuffer(
            id=e, observations=rng.normal(size=(length + 1, 3)).astype(np.float32),
            actions=rng.uniform(-2, 2, (length, 1)).astype(np.float32),
            rewards=rng.normal(size=length), terminations=np.arange(length) == length - 1,
            truncations=np.zeros(length, bool)))
    minari.create_dataset_from_buffers("test/pendulum/random-v0", buffers, env=env)
    data = transitions.load_transitions("minari:test/pendulum/random-v0", (-2.0, 2.0))
    assert data.env_ids == ("Pendulum-v1",)
    assert len(data) == 7 and data.observations.dtype == np.float32
    np.testing.assert_allclose(data.actions * 2.0, np.concatenate([b.actions for b in buffers]),
                               atol=1e-6)
    assert data.terminated.tolist() == [False, False, False, True, False, False, True]
    np.testing.assert_array_equal(data.final_observations[1], buffers[1].observations[-1])


def test_a_missing_minari_dataset_is_named():
    with pytest.raises(ValueError, match="no Minari dataset 'nobody/none-v0' under .*minari"):
        transitions.check_spec("minari:nobody/none-v0")
