"""Dataset format and reader: round trips, validation errors, splits, lazy frames."""

import json
import os

import numpy as np
import pytest

from parrot_jax.data import format as fmt
from parrot_jax.data.dataset import load_dataset
from parrot_jax.data.frames import FrameArray
from parrot_jax.data.synthetic import frame_ids, write_synthetic_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("data") / "ds")
    write_synthetic_dataset(root, num_episodes=23, episode_length=9, episodes_per_shard=5,
                            seed=3, ragged=True)
    return root


def _copy(src, tmp_path):
    import shutil
    dst = str(tmp_path / "copy")
    shutil.copytree(src, dst)
    return dst


def _shard_file(root, shard, key):
    return os.path.join(root, fmt.SHARDS, fmt.shard_name(shard), key + ".npy")


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    lengths = np.array([3, 1, 4], np.int64)
    arrays = {"observations": rng.integers(0, 256, (8, 48, 48, 3), dtype=np.uint8),
              "actions": rng.uniform(-1, 1, (8, 7)).astype(np.float32),
              "rewards": np.arange(8, dtype=np.float32),
              "episode_lengths": lengths, "episode_tasks": np.array([1, 0, 1], np.int64),
              "episode_seeds": np.array([10, 11, 12], np.int64),
              "final_observations": rng.integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)}
    root = str(tmp_path / "ds")
    assert fmt.write_shard(root, 0, arrays, ["parrot/A-v0", "parrot/B-v0"])
    assert not fmt.write_shard(root, 0, arrays, ["x"])  # existing shard is left alone
    header = fmt.read_shard_json(os.path.join(root, fmt.SHARDS, "shard-000000"))
    with open(os.path.join(root, fmt.METADATA), "w") as f:
        json.dump({"format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION, "seeds": [0],
                   **fmt.shard_summary({0: header})}, f)
    ds = load_dataset(root, verify="full")
    for key in ("actions", "rewards", "episode_lengths", "episode_tasks", "episode_seeds"):
        np.testing.assert_array_equal(getattr(ds, key), arrays[key])
    np.testing.assert_array_equal(np.asarray(ds.observations), arrays["observations"])
    np.testing.assert_array_equal(np.asarray(ds.final_observations), arrays["final_observations"])
    np.testing.assert_array_equal(ds.episode_starts, [0, 3, 4])
    assert ds.env_ids == ("parrot/A-v0", "parrot/B-v0") and ds.num_steps == 8
    episode = ds.episode(2)
    np.testing.assert_array_equal(episode["observations"], arrays["observations"][4:])
    assert episode["env_id"] == "parrot/B-v0"
    # Plain numpy reads the files too: the layout needs nothing of ours.
    raw = np.load(os.path.join(root, fmt.SHARDS, "shard-000000", "actions.npy"), mmap_mode="r")
    np.testing.assert_array_equal(raw, arrays["actions"])


def test_object_offsets_are_optional_and_travel_with_their_frames(tmp_path):
    with_offsets, without = str(tmp_path / "with"), str(tmp_path / "without")
    write_synthetic_dataset(with_offsets, num_episodes=7, episode_length=4,
                            episodes_per_shard=3, seed=5, ragged=True, offsets=True)
    write_synthetic_dataset(without, num_episodes=3, episode_length=4, seed=6)
    ds = load_dataset(with_offsets, verify="full")
    assert ds.object_offsets.shape == (ds.num_steps, 3) and ds.object_offsets.dtype == np.float32
    assert np.abs(ds.object_offsets).max() <= 0.1
    picked = ds.select_episodes([5, 1])
    rows = np.concatenate([np.arange(ds.episode_starts[e],
                                     ds.episode_starts[e] + ds.episode_lengths[e]) for e in (5, 1)])
    np.testing.assert_array_equal(picked.object_offsets, ds.object_offsets[rows])
    train, validation = ds.split(0.3, seed=0)
    assert len(train.object_offsets) == train.num_steps
    assert len(validation.object_offsets) == validation.num_steps
    # Older datasets have none, and a merge with one has none either.
    assert load_dataset(without).object_offsets is None
    assert load_dataset([with_offsets, without]).object_offsets is None


def test_bad_optional_and_unknown_arrays_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"observations": rng.integers(0, 256, (4, 48, 48, 3), dtype=np.uint8),
              "actions": np.zeros((4, 7), np.float32), "rewards": np.zeros(4, np.float32),
              "episode_lengths": np.array([4], np.int64), "episode_tasks": np.zeros(1, np.int64),
              "episode_seeds": np.zeros(1, np.int64),
              "final_observations": np.zeros((1, 48, 48, 3), np.uint8)}
    root = str(tmp_path / "ds")
    with pytest.raises(fmt.DatasetError, match=r"object_offsets has dtype float32 and shape "
                       r"\(3, 3\); expected dtype float32 and shape \(4, 3\)"):
        fmt.write_shard(root, 0, {**arrays, "object_offsets": np.zeros((3, 3), np.float32)}, ["a"])
    with pytest.raises(fmt.DatasetError, match=r"unknown arrays \['offsets'\]"):
        fmt.write_shard(root, 0, {**arrays, "offsets": np.zeros((4, 3), np.float32)}, ["a"])
    assert not os.path.exists(os.path.join(root, fmt.SHARDS, fmt.shard_name(0)))


def test_synthetic_dataset_spans_shards(data_dir):
    ds = load_dataset(data_dir, verify="full")
    assert ds.num_episodes == 23 and ds.observations.shape == (ds.num_steps, 48, 48, 3)
    assert ds.episode_starts[-1] + ds.episode_lengths[-1] == ds.num_steps
    idx = np.array([ds.num_steps - 1, 0, 17, 17, 5])
    np.testing.assert_array_equal(frame_ids(ds.observations[idx]), idx)
    assert isinstance(ds.observations, FrameArray) and len(ds.observations._parts) == 5


def test_in_memory_matches_memmap(data_dir):
    lazy, mem = load_dataset(data_dir), load_dataset(data_dir, in_memory=True)
    idx = np.random.default_rng(0).integers(0, lazy.num_steps, 50)
    np.testing.assert_array_equal(lazy.observations[idx], mem.observations[idx])
    assert not isinstance(mem.observations._parts[0], np.memmap)


def test_split_by_episode_is_disjoint_and_reproducible(data_dir):
    ds = load_dataset(data_dir)
    train, val = ds.split(0.2, seed=1)
    assert val.num_episodes == 5 and train.num_episodes == 18
    assert set(train.episode_seeds).isdisjoint(val.episode_seeds)
    assert train.num_steps + val.num_steps == ds.num_steps
    again = ds.split(0.2, seed=1)[1]
    np.testing.assert_array_equal(again.episode_seeds, val.episode_seeds)
    # Frames and actions of each validation episode are those of the same original episode.
    for e in range(val.num_episodes):
        orig = int(np.flatnonzero(ds.episode_seeds == val.episode_seeds[e])[0])
        a, b = val.episode(e), ds.episode(orig)
        np.testing.assert_array_equal(a["observations"], b["observations"])
        np.testing.assert_array_equal(a["actions"], b["actions"])
        np.testing.assert_array_equal(a["final_observation"], b["final_observation"])
    with pytest.raises(ValueError, match="validation_fraction=1.5"):
        ds.split(1.5)


def test_frame_array_indexing():
    parts = [np.arange(i * 10, i * 10 + n).reshape(n, 1) for i, n in enumerate([3, 0, 4, 2])]
    whole = np.concatenate(parts)
    frames = FrameArray(parts)
    assert frames.shape == (9, 1) and len(frames) == 9
    np.testing.assert_array_equal(frames[[8, 0, 3, 3]], whole[[8, 0, 3, 3]])
    np.testing.assert_array_equal(frames[2:7], whole[2:7])
    np.testing.assert_array_equal(frames[-1], whole[-1])
    np.testing.assert_array_equal(frames[np.array([[1, 2], [7, 8]])], whole[[[1, 2], [7, 8]]])
    view = frames.view(np.array([8, 1, 4]))
    np.testing.assert_array_equal(np.asarray(view), whole[[8, 1, 4]])
    np.testing.assert_array_equal(view.view(np.array([2, 0]))[:], whole[[4, 8]])
    with pytest.raises(IndexError, match="out of range for 9 frames"):
        frames[np.array([9])]
    with pytest.raises(TypeError, match="indexed by ints"):
        frames[np.array([True])]


@pytest.mark.fault
def test_truncated_shard_is_detected(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path)
    path = _shard_file(root, 2, "observations")
    os.truncate(path, os.path.getsize(path) - 100)
    with pytest.raises(fmt.DatasetError, match=r"shard-000002/observations.npy: .* bytes but"):
        load_dataset(root)


@pytest.mark.fault
def test_corrupt_actions_are_detected_by_default(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path)
    _flip_last_byte(_shard_file(root, 1, "actions"))
    with pytest.raises(fmt.DatasetError, match=r"shard-000001/actions.npy: CRC-32 mismatch"):
        load_dataset(root)


@pytest.mark.fault
def test_corrupt_images_are_detected_by_full_verification(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path)
    _flip_last_byte(_shard_file(root, 4, "observations"))
    load_dataset(root)  # quick verification does not read images
    with pytest.raises(fmt.DatasetError, match=r"shard-000004/observations.npy: CRC-32"):
        load_dataset(root, verify="full")


@pytest.mark.parametrize("damage, message", [
    ("remove_shard_json", r"shard-000000/shard.json: missing"),
    ("garbage_shard_json", r"shard-000000/shard.json: not valid JSON"),
    ("remove_array", r"shard-000000/rewards.npy: missing"),
    ("garbage_header", r"shard-000000/rewards.npy: unreadable .npy header"),
    ("wrong_dtype", r"shard-000000/rewards.npy: header says shape \(\d+,\) dtype <f8"),
    ("count_mismatch", r"shard-000000: shard.json has num_episodes=5 but metadata.json lists 6"),
    ("remove_metadata", r"not a parrot_jax dataset \(no metadata.json\)"),
    ("missing_shard", r"shard-000003/shard.json: missing"),
])
@pytest.mark.fault
def test_damage_is_reported_with_file_and_problem(data_dir, tmp_path, damage, message):
    root = _copy(data_dir, tmp_path)
    shard = os.path.join(root, fmt.SHARDS, "shard-000000")
    meta_path = os.path.join(root, fmt.METADATA)
    if damage == "remove_shard_json":
        os.remove(os.path.join(shard, fmt.SHARD_JSON))
    elif damage == "garbage_shard_json":
        open(os.path.join(shard, fmt.SHARD_JSON), "w").write("{not json")
    elif damage == "remove_array":
        os.remove(os.path.join(shard, "rewards.npy"))
    elif damage == "garbage_header":
        open(os.path.join(shard, "rewards.npy"), "wb").write(b"\x93NUMPY\x01\x00garbage")
    elif damage == "wrong_dtype":
        n = np.load(os.path.join(shard, "rewards.npy")).shape[0]
        np.save(os.path.join(shard, "rewards.npy"), np.zeros(n, np.float64))
    elif damage == "count_mismatch":
        meta = json.load(open(meta_path))
        meta["shards"][0]["episodes"] = 6
        json.dump(meta, open(meta_path, "w"))
    elif damage == "remove_metadata":
        os.remove(meta_path)
    elif damage == "missing_shard":
        import shutil
        shutil.rmtree(os.path.join(root, fmt.SHARDS, "shard-000003"))
    with pytest.raises(fmt.DatasetError, match=message):
        load_dataset(root)


def test_bad_actions_are_refused(tmp_path):
    root = str(tmp_path / "ds")
    write_synthetic_dataset(root, num_episodes=2, episode_length=3, episodes_per_shard=2)
    path = _shard_file(root, 0, "actions")
    actions = np.load(path)
    actions[1, 2] = np.nan
    _rewrite_with_crc(root, 0, "actions", actions)
    with pytest.raises(fmt.DatasetError, match="actions must be finite and in"):
        load_dataset(root)


def test_same_seed_datasets_are_refused_together(data_dir, tmp_path):
    with pytest.raises(fmt.DatasetError, match="both collected with seed 3"):
        load_dataset([data_dir, _copy(data_dir, tmp_path)])


def test_several_directories_concatenate(data_dir, tmp_path):
    other = str(tmp_path / "other")
    write_synthetic_dataset(other, num_episodes=4, episode_length=5, episodes_per_shard=3, seed=9)
    a, b = load_dataset(data_dir), load_dataset(other)
    both = load_dataset([data_dir, other])
    assert both.num_episodes == a.num_episodes + b.num_episodes
    np.testing.assert_array_equal(both.actions, np.concatenate([a.actions, b.actions]))
    np.testing.assert_array_equal(both.observations[a.num_steps + 1], b.observations[1])
    assert both.paths == (data_dir, other)


def test_unlisted_shard_is_ignored_with_a_warning(data_dir, tmp_path, caplog):
    root = _copy(data_dir, tmp_path)
    meta_path = os.path.join(root, fmt.METADATA)
    meta = json.load(open(meta_path))
    dropped = meta["shards"].pop()
    json.dump(meta, open(meta_path, "w"))
    ds = load_dataset(root)
    assert ds.num_episodes == 23 - dropped["episodes"]
    assert "ignoring 1 shard(s)" in caplog.text


def test_bad_arguments():
    with pytest.raises(ValueError, match="verify='everything'"):
        load_dataset("x", verify="everything")
    with pytest.raises(fmt.DatasetError, match="no such dataset directory"):
        load_dataset("/nonexistent/dataset")


def _flip_last_byte(path):
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        byte = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))


def _rewrite_with_crc(root, shard, key, array):
    path = os.path.join(root, fmt.SHARDS, fmt.shard_name(shard))
    np.save(os.path.join(path, key + ".npy"), array)
    header = json.load(open(os.path.join(path, fmt.SHARD_JSON)))
    header["arrays"][key]["crc32"] = fmt.crc32(array)
    json.dump(header, open(os.path.join(path, fmt.SHARD_JSON), "w"))


def test_shards_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        root = str(tmp_path / "ds")
        write_synthetic_dataset(root, num_episodes=2, episode_length=3)
        shard = os.path.join(root, fmt.SHARDS, "shard-000000")
        assert os.stat(shard).st_mode & 0o777 == 0o755
        assert os.stat(os.path.join(shard, "actions.npy")).st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_windows_match_gather_on_shards_and_views(data_dir):
    ds = load_dataset(data_dir)
    rng = np.random.default_rng(0)
    starts = ds.episode_starts[ds.episode_lengths >= 3]
    np.testing.assert_array_equal(
        ds.observations.windows(starts, 3), ds.observations[starts[:, None] + np.arange(3)])
    train, _ = ds.split(0.3, seed=2)
    ok = train.episode_starts[train.episode_lengths >= 2]
    np.testing.assert_array_equal(train.observations.windows(ok, 2),
                                  train.observations[ok[:, None] + np.arange(2)])
    # Windows that cross a shard or a selection boundary fall back to a gather.
    anywhere = rng.integers(0, train.num_steps - 4, 40)
    np.testing.assert_array_equal(train.observations.windows(anywhere, 4),
                                  train.observations[anywhere[:, None] + np.arange(4)])
    with pytest.raises(IndexError, match="window out of range"):
        ds.observations.windows(np.array([ds.num_steps - 1]), 2)
