"""Ring replay buffer that stores every frame once, filled from a lockstep env pool.

Layout: each of the ``num_envs`` envs owns a ring of ``T = capacity // num_envs`` slots
and its own write pointer. A slot holds one frame and, once the env acted on it, that
action, its reward and ``terminated``. Frames are written in order, so the next
observation of the transition in slot ``s`` is the frame in slot ``(s + 1) mod T`` of
the same env and is never stored a second time. When an episode ends the final frame
gets a slot of its own without an action (it is only ever a next observation), and the
reset frame follows it as the new pending slot.

Invariant: ``has_action[e, s]`` implies that slot ``(s + 1) mod T`` of env ``e`` holds
the observation that action led to. Writing a frame into a slot clears its flag, and
pointers only move forward, so a slot's successor is never overwritten before the slot
itself. Valid transitions are exactly the flagged slots; none crosses an episode
boundary, at ring wraparound included.
"""

from __future__ import annotations

import numpy as np

# A finished env writes three slots in one step (action, final frame, reset frame): with two
# slots the reset frame would land on, and erase, the transition just stored.
_MIN_SLOTS = 3


def _check_array(name: str, value, shape: tuple, dtype: np.dtype | None = None) -> np.ndarray:
    """``np.asarray(value)``, raising ``ValueError`` unless its shape (and dtype) match."""
    array = np.asarray(value)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape} but the buffer expects {shape}")
    if dtype is not None and array.dtype != dtype:
        raise ValueError(f"{name} has dtype {array.dtype} but the buffer expects {dtype}")
    return array


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _shape(name: str, value) -> tuple[int, ...]:
    shape = tuple(value)
    for dim in shape:
        _positive_int(f"every dimension of {name} {shape}", dim)
    return tuple(int(d) for d in shape)


def _format_bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def n_step_sum(n_step: int, discount: float, reward, terminal, exists):
    """The n-step walk from each drawn transition (the replay buffer's and
    ``data.transitions``'): ``reward(k)``, ``terminal(k)`` and, for ``k >= 1``,
    ``exists(k)`` (the k-th next step is in the same episode) are arrays over the draws.
    The walk stops after a terminal step or where the episode ends. Returns
    ``(sum_{k<m} discount**k r_k, terminated, m - 1, discount**m)``, m the steps taken."""
    rewards, scale, terminated, live, last = None, None, None, None, None
    for k in range(n_step):
        r = reward(k)
        if not k:
            rewards = np.zeros(r.shape, np.float32)
            scale = np.ones(r.shape, np.float32)
            terminated = np.zeros(r.shape, bool)
            live = np.ones(r.shape, bool)
            last = np.zeros(r.shape, np.int64)
        else:
            live &= exists(k) & ~terminated
        rewards += np.where(live, scale * r, 0.0).astype(np.float32)
        terminated |= live & terminal(k)
        last = np.where(live, k, last)
        scale = np.where(live, scale * np.float32(discount), scale)
    return rewards, terminated, last, scale


class ReplayBuffer:
    """Uniform replay of ``(obs, action, reward, next_obs, terminated)`` transitions.

    ``capacity`` counts frames over all envs (rounded down to a multiple of ``num_envs``);
    the buffer holds slightly fewer transitions than frames because the pending frame of
    each env and the final frame of each stored episode have no action of their own.
    """

    def __init__(self, capacity: int, num_envs: int, observation_shape, action_shape,
                 observation_dtype=np.uint8, action_dtype=np.float32):
        capacity = _positive_int("capacity", capacity)
        self.num_envs = _positive_int("num_envs", num_envs)
        self.slots_per_env = capacity // self.num_envs
        if self.slots_per_env < _MIN_SLOTS:
            raise ValueError(f"capacity {capacity} gives {self.slots_per_env} slots per env for "
                             f"{self.num_envs} envs; need capacity >= {_MIN_SLOTS * self.num_envs}")
        self.observation_shape = _shape("observation_shape", observation_shape)
        self.action_shape = _shape("action_shape", action_shape)
        self.observation_dtype = np.dtype(observation_dtype)
        self.action_dtype = np.dtype(action_dtype)
        rows = (self.num_envs, self.slots_per_env)
        self._frames = np.zeros(rows + self.observation_shape, self.observation_dtype)
        self._actions = np.zeros(rows + self.action_shape, self.action_dtype)
        self._rewards = np.zeros(rows, np.float32)
        self._terminated = np.zeros(rows, bool)
        self._has_action = np.zeros(rows, bool)
        self._pointer = np.zeros(self.num_envs, np.int64)  # slot of each env's pending frame
        self._written = np.zeros(self.num_envs, np.int64)  # slots [0, written) hold frames
        self._num_valid = 0  # == self._has_action.sum(), kept up to date to avoid a full scan
        self._started = False

    @property
    def capacity_frames(self) -> int:
        return self.num_envs * self.slots_per_env

    @property
    def num_transitions(self) -> int:
        """Number of valid (sampleable) transitions now."""
        return self._num_valid

    def __len__(self) -> int:
        return self._num_valid

    @property
    def nbytes(self) -> int:
        arrays = (self._frames, self._actions, self._rewards, self._terminated,
                  self._has_action, self._pointer, self._written)
        return sum(a.nbytes for a in arrays)

    def __repr__(self) -> str:
        dtype = self.observation_dtype.name
        return (f"ReplayBuffer({self.num_envs} envs x {self.slots_per_env} frames of "
                f"{self.observation_shape} {dtype} = {self.capacity_frames} frames, "
                f"{_format_bytes(self.nbytes)})")

    _STATE = ("_frames", "_actions", "_rewards", "_terminated", "_has_action", "_pointer",
              "_written")

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything the buffer holds, as arrays (``load_state_dict`` restores it); the
        frame arrays only up to the last slot any env has written."""
        used = int(self._written.max())
        state = {name.lstrip("_"): getattr(self, name) for name in self._STATE}
        for name in ("frames", "actions", "rewards", "terminated", "has_action"):
            state[name] = state[name][:, :used]
        state["started"] = np.asarray(self._started)
        return state

    def load_state_dict(self, state) -> None:
        """Restores what ``state_dict`` returned, from a buffer of the same layout."""
        used = int(np.asarray(state["written"]).max(initial=0))
        expected = {"frames": (self.num_envs, used) + self.observation_shape,
                    "actions": (self.num_envs, used) + self.action_shape,
                    "pointer": (self.num_envs,), "written": (self.num_envs,)}
        if used > self.slots_per_env:
            raise ValueError(f"the saved buffer used {used} slots per env; this one has "
                             f"{self.slots_per_env} (capacity {self.capacity_frames}, "
                             f"{self.num_envs} envs)")
        for name, shape in expected.items():
            if tuple(np.shape(state[name])) != shape:
                raise ValueError(f"saved replay {name} has shape {np.shape(state[name])}; this "
                                 f"buffer expects {shape}")
        for name in self._STATE:
            value = np.asarray(state[name.lstrip("_")])
            target = getattr(self, name)
            if name in ("_pointer", "_written"):
                target[:] = value
            else:
                target[:, :used] = value
                target[:, used:] = 0
        self._num_valid = int(self._has_action.sum())
        self._started = bool(state["started"])

    def start(self, observations) -> None:
        """Stores the first observation of every env (after ``pool.reset``) as pending.

        On a restart the old pending frames stay in place without an action: each may
        still be the next observation of the transition before it.
        """
        obs = self._check_observations("observations", observations)
        if self._started:
            self._pointer = (self._pointer + 1) % self.slots_per_env
        self._write_frames(np.arange(self.num_envs), self._pointer, obs)
        self._started = True

    def add(self, actions, rewards, terminated, truncated, observations,
            final_observations) -> None:
        """Stores one pool step: ``pool.step(actions)`` gave ``observations``, ``rewards``,
        ``terminated``, ``truncated`` and ``infos["final_obs"]`` as ``final_observations``.

        Every env's action completes its pending transition, whose next observation is
        ``final_observations[e]``; for a finished env that frame gets its own slot and the
        reset frame ``observations[e]`` becomes the new pending frame. ``terminated`` is
        stored for bootstrapping; truncation only starts a new episode.
        """
        if not self._started:
            raise RuntimeError("ReplayBuffer.add() called before start(); "
                               "pass the observations from pool.reset() to start() first")
        n = self.num_envs
        actions = _check_array("actions", actions, (n, *self.action_shape))
        if not np.can_cast(actions.dtype, self.action_dtype, "same_kind"):
            raise ValueError(f"actions has dtype {actions.dtype} but the buffer expects "
                             f"{self.action_dtype}")
        rewards = _check_array("rewards", rewards, (n,))
        if rewards.dtype.kind not in "iuf" or not np.isfinite(rewards).all():
            raise ValueError(f"rewards must be finite real numbers, got {rewards.dtype} {rewards}")
        terminated = _check_array("terminated", terminated, (n,), np.dtype(bool))
        truncated = _check_array("truncated", truncated, (n,), np.dtype(bool))
        obs = self._check_observations("observations", observations)
        final_obs = self._check_observations("final_observations", final_observations)

        envs, pending = np.arange(n), self._pointer.copy()
        self._actions[envs, pending] = actions
        self._rewards[envs, pending] = rewards
        self._terminated[envs, pending] = terminated
        self._has_action[envs, pending] = True  # pending slots never carry an action yet
        self._num_valid += n
        done = terminated | truncated
        after = (pending + 1) % self.slots_per_env
        finished = np.flatnonzero(done)
        self._write_frames(finished, after[finished], final_obs[finished])
        # for envs still running final_obs equals obs, so obs is the next observation
        self._write_frames(envs, (after + done) % self.slots_per_env, obs)

    def sample(self, rng: np.random.Generator, batch_size: int, n_step: int = 1,
               discount: float = 1.0) -> dict[str, np.ndarray]:
        """``batch_size`` transitions drawn i.i.d., uniformly over all valid transitions.

        Returns ``observations``, ``next_observations`` (observation dtype), ``actions``,
        ``rewards`` (float32) and ``terminated`` (bool; ``1.0 - terminated`` is the
        bootstrap mask), each of leading size ``batch_size``.

        ``n_step > 1``: n-step transitions. From a drawn slot ``t`` the walk takes up to
        ``n`` steps of the same episode, stopping after a terminal step or at the
        episode's last frame: ``rewards = sum_{k<m} discount**k r_{t+k}``,
        ``next_observations`` is the frame after step ``t + m - 1``, ``terminated`` says
        whether that step terminated, and the extra ``discounts = discount**m`` is what
        the bootstrap value is multiplied by (``m <= n`` steps taken).
        """
        batch_size = _positive_int("batch_size", batch_size)
        n_step = _positive_int("n_step", n_step)
        if n_step >= self.slots_per_env:
            raise ValueError(f"n_step={n_step} must be below the {self.slots_per_env} slots "
                             "per env")
        if self._num_valid == 0:
            raise ValueError("cannot sample: the buffer holds no complete transition yet")
        envs, slots = self._sample_valid_slots(rng, batch_size)
        batch = dict(observations=self._frames[envs, slots], actions=self._actions[envs, slots])
        if n_step == 1:
            batch.update(rewards=self._rewards[envs, slots],
                         next_observations=self._frames[envs, (slots + 1) % self.slots_per_env],
                         terminated=self._terminated[envs, slots])
            return batch
        def slot(k):
            return envs, (slots + k) % self.slots_per_env

        # a slot without an action ends the episode (final or pending frame)
        rewards, terminated, taken, scale = n_step_sum(
            n_step, discount, lambda k: self._rewards[slot(k)],
            lambda k: self._terminated[slot(k)], lambda k: self._has_action[slot(k)])
        batch.update(rewards=rewards, terminated=terminated, discounts=scale,
                     next_observations=self._frames[slot(taken + 1)])
        return batch

    def _sample_valid_slots(self, rng: np.random.Generator,
                            batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform over written slots (envs may have written different numbers), minus the
        slots without an action: rejection keeps the draw exactly uniform over valid ones."""
        ends = np.cumsum(self._written)
        total = int(ends[-1])
        draws = int(batch_size * total / self._num_valid * 1.2) + 16  # expect about one round
        envs, slots = [], []
        found = 0
        while found < batch_size:
            flat = rng.integers(0, total, size=draws)
            env = np.searchsorted(ends, flat, side="right")
            slot = flat - (ends[env] - self._written[env])
            keep = self._has_action[env, slot]
            envs.append(env[keep])
            slots.append(slot[keep])
            found += int(keep.sum())
        return np.concatenate(envs)[:batch_size], np.concatenate(slots)[:batch_size]

    def _check_observations(self, name: str, value) -> np.ndarray:
        shape = (self.num_envs, *self.observation_shape)
        return _check_array(name, value, shape, self.observation_dtype)

    def _write_frames(self, envs: np.ndarray, slots: np.ndarray, frames: np.ndarray) -> None:
        """Writes frames, dropping the slots' old transitions; the pointers move onto them."""
        self._num_valid -= int(self._has_action[envs, slots].sum())
        self._has_action[envs, slots] = False
        self._frames[envs, slots] = frames
        self._written[envs] = np.maximum(self._written[envs], slots + 1)
        self._pointer[envs] = slots
