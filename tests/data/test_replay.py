"""ReplayBuffer: exact obs/next-obs pairing, overwriting, uniform sampling, memory, errors.

Frames encode (env, episode, step) in their pixel bytes, so every sampled transition can
be checked against a fake same-step-autoreset pool and an independent per-env frame log.
"""

import numpy as np
import pytest
from scipy import stats

from parrot_jax.data.replay import ReplayBuffer

IMAGE_SHAPE = (2, 2, 3)  # 12 bytes = three little-endian uint32: env, episode, step


def encode_image(env, episode, step):
    return np.array([env, episode, step], "<u4").view(np.uint8).reshape(IMAGE_SHAPE)


def decode_image(frames):
    return frames.reshape(len(frames), 12).view("<u4").astype(np.int64)


def encode_vector(env, episode, step):
    return np.array([env, episode, step], np.float32)


def decode_vector(frames):
    return frames.astype(np.int64)


def reward_of(env, episode, step):
    return 1000.0 * env + 10.0 * episode + step


class FakePool:
    """Lockstep envs with same-step autoreset, like EnvPool; episode lengths per env come
    from ``max_lengths`` (``None``: never ends), ending by termination or truncation at
    random. Keeps each env's frame log, in buffer order, as the test's oracle."""

    def __init__(self, max_lengths, seed=0, encode=encode_image):
        self.rng, self.encode = np.random.default_rng(seed), encode
        self.max_lengths, self.num_envs = max_lengths, len(max_lengths)
        self.episode = [-1] * self.num_envs
        self.step_count = [0] * self.num_envs
        self.length, self.ends_by_termination = {}, {}  # keyed by (env, episode)
        self.log = [[] for _ in range(self.num_envs)]  # per env: [key, has_action]

    def _new_episode(self, env):
        self.episode[env] += 1
        self.step_count[env] = 0
        key = (env, self.episode[env])
        max_length = self.max_lengths[env]
        self.length[key] = (10**9 if max_length is None
                            else int(self.rng.integers(1, max_length + 1)))
        self.ends_by_termination[key] = bool(self.rng.random() < 0.5)
        return self._frame(env)

    def _frame(self, env):
        key = (env, self.episode[env], self.step_count[env])
        self.log[env].append([key, False])
        return self.encode(*key)

    def reset(self):
        return np.stack([self._new_episode(env) for env in range(self.num_envs)])

    def step(self):
        actions = np.array([[e, self.episode[e], self.step_count[e]] for e in range(self.num_envs)],
                           np.float32)
        rewards = np.array([reward_of(*a) for a in actions], np.float64)
        obs, final_obs = [], []
        terminated, truncated = np.zeros(self.num_envs, bool), np.zeros(self.num_envs, bool)
        for env in range(self.num_envs):
            self.log[env][-1][1] = True
            self.step_count[env] += 1
            final_obs.append(self._frame(env))
            key = (env, self.episode[env])
            if self.step_count[env] == self.length[key]:
                terminated[env] = self.ends_by_termination[key]
                truncated[env] = not terminated[env]
                obs.append(self._new_episode(env))
            else:
                obs.append(final_obs[-1])
        return actions, rewards, terminated, truncated, np.stack(obs), np.stack(final_obs)

    def valid_transitions(self, slots_per_env):
        """Keys of the frames that still have an action and their next frame in the ring."""
        return {key for log in self.log
                for key, has_action in log[-slots_per_env:-1] if has_action}

    def is_terminal(self, key):
        env, episode, step = key
        return (step + 1 == self.length[(env, episode)]
                and self.ends_by_termination[(env, episode)])


def run(buffer, pool, steps):
    for _ in range(steps):
        actions, rewards, terminated, truncated, obs, final_obs = pool.step()
        buffer.add(actions, rewards, terminated, truncated, obs, final_obs)


def started(capacity, max_lengths, seed=0, encode=encode_image, shape=IMAGE_SHAPE,
            dtype=np.uint8):
    pool = FakePool(max_lengths, seed, encode)
    buffer = ReplayBuffer(capacity, len(max_lengths), shape, (3,), observation_dtype=dtype)
    buffer.start(pool.reset())
    return buffer, pool


def check_batch(batch, pool, decode=decode_image):
    """Asserts every sampled transition is exact; returns the keys (env, episode, step)."""
    keys, next_keys = decode(batch["observations"]), decode(batch["next_observations"])
    np.testing.assert_array_equal(next_keys, keys + [0, 0, 1])  # same episode, next step
    np.testing.assert_array_equal(batch["actions"], keys)
    np.testing.assert_array_equal(batch["rewards"], [reward_of(*k) for k in keys])
    np.testing.assert_array_equal(batch["terminated"], [pool.is_terminal(k) for k in keys])
    return [tuple(k) for k in keys]


def test_pairing_exact_across_wraparound_and_episode_ends():
    buffer, pool = started(4 * 10, [1, 3, 6, None])
    rng = np.random.default_rng(1)
    for _ in range(30):  # 15 rings of the env with one-step episodes
        run(buffer, pool, 7)
        keys = check_batch(buffer.sample(rng, 2000), pool)
        assert set(keys) == pool.valid_transitions(buffer.slots_per_env)
    assert len(set(pool.length)) > 40
    assert any(pool.ends_by_termination.values()) and not all(pool.ends_by_termination.values())


def test_terminal_transitions_lead_to_the_final_frame_not_the_reset_frame():
    buffer, pool = started(3 * 8, [1, 2, 4])
    run(buffer, pool, 20)
    batch = buffer.sample(np.random.default_rng(0), 3000)
    check_batch(batch, pool)
    keys, next_keys = decode_image(batch["observations"]), decode_image(batch["next_observations"])
    last = np.array([k[2] + 1 == pool.length[(k[0], k[1])] for k in keys])
    assert batch["terminated"].any() and (last & ~batch["terminated"]).any()  # both kinds seen
    assert (next_keys[last, 2] > 0).all()  # never the reset frame (step 0)


@pytest.mark.parametrize("n_step", [2, 5])
def test_n_step_transitions_stop_at_episode_ends(n_step):
    buffer, pool = started(4 * 12, [1, 3, 6, None])
    rng, gamma = np.random.default_rng(2), 0.5
    for _ in range(8):
        run(buffer, pool, 5)
        batch = buffer.sample(rng, 500, n_step=n_step, discount=gamma)
        keys = decode_image(batch["observations"])
        np.testing.assert_array_equal(batch["actions"], keys)
        for i, (env, episode, step) in enumerate(keys):
            acted = (pool.step_count[env] if episode == pool.episode[env]
                     else pool.length[(env, episode)])  # steps taken in that episode so far
            m = min(n_step, acted - step)
            assert decode_image(batch["next_observations"][i:i + 1])[0].tolist() == [
                env, episode, step + m]
            expected = sum(gamma**k * reward_of(env, episode, step + k) for k in range(m))
            np.testing.assert_allclose(batch["rewards"][i], expected, rtol=1e-6)
            assert batch["discounts"][i] == gamma**m
            assert batch["terminated"][i] == pool.is_terminal((env, episode, step + m - 1))
    # some walks took all n steps, some were cut short by an episode's end
    assert (batch["discounts"] == gamma**n_step).any() and (batch["discounts"] > gamma**n_step).any()
    with pytest.raises(ValueError, match="n_step=12 must be below the 12 slots"):
        buffer.sample(rng, 4, n_step=12)


def test_num_transitions_during_fill_and_when_full():
    buffer, pool = started(3 * 12, [1, 4, None])
    assert buffer.num_transitions == len(buffer) == 0
    for _ in range(40):
        run(buffer, pool, 1)
        expected = pool.valid_transitions(buffer.slots_per_env)
        assert buffer.num_transitions == len(buffer) == len(expected)
        assert buffer.num_transitions == buffer._has_action.sum()
    assert len(buffer) < buffer.capacity_frames - 3  # final and pending frames carry none


def test_restart_keeps_old_transitions_and_their_next_frames():
    buffer, pool = started(2 * 10, [None, None])
    run(buffer, pool, 3)
    buffer.start(pool.reset())  # a pool reset aborts the running episodes
    assert len(buffer) == 6
    run(buffer, pool, 4)
    keys = check_batch(buffer.sample(np.random.default_rng(0), 2000), pool)
    assert set(keys) == pool.valid_transitions(buffer.slots_per_env) and len(set(keys)) == 14


def chi_square_p_value(buffer, pool, rng, num_samples=60_000):
    expected = sorted(pool.valid_transitions(buffer.slots_per_env))
    counts = dict.fromkeys(expected, 0)
    for _ in range(num_samples // 5000):
        for key in check_batch(buffer.sample(rng, 5000), pool):
            counts[key] += 1  # a KeyError would mean an invalid transition was sampled
    return stats.chisquare(list(counts.values())).pvalue


def test_sampling_is_uniform_during_fill_and_when_full():
    rng = np.random.default_rng(123)
    buffer, pool = started(4 * 40, [1, 5, 9, None], seed=3)
    run(buffer, pool, 12)  # no ring full yet; the envs have written different numbers of frames
    assert len(set(buffer._written.tolist())) == 4 and buffer._written.max() < 40
    assert chi_square_p_value(buffer, pool, rng) > 1e-3
    run(buffer, pool, 13)  # env 0 has wrapped, the others not: different valid counts per env
    assert buffer._written[0] == 40 and buffer._written[1:].max() < 40
    assert chi_square_p_value(buffer, pool, rng) > 1e-3
    run(buffer, pool, 100)  # all full
    assert chi_square_p_value(buffer, pool, rng) > 1e-3


def test_sampling_finds_a_single_valid_transition_among_many_frames():
    buffer, pool = started(60, [None])
    for _ in range(40):
        buffer.start(pool.reset())
    run(buffer, pool, 1)
    assert len(buffer) == 1
    for seed in range(30):  # each draw is rejected 98% of the time, so several rounds run
        keys = check_batch(buffer.sample(np.random.default_rng(seed), 3), pool)
        assert keys == [(0, 40, 0)] * 3


def test_sample_shapes_and_dtypes():
    buffer, pool = started(4 * 8, [3, 3, 3, 3])
    run(buffer, pool, 5)
    batch = buffer.sample(np.random.default_rng(0), 16)
    assert batch["observations"].shape == batch["next_observations"].shape == (16, *IMAGE_SHAPE)
    assert batch["observations"].dtype == np.uint8 and batch["actions"].dtype == np.float32
    assert batch["actions"].shape == (16, 3) and batch["rewards"].dtype == np.float32
    assert batch["rewards"].shape == batch["terminated"].shape == (16,)
    assert batch["terminated"].dtype == bool


def test_frames_are_stored_once():
    buffer = ReplayBuffer(1000, 8, (48, 48, 3), (7,))
    frame_bytes = 48 * 48 * 3
    per_slot_extra = 7 * 4 + 4 + 1 + 1  # action, reward, terminated, has_action
    assert buffer.capacity_frames == 1000
    assert buffer.nbytes == 1000 * (frame_bytes + per_slot_extra) + 2 * 8 * 8
    assert buffer.nbytes < 1.01 * 1000 * frame_bytes
    assert repr(buffer) == ("ReplayBuffer(8 envs x 125 frames of (48, 48, 3) uint8 = 1000 frames, "
                            "6.9 MB)")


def test_vector_observations():
    buffer, pool = started(2 * 6, [2, None], encode=encode_vector, shape=(3,), dtype=np.float32)
    run(buffer, pool, 20)
    keys = check_batch(buffer.sample(np.random.default_rng(0), 1000), pool, decode_vector)
    assert set(keys) == pool.valid_transitions(buffer.slots_per_env)


@pytest.mark.parametrize("kwargs, match", [
    (dict(capacity=5, num_envs=2),
     r"capacity 5 gives 2 slots per env for 2 envs; need capacity >= 6"),
    (dict(capacity=0), r"capacity must be a positive int, got 0"),
    (dict(num_envs=2.0), r"num_envs must be a positive int, got 2.0"),
    (dict(observation_shape=(48, 0, 3)), r"every dimension of observation_shape \(48, 0, 3\)"),
])
def test_constructor_rejects_bad_arguments(kwargs, match):
    args = dict(capacity=100, num_envs=4, observation_shape=(48, 48, 3), action_shape=(7,)) | kwargs
    with pytest.raises(ValueError, match=match):
        ReplayBuffer(**args)


def good_step(num_envs=8):
    obs = np.zeros((num_envs, 48, 48, 3), np.uint8)
    flags = np.zeros(num_envs, bool)
    return dict(actions=np.zeros((num_envs, 7), np.float32), rewards=np.zeros(num_envs),
                terminated=flags, truncated=flags, observations=obs, final_observations=obs)


@pytest.mark.parametrize("name, value, match", [
    ("observations", np.zeros((4, 48, 48), np.uint8),
     r"observations has shape \(4, 48, 48\) but the buffer expects \(8, 48, 48, 3\)"),
    ("final_observations", np.zeros((8, 48, 48, 3), np.float32),
     r"final_observations has dtype float32 but the buffer expects uint8"),
    ("actions", np.zeros((8, 6), np.float32),
     r"actions has shape \(8, 6\) but the buffer expects \(8, 7\)"),
    ("actions", np.zeros((8, 7), complex),
     r"actions has dtype complex128 but the buffer expects float32"),
    ("rewards", np.full(8, np.nan), r"rewards must be finite real numbers"),
    ("rewards", np.zeros((8, 1)), r"rewards has shape \(8, 1\) but the buffer expects \(8,\)"),
    ("terminated", np.zeros(8, np.int64),
     r"terminated has dtype int64 but the buffer expects bool"),
])
def test_add_rejects_bad_inputs_and_leaves_the_buffer_usable(name, value, match):
    buffer = ReplayBuffer(80, 8, (48, 48, 3), (7,))
    buffer.start(np.zeros((8, 48, 48, 3), np.uint8))
    with pytest.raises(ValueError, match=match):
        buffer.add(**good_step() | {name: value})
    assert len(buffer) == 0
    buffer.add(**good_step())
    assert len(buffer) == 8


def test_start_rejects_bad_observations():
    buffer = ReplayBuffer(80, 8, (48, 48, 3), (7,))
    with pytest.raises(ValueError, match=r"observations has dtype float32 but the buffer expects"):
        buffer.start(np.zeros((8, 48, 48, 3), np.float32))
    with pytest.raises(ValueError, match=r"has shape \(8, 48, 48\) but the buffer expects"):
        buffer.start(np.zeros((8, 48, 48), np.uint8))


def test_add_before_start_and_sample_when_empty():
    buffer = ReplayBuffer(80, 8, (48, 48, 3), (7,))
    with pytest.raises(RuntimeError, match=r"add\(\) called before start\(\)"):
        buffer.add(**good_step())
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="holds no complete transition"):
        buffer.sample(rng, 4)
    buffer.start(np.zeros((8, 48, 48, 3), np.uint8))
    with pytest.raises(ValueError, match="holds no complete transition"):
        buffer.sample(rng, 4)
    buffer.add(**good_step())
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        buffer.sample(rng, 0)
