import dataclasses

import numpy as np
import pytest
from scipy import stats

from parrot_jax.data.sampling import BatchSampler, valid_starts

LENGTHS = [5, 1, 12, 3, 8, 2]


@dataclasses.dataclass
class TinyDataset:
    observations: np.ndarray
    actions: np.ndarray
    episode_starts: np.ndarray
    episode_lengths: np.ndarray


def make_dataset(lengths=LENGTHS, first=0):
    """Frame i of episode e at step t: pixels (e, t, i) and action (i, e, t, 0, 0, 0, 0).

    ``first`` frames before the first episode belong to no episode (they must never be
    sampled).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = first + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    n = first + int(lengths.sum())
    episode = np.full(n, 255)
    step = np.full(n, 255)
    for e, (s, length) in enumerate(zip(starts, lengths)):
        episode[s:s + length], step[s:s + length] = e, np.arange(length)
    frame = np.arange(n)
    obs = np.empty((n, 48, 48, 3), np.uint8)
    obs[..., 0], obs[..., 1], obs[..., 2] = (v[:, None, None] for v in (episode, step, frame))
    actions = np.zeros((n, 7), np.float32)
    actions[:, 0], actions[:, 1], actions[:, 2] = frame, episode, step
    return TinyDataset(obs, actions, starts, lengths)


def brute_force_starts(ds, window):
    return {int(s) + t for s, length in zip(ds.episode_starts, ds.episode_lengths)
            for t in range(length - window + 1)}


def test_shapes_and_dtypes():
    ds = make_dataset()
    b = BatchSampler(ds, batch_size=16, seed=0).batch(0)
    assert b["observations"].shape == (16, 48, 48, 3) and b["observations"].dtype == np.uint8
    assert b["actions"].shape == (16, 7) and b["actions"].dtype == np.float32
    w = BatchSampler(ds, batch_size=16, seed=0, window=4).batch(0)
    assert w["observations"].shape == (16, 4, 48, 48, 3) and w["actions"].shape == (16, 4, 7)


def test_batches_are_pure_functions_of_seed_and_k():
    ds = make_dataset()
    a, b = BatchSampler(ds, 32, seed=1), BatchSampler(ds, 32, seed=1)
    for k in (7, 0, 3):  # any order: no hidden state
        np.testing.assert_array_equal(a.batch(k)["actions"], b.batch(k)["actions"])
    assert not np.array_equal(a.batch(0)["actions"], a.batch(1)["actions"])
    assert not np.array_equal(a.batch(0)["actions"], BatchSampler(ds, 32, 2).batch(0)["actions"])
    from_five = BatchSampler(ds, 32, seed=1).iterate(start=5)
    np.testing.assert_array_equal(next(from_five)["actions"], a.batch(5)["actions"])
    np.testing.assert_array_equal(next(from_five)["actions"], a.batch(6)["actions"])


def test_observation_action_pairs_match():
    ds = make_dataset()
    for window in (None, 3):
        b = BatchSampler(ds, 64, seed=0, window=window).batch(0)
        obs, act = b["observations"], b["actions"]
        assert (obs[..., 0, 0, 2] == act[..., 0]).all()  # same frame index
        assert (obs[..., 0, 0, 0] == act[..., 1]).all() and (obs[..., 0, 0, 1] == act[..., 2]).all()
        assert (obs == obs[..., :1, :1, :]).all()  # whole frame gathered, not one pixel


def test_extras_are_gathered_at_the_frames_of_the_actions():
    ds = make_dataset()
    ds.object_offsets = np.stack([np.arange(len(ds.actions), dtype=np.float32)] * 3, axis=1)
    for window, images in ((None, True), (3, True), (3, "first"), (None, False)):
        b = BatchSampler(ds, 64, seed=0, window=window, images=images,
                         extras=("object_offsets",)).batch(2)
        assert b["object_offsets"].shape == b["actions"].shape[:-1] + (3,)
        np.testing.assert_array_equal(b["object_offsets"][..., 1], b["actions"][..., 0])
    with pytest.raises(ValueError, match="no per-step 'episode_rewards' array"):
        BatchSampler(ds, 4, seed=0, extras=("episode_rewards",))


def test_windows_stay_in_one_episode_and_cover_all_valid_starts():
    ds = make_dataset(first=2)
    window = 3
    sampler = BatchSampler(ds, 32, seed=0, window=window)
    seen = set()
    for k in range(100):
        act = sampler.batch(k)["actions"]
        assert (act[:, :, 1] == act[:, :1, 1]).all()  # one episode per window
        assert (np.diff(act[:, :, 2], axis=1) == 1).all()  # consecutive steps
        assert (np.diff(act[:, :, 0], axis=1) == 1).all()  # consecutive frames
        seen.update(act[:, 0, 0].astype(int).tolist())
    assert seen == brute_force_starts(ds, window)
    assert set(valid_starts(ds.episode_starts, ds.episode_lengths, window).tolist()) == seen


def test_single_frames_never_outside_episodes():
    ds = make_dataset(first=2)
    frames = {int(f) for k in range(50) for f in BatchSampler(ds, 32, 0).batch(k)["actions"][:, 0]}
    assert frames == set(range(2, len(ds.actions)))


@pytest.mark.parametrize("window", [None, 3])
def test_sampling_is_uniform(window):
    ds = make_dataset()
    sampler = BatchSampler(ds, 64, seed=123, window=window)
    first = np.concatenate([sampler.batch(k)["actions"].reshape(64, -1)[:, 0] for k in range(200)])
    cells = sorted(brute_force_starts(ds, window or 1))
    counts = np.array([(first == c).sum() for c in cells])
    assert counts.sum() == first.size  # nothing outside the valid cells
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("window", [None, 3])
def test_process_shares_tile_the_one_process_batch(window):
    ds = make_dataset()
    whole = BatchSampler(ds, 32, seed=0, window=window).batch(5)
    shares = [BatchSampler(ds, 32, seed=0, window=window, process_index=p,
                           process_count=4).batch(5) for p in range(4)]
    assert shares[0]["actions"].shape[0] == 8
    assert not np.array_equal(shares[0]["actions"], shares[1]["actions"])
    for key in whole:
        np.testing.assert_array_equal(np.concatenate([s[key] for s in shares]), whole[key])


@pytest.mark.parametrize("kwargs, message", [
    (dict(window=13), r"window=13.*longest has 12"),
    (dict(window=0), r"window=0"),
    (dict(batch_size=0), r"batch_size=0"),
    (dict(batch_size=10, process_count=4), r"batch_size=10.*process_count=4"),
    (dict(process_index=2, process_count=2), r"process_index=2"),
    (dict(seed=-1), r"seed=-1"),
])
def test_rejects_bad_arguments(kwargs, message):
    args = dict(batch_size=8, seed=0) | kwargs
    with pytest.raises(ValueError, match=message):
        BatchSampler(make_dataset(), **args)
