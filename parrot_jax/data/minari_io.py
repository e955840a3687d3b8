"""Our datasets to and from Minari, the gymnasium ecosystem's offline-data format.

    export_dataset(load_dataset(DIR), "parrot/PickUpCan/scripted-v0")  # ours -> Minari
    load("parrot/PickUpCan/scripted-v0")                               # Minari -> Transitions

A Minari episode holds ``T + 1`` observations (the last one after the final action), ``T``
actions, rewards, terminations and truncations; ours hold ``T`` observations plus a final
one, so the two map onto each other exactly. Images are stored raw (``jpeg=False``, the
default: lossless, so a round trip is exact); ``jpeg=True`` is Minari's smaller, lossy
encoding. Datasets live under ``MINARI_DATASETS_PATH`` (Minari's default:
``~/.minari/datasets``). Minari is imported here only, on demand.
"""

from __future__ import annotations

import numpy as np

from parrot_jax.data.transitions import MINARI_PREFIX, Transitions


def _minari():
    try:
        import minari
    except ImportError:  # pragma: no cover - minari is in requirements.txt
        raise ImportError("Minari datasets need `pip install minari[hdf5]`") from None
    return minari


def check_exists(dataset_id: str) -> None:
    """ValueError unless Minari has ``dataset_id`` locally (names where it looked)."""
    minari = _minari()
    local = minari.list_local_datasets()
    if dataset_id not in local:
        import os

        root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
        raise ValueError(f"no Minari dataset {dataset_id!r} under {root} (MINARI_DATASETS_PATH)"
                         f"; local datasets: {', '.join(sorted(local)) or 'none'}")


def export_dataset(dataset, dataset_id: str, *, observation_space=None, action_space=None,
                   jpeg: bool = False, description: str = "", author: str = "parrot_jax"):
    """Writes a prior-format ``Dataset`` (or ``Transitions``) as the Minari dataset
    ``dataset_id``; returns the ``MinariDataset``. Actions are written as stored (the
    suite's ``[-1, 1]``). ``FileExistsError`` if the id exists (Minari never overwrites)."""
    import gymnasium as gym

    minari = _minari()
    from minari.data_collector import EpisodeBuffer

    if dataset_id in minari.list_local_datasets():
        raise FileExistsError(f"Minari dataset {dataset_id!r} exists; delete it first "
                              f"(minari.delete_dataset) or choose another id")
    observations = np.asarray(dataset.observations)
    actions = np.asarray(dataset.actions, np.float32)
    rewards = np.asarray(dataset.rewards, np.float32)
    terminated = np.asarray(getattr(dataset, "terminated", np.zeros(len(actions), bool)))
    finals = np.asarray(dataset.final_observations)
    env_ids = sorted(set(dataset.env_ids))
    tasks = getattr(dataset, "episode_tasks", None)
    seeds = getattr(dataset, "episode_seeds", None)
    buffers, start = [], 0
    for e, length in enumerate(np.asarray(dataset.episode_lengths)):
        rows = slice(start, start + int(length))
        ends = terminated[rows].copy()
        truncations = np.zeros(int(length), bool)
        truncations[-1] = not ends[-1]
        options = None if tasks is None else {"env_id": dataset.env_ids[int(tasks[e])]}
        buffers.append(EpisodeBuffer(
            id=e, seed=None if seeds is None else int(seeds[e]), options=options,
            observations=np.concatenate([observations[rows], finals[e][None]]),
            actions=actions[rows], rewards=rewards[rows], terminations=ends,
            truncations=truncations))
        start += int(length)
    if observation_space is None:
        observation_space = (gym.spaces.Box(0, 255, observations.shape[1:], np.uint8)
                             if observations.dtype == np.uint8 else
                             gym.spaces.Box(-np.inf, np.inf, observations.shape[1:], np.float32))
    if action_space is None:
        action_space = gym.spaces.Box(-1.0, 1.0, actions.shape[1:], np.float32)
    env = env_ids[0] if len(env_ids) == 1 else None
    if env is not None:  # Minari records the env's spec, which must serialise to JSON
        try:
            gym.spec(env).to_json()
        except (gym.error.Error, ValueError):
            env = None
    return minari.create_dataset_from_buffers(
        dataset_id, buffers, env=env, observation_space=observation_space,
        action_space=action_space, algorithm_name="parrot_jax export", author=author,
        description=description or f"episodes of {', '.join(env_ids)}",
        jpeg_encoding=jpeg)


def load(dataset_id: str) -> Transitions:
    """The Minari dataset ``dataset_id`` as ``Transitions`` (actions as stored). The task
    is the dataset's env id (from its env spec), or unknown (then not checked)."""
    check_exists(dataset_id)
    minari = _minari()
    data = minari.load_dataset(dataset_id)
    observations, finals, actions, rewards, terminated, lengths = [], [], [], [], [], []
    for episode in data.iterate_episodes():
        obs = np.asarray(episode.observations)
        if not isinstance(episode.observations, np.ndarray) or obs.dtype == object:
            raise ValueError(f"Minari dataset {dataset_id!r}: observations of type "
                             f"{type(episode.observations).__name__}; only Box (array) "
                             "observations are supported")
        observations.append(obs[:-1])
        finals.append(obs[-1])
        actions.append(np.asarray(episode.actions, np.float32).reshape(len(obs) - 1, -1))
        rewards.append(np.asarray(episode.rewards, np.float32))
        terminated.append(np.asarray(episode.terminations, bool))
        lengths.append(len(obs) - 1)
    if not lengths:
        raise ValueError(f"Minari dataset {dataset_id!r} holds no episodes")
    spec = data.env_spec
    obs = np.concatenate(observations)
    if obs.dtype == np.float64:
        obs = obs.astype(np.float32)
    return Transitions(
        observations=obs, actions=np.concatenate(actions), rewards=np.concatenate(rewards),
        terminated=np.concatenate(terminated), episode_lengths=np.asarray(lengths, np.int64),
        final_observations=np.stack(finals).astype(obs.dtype),
        env_ids=(spec.id,) if spec is not None else (), source=MINARI_PREFIX + dataset_id)
