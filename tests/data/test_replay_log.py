"""ReplayLog: a buffer committed at checkpoints and restored exactly, bounded on disk."""

import os

import numpy as np
import pytest

from parrot_jax.data.replay import ReplayBuffer
from parrot_jax.data.replay_log import ReplayLog
from tests.data.test_replay import IMAGE_SHAPE, FakePool


def _buffer(capacity, num_envs=3):
    return ReplayBuffer(capacity, num_envs, IMAGE_SHAPE, (3,))


def _fill(log, pool, steps):
    for _ in range(steps):
        actions, rewards, terminated, truncated, obs, final_obs = pool.step()
        log.add(actions, rewards, terminated, truncated, obs, final_obs)


def _assert_same(a: ReplayBuffer, b: ReplayBuffer):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)
    assert len(a) == len(b)
    batch_a, batch_b = (buffer.sample(np.random.default_rng(0), 32, n_step=3, discount=0.9)
                        for buffer in (a, b))
    for key, value in batch_a.items():
        np.testing.assert_array_equal(value, batch_b[key], err_msg=key)


def _run_with_commits(directory, capacity, commits, steps_between=7, restart=True):
    """Fills a buffer through a log, committing (and restarting episodes, as the training
    loop does) at each step of ``commits``; returns the log and each commit's snapshot."""
    pool = FakePool([5, 9, None], seed=1)
    log = ReplayLog(directory, _buffer(capacity))
    log.start(pool.reset())
    snapshots = {}
    for step in commits:
        _fill(log, pool, steps_between)
        log.commit(step, keep_from=min(commits[max(0, commits.index(step) - 2):]))
        snapshots[step] = {k: v.copy() for k, v in log.buffer.state_dict().items()}
        if restart:
            log.start(pool.reset())
    return log, snapshots


@pytest.mark.parametrize("capacity", [300, 24])  # never full / wraps, with bases and pruning
def test_restore_rebuilds_the_buffer_of_every_kept_commit(tmp_path, capacity):
    commits = [10, 20, 30, 40, 50, 60]
    log, snapshots = _run_with_commits(str(tmp_path), capacity, commits)
    kinds = [kind for _, kind, _ in log.files()]
    if capacity == 24:  # 3 x 7 x 3 frames outgrow the buffer: bases, and older files pruned
        assert "base" in kinds and log.files()[0][0] > 10
    else:
        assert kinds == ["chunk"] * len(commits)
    # the last three commits, as checkpoints keep them; newest first, as restoring a step
    # deletes the files after it
    for step in (60, 50, 40):
        fresh = _buffer(capacity)
        fresh.load_state_dict(snapshots[step])
        restored = ReplayLog(str(tmp_path), _buffer(capacity))
        assert restored.restore(step)
        _assert_same(restored.buffer, fresh)


def test_disk_stays_bounded(tmp_path):
    capacity = 30
    commits = list(range(10, 410, 10))
    log, _ = _run_with_commits(str(tmp_path), capacity, commits, steps_between=5)
    frame_bytes = int(np.prod(IMAGE_SHAPE))
    # about two buffers and one commit interval of frames (plus actions and zip headers)
    assert log.disk_bytes() < 4 * capacity * frame_bytes + 20_000
    assert len(log.files()) <= 6


def test_a_restored_log_goes_on_as_the_original(tmp_path):
    """Kill after commit 20, restore, continue: the same buffer as never interrupted."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    pool_a, pool_b = FakePool([4, 6], seed=3), FakePool([4, 6], seed=3)
    a = ReplayLog(one, _buffer(60, 2))
    b = ReplayLog(two, _buffer(60, 2))
    for log, pool in ((a, pool_a), (b, pool_b)):
        log.start(pool.reset())
        _fill(log, pool, 10)
        log.commit(20)
    b = ReplayLog(two, _buffer(60, 2))  # the "killed" run's new process
    assert b.restore(20)
    for log, pool in ((a, pool_a), (b, pool_b)):
        _fill(log, pool, 9)
        log.commit(38)
    _assert_same(a.buffer, b.buffer)


def test_files_after_the_restored_step_and_temporaries_are_deleted(tmp_path):
    log, _ = _run_with_commits(str(tmp_path), 300, [10, 20, 30])
    open(os.path.join(str(tmp_path), "chunk_000000000040.npz.tmp"), "wb").close()
    restored = ReplayLog(str(tmp_path), _buffer(300))
    assert restored.restore(20)  # checkpoint 30 never completed, say
    assert [s for s, _, _ in restored.files()] == [10, 20]
    assert not [n for n in os.listdir(str(tmp_path)) if n.endswith(".tmp")]


@pytest.mark.fault
def test_missing_and_torn_files(tmp_path):
    log = ReplayLog(str(tmp_path), _buffer(300))
    assert log.restore(0)  # nothing committed at step 0 yet: an empty buffer
    assert not log.restore(10)  # a checkpoint from before replay logs
    log, _ = _run_with_commits(str(tmp_path / "b"), 300, [10, 20])
    path = log.files()[-1][2]
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(ValueError, match=f"replay file {path} is torn or corrupt"):
        ReplayLog(str(tmp_path / "b"), _buffer(300)).restore(20)


def test_state_dict_round_trip_and_layout_errors():
    pool = FakePool([5, None, 3], seed=0)
    buffer = _buffer(45)
    buffer.start(pool.reset())
    for _ in range(40):
        actions, rewards, terminated, truncated, obs, final_obs = pool.step()
        buffer.add(actions, rewards, terminated, truncated, obs, final_obs)
    copy = _buffer(45)
    copy.load_state_dict(buffer.state_dict())
    _assert_same(copy, buffer)
    with pytest.raises(ValueError, match="used 15 slots per env; this one has 10"):
        _buffer(30).load_state_dict(buffer.state_dict())
    with pytest.raises(ValueError, match="saved replay frames has shape"):
        ReplayBuffer(45, 3, (2, 2, 1), (3,)).load_state_dict(buffer.state_dict())
