"""Reward-labelled episodes as RL transitions: what offline RL (IQL, AWAC) trains on, and
what seeds an online run's batches (``offline.mix``).

``Transitions`` holds episodes back to back, like a prior dataset: ``observations[i]`` is
the observation on which ``actions[i]`` was taken, ``rewards[i]`` and ``terminated[i]``
what followed, and ``final_observations[e]`` the observation after episode ``e``'s last
action. Transition ``i`` of episode ``e`` goes to ``observations[i + 1]``, or to
``final_observations[e]`` at the episode's last step, so no frame is stored twice and no
transition crosses an episode. An episode that ends without ``terminated`` was truncated
(a time limit) and bootstraps.

Sources (``load_transitions``):
- a dataset of ``experiments.collect_data`` (``DIR[,DIR]``); its rewards are the task's
  it was collected on, so ``check_task`` refuses one collected on other tasks unless
  its rewards are replaced by zeros (``rewards="zero"``: PARROT's prior data, which holds
  no reward of the new task);
- a Minari dataset (``minari:ID``, under ``MINARI_DATASETS_PATH``), with image or vector
  observations (``parrot_jax.data.minari_io``).

Actions are mapped from the env's Box ``[low, high]`` to the policy's ``[-1, 1]``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from parrot_jax.data.replay import n_step_sum

MINARI_PREFIX = "minari:"
REWARDS = ("dataset", "zero")


@dataclasses.dataclass(frozen=True, eq=False)
class Transitions:
    observations: np.ndarray  # (N, ...) image uint8 or vector float32
    actions: np.ndarray  # (N, A) float32, in the policy's [-1, 1]
    rewards: np.ndarray  # (N,) float32
    terminated: np.ndarray  # (N,) bool
    episode_lengths: np.ndarray  # (E,) int64
    final_observations: np.ndarray  # (E, ...)
    env_ids: tuple[str, ...]  # the tasks the episodes (and their rewards) come from
    source: str = ""

    def __post_init__(self):
        n, e = len(self.actions), len(self.episode_lengths)
        for name, expected in (("observations", n), ("rewards", n), ("terminated", n),
                               ("final_observations", e)):
            if len(getattr(self, name)) != expected:
                raise ValueError(f"{self.source}: {name} has {len(getattr(self, name))} rows; "
                                 f"expected {expected}")
        if int(np.sum(self.episode_lengths)) != n or (e and self.episode_lengths.min() < 1):
            raise ValueError(f"{self.source}: episode lengths sum to "
                             f"{int(np.sum(self.episode_lengths))}, expected {n} steps, "
                             "each episode at least one step")
        ends = np.cumsum(self.episode_lengths)
        object.__setattr__(self, "_episode", np.repeat(np.arange(e), self.episode_lengths))
        object.__setattr__(self, "_end", np.repeat(ends, self.episode_lengths))

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.observations.shape[1:])

    @property
    def action_dim(self) -> int:
        return self.actions.shape[1]

    def episode_returns(self) -> np.ndarray:
        """(E,) the undiscounted return of each episode."""
        if not self.num_episodes:
            return np.zeros(0, np.float32)
        starts = np.cumsum(self.episode_lengths) - self.episode_lengths
        return np.add.reduceat(self.rewards, starts)

    def with_zero_rewards(self) -> "Transitions":
        return dataclasses.replace(self, rewards=np.zeros_like(self.rewards))

    def sample(self, rng: np.random.Generator, batch_size: int, n_step: int = 1,
               discount: float = 1.0) -> dict[str, np.ndarray]:
        """``batch_size`` transitions drawn i.i.d. uniformly, with the replay buffer's keys
        (``parrot_jax.data.replay.ReplayBuffer.sample``): ``n_step > 1`` sums up to n
        discounted rewards of the same episode, stopping after a terminal step or at its
        last step, and adds ``discounts = discount**m`` (m the steps taken)."""
        if batch_size < 1 or n_step < 1:
            raise ValueError(f"batch_size={batch_size} and n_step={n_step} must be >= 1")
        if not len(self):
            raise ValueError(f"{self.source}: no transitions to sample")
        start = rng.integers(0, len(self), size=batch_size)
        end = self._end[start]

        def step(k):
            return np.minimum(start + k, len(self) - 1)

        rewards, terminated, taken, scale = n_step_sum(
            n_step, discount, lambda k: self.rewards[step(k)],
            lambda k: self.terminated[step(k)], lambda k: start + k < end)
        last = start + taken
        episode_end = last + 1 == end
        following = np.minimum(last + 1, len(self) - 1)
        next_obs = np.where(_expand(episode_end, self.observations.ndim),
                            self.final_observations[self._episode[last]],
                            self.observations[following])
        batch = dict(observations=self.observations[start], actions=self.actions[start],
                     rewards=rewards, next_observations=next_obs, terminated=terminated)
        if n_step > 1:
            batch["discounts"] = scale
        return batch


def _expand(mask: np.ndarray, ndim: int) -> np.ndarray:
    return mask.reshape(mask.shape + (1,) * (ndim - 1))


def to_policy_actions(actions: np.ndarray, low: float, high: float) -> np.ndarray:
    """Env actions in ``[low, high]`` -> the policy's ``[-1, 1]`` (identity for (-1, 1))."""
    actions = np.asarray(actions, np.float32)
    if (low, high) == (-1.0, 1.0):
        return actions
    return ((actions - low) / (high - low) * 2.0 - 1.0).astype(np.float32)


def from_dataset(paths: list[str]) -> Transitions:
    """A prior-format dataset (``experiments.collect_data``), read into memory."""
    from parrot_jax.data.dataset import load_dataset

    dataset = load_dataset(paths, in_memory=True)
    return Transitions(
        observations=np.asarray(dataset.observations), actions=np.asarray(dataset.actions),
        rewards=np.asarray(dataset.rewards, np.float32),
        terminated=np.zeros(dataset.num_steps, bool),  # the suite's episodes end by time limit
        episode_lengths=np.asarray(dataset.episode_lengths, np.int64),
        final_observations=np.asarray(dataset.final_observations),
        env_ids=tuple(sorted({dataset.env_ids[t] for t in np.unique(dataset.episode_tasks)})),
        source=",".join(paths))


def record(env, act, episodes: int, seed: int, env_id: str = "") -> Transitions:
    """``episodes`` episodes of ``act(observation, episode, t) -> env action`` in the
    gymnasium env ``env``, episode ``i`` reset with seed ``seed + i``; actions as the env
    received them (its Box, not mapped to [-1, 1])."""
    observations, actions, rewards, terminated, finals, lengths = [], [], [], [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, t = False, 0
        while not done:
            action = np.asarray(act(obs, episode, t), np.float32)
            next_obs, reward, term, trunc, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            terminated.append(term)
            obs, done, t = next_obs, term or trunc, t + 1
        finals.append(obs)
        lengths.append(t)
    dtype = np.uint8 if np.asarray(observations[0]).dtype == np.uint8 else np.float32
    return Transitions(
        observations=np.asarray(observations, dtype), actions=np.asarray(actions, np.float32),
        rewards=np.asarray(rewards, np.float32), terminated=np.asarray(terminated, bool),
        episode_lengths=np.asarray(lengths, np.int64),
        final_observations=np.asarray(finals, dtype), env_ids=(env_id,) if env_id else (),
        source=f"{episodes} episodes of {env_id or env}")


def check_spec(spec: str) -> None:
    """ValueError (a ``DatasetError`` for our datasets) unless ``spec`` names a dataset:
    reads only its metadata."""
    if spec.startswith(MINARI_PREFIX):
        from parrot_jax.data import minari_io

        minari_io.check_exists(spec[len(MINARI_PREFIX):])
    else:
        from parrot_jax import run_config

        run_config.check_datasets(spec)


def load_transitions(spec: str, action_bounds=(-1.0, 1.0)) -> Transitions:
    """``DIR[,DIR]`` (our datasets) or ``minari:ID``, actions mapped to ``[-1, 1]``."""
    if spec.startswith(MINARI_PREFIX):
        from parrot_jax.data import minari_io

        data = minari_io.load(spec[len(MINARI_PREFIX):])
    else:
        from parrot_jax import run_config

        data = from_dataset(run_config.dataset_paths(spec))
    low, high = action_bounds
    return dataclasses.replace(data, actions=to_policy_actions(data.actions, low, high))


def check_task(data: Transitions, env_id: str, rewards: str) -> None:
    """ValueError unless the data's rewards are the run's task's (``rewards="dataset"``);
    ``rewards="zero"`` accepts data of any task (its rewards replaced by zeros)."""
    if rewards not in REWARDS:
        raise ValueError(f"offline.rewards={rewards!r}; expected one of {REWARDS}")
    task = env_id.rpartition(":")[2]
    if rewards == "dataset" and data.env_ids and set(data.env_ids) != {task}:
        raise ValueError(
            f"offline dataset {data.source} holds episodes of {', '.join(data.env_ids)}, not "
            f"of the run's task {task}: its rewards are not this task's. Collect reward-"
            f"labelled data on {task} (python -m experiments.collect_data "
            f"--config.env_ids='(\"{task}\",)' --config.mix='(1.0,)' --config.keep=all "
            "--workdir=DIR), or "
            "pass --config.offline.rewards=zero to use it as reward-free data (PARROT's "
            "setting: IQL and AWAC then reduce to behaviour cloning)")


def check_spaces(data: Transitions, observation_shape, observation_dtype,
                 action_dim: int) -> None:
    """ValueError naming the mismatch between the data and the env."""
    if data.observation_shape != tuple(observation_shape):
        raise ValueError(f"offline dataset {data.source} has observations of shape "
                         f"{data.observation_shape}; the env's are {tuple(observation_shape)}")
    if np.dtype(data.observations.dtype) != np.dtype(observation_dtype):
        raise ValueError(f"offline dataset {data.source} has {data.observations.dtype} "
                         f"observations; the env's are {np.dtype(observation_dtype)}")
    if data.action_dim != action_dim:
        raise ValueError(f"offline dataset {data.source} has {data.action_dim}-D actions; the "
                         f"env's are {action_dim}-D")


def describe(data: Transitions) -> dict:
    """What a run records about its offline data (``config.json``)."""
    returns = data.episode_returns()
    return {"source": data.source, "episodes": data.num_episodes, "transitions": len(data),
            "env_ids": list(data.env_ids), "mean_return": float(np.mean(returns))
            if len(returns) else 0.0}
