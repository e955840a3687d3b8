"""Scripted rollouts: single episodes, and success rates over many seeds and tasks."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
from typing import Callable, Optional, Sequence

import numpy as np

from parrot_jax import forkserver, stats
from parrot_jax.envs import manipulation
from parrot_jax.envs import phases as phases_lib
from parrot_jax.envs import scripted
from parrot_jax.envs.manipulation import ManipulationEnv


@dataclasses.dataclass(frozen=True)
class Episode:
    """One rollout: T+1 frames (first is the reset image), T actions, the outcome."""

    frames: np.ndarray  # (T + 1, H, W, 3) uint8
    actions: np.ndarray  # (T, 7) float32
    rewards: np.ndarray  # (T,) float32
    success: bool  # info["success"] at the last step
    first_success: int  # first step (1-based) with reward 1, or -1
    means: np.ndarray  # (T, 7) the policy's noise-free actions
    gripper_open: np.ndarray  # (T,) bool: the gripper's state before each action
    object_offset: np.ndarray  # (T, 3) metres from the end effector to the nearest grasp
    # point (scripted.grasp_point) before each action
    phases: phases_lib.Phases  # how far the episode got with each object (one episode)

    @property
    def object_distance(self) -> np.ndarray:
        """(T,) metres from the end effector to the nearest grasp point."""
        return np.linalg.norm(self.object_offset, axis=-1)

    @property
    def closes(self) -> np.ndarray:
        """(T,) bool: the policy's noise-free action closed the open gripper."""
        return self.gripper_open & (self.means[:, 6] < -manipulation.GRIPPER_THRESHOLD)


def _changes_gripper(mean: np.ndarray, info: dict) -> bool:
    """Whether a noise-free scripted action commands the gripper out of its state."""
    threshold = manipulation.GRIPPER_THRESHOLD
    return bool(mean[6] < -threshold if info["gripper_open"] else mean[6] > threshold)


def policy_seed(seed: int) -> int:
    """Seed of the scripted policy's noise for the episode with env seed ``seed``."""
    return seed + 1_000_003


def scripted_episode(env: ManipulationEnv, seed: int, keep_frames: bool = True,
                     noise_seed: Optional[int] = None, perturb: float = 0.0,
                     on_step: Optional[Callable[[dict], None]] = None,
                     **policy_kwargs) -> Episode:
    """Runs the task's scripted policy for one episode from ``env.reset(seed=seed)``.

    The policy's noise is seeded with ``noise_seed`` (default ``policy_seed(seed)``);
    ``policy_kwargs`` go to ``scripted.make_policy`` (e.g. ``noise``, ``clip``).
    ``on_step(info)``, if given, sees the privileged ``info`` of every state an action is
    taken in (e.g. to record state features beside the frames).

    ``perturb > 0`` (DART-style recovery data): at each step, with this probability, the
    env executes a random translation (uniform in ``[-clip, clip]^3``; rotation and
    gripper as the policy's) instead of the policy's, while the episode still records the
    policy's action for that state. Steps that close or open the gripper are never
    perturbed (a grasp or release made while thrown aside would fail, and the scripted
    pick-and-place does not retry a release). The states then cover where a policy that
    imitates the data drifts to (off the scripted path: low beside an object, say), with
    the scripted correction as their action; the perturbations themselves are never
    recorded, so a prior trained on the data does not learn to make them. Drawn from a
    generator of their own, so ``perturb = 0`` gives exactly the unperturbed episode.
    """
    if not 0.0 <= perturb < 1.0:
        raise ValueError(f"perturb={perturb}; expected a probability in [0, 1)")
    obs, info = env.reset(seed=seed)
    noise_seed = policy_seed(seed) if noise_seed is None else noise_seed
    policy = scripted.make_policy(env.task.goal, np.random.default_rng(noise_seed),
                                  **policy_kwargs)
    perturbations = np.random.default_rng([noise_seed, 1])
    policy.reset()
    frames, actions, rewards, means, gripper_open, offsets = [obs], [], [], [], [], []
    tracker = phases_lib.PhaseTracker(1, len(info["object_pos"]))
    tracker.start(phases_lib.batch_info(info))
    first = -1
    while True:
        if on_step is not None:
            on_step(info)
        action, mean = policy.act(info)
        gripper_open.append(bool(info["gripper_open"]))
        points = scripted.grasp_point(info["object_pos"], info["object_bottom"])
        d = points - np.asarray(info["ee_pos"])
        offsets.append(d[np.argmin(np.linalg.norm(d, axis=-1))])
        executed = action
        if perturb and perturbations.random() < perturb and not _changes_gripper(mean, info):
            executed = action.copy()
            executed[:3] = perturbations.uniform(-policy.clip, policy.clip, 3)
        obs, reward, terminated, truncated, info = env.step(executed)
        actions.append(action)
        means.append(mean)
        rewards.append(reward)
        if keep_frames:
            frames.append(obs)
        if reward > 0 and first < 0:
            first = len(rewards)
        ended = np.array([terminated or truncated])
        tracker.update(phases_lib.batch_info(info), np.ones(1, bool), ended)
        if ended[0]:
            break
    return Episode(np.stack(frames), np.stack(actions), np.asarray(rewards, np.float32),
                   bool(info["success"]), first, np.stack(means).astype(np.float32),
                   np.asarray(gripper_open), np.asarray(offsets).reshape(-1, 3), tracker.result())


@dataclasses.dataclass(frozen=True)
class SuccessRate:
    env_id: str
    successes: int
    episodes: int

    @property
    def rate(self) -> float:
        return self.successes / self.episodes

    @property
    def ci95(self) -> tuple[float, float]:
        return stats.wilson_interval(self.successes, self.episodes)

    def as_dict(self) -> dict:
        lo, hi = self.ci95
        return {"env_id": self.env_id, "successes": self.successes, "episodes": self.episodes,
                "success_rate": self.rate, "ci95_low": lo, "ci95_high": hi}


def _success_count(args) -> tuple[str, int]:
    env_id, seeds, horizon = args
    env = ManipulationEnv(env_id, horizon=horizon)
    try:
        return env_id, sum(scripted_episode(env, s, keep_frames=False).success for s in seeds)
    finally:
        env.close()


def scripted_success(env_ids: Sequence[str], episodes: int, seed: int = 0, horizon: int = 25,
                     num_workers: Optional[int] = None) -> list[SuccessRate]:
    """Success rate of the scripted policy on each task over seeds seed..seed+episodes-1.

    Work is split into chunks over ``num_workers`` processes (default: all cores); the
    result does not depend on the split, since each episode depends on its seed only.
    """
    chunk = max(1, episodes // 4)
    jobs = [(env_id, list(range(seed + s, seed + min(s + chunk, episodes))), horizon)
            for env_id in env_ids for s in range(0, episodes, chunk)]
    workers = num_workers or mp.cpu_count()
    if workers == 1:
        counts = [_success_count(j) for j in jobs]
    else:
        # its workers need this module, not the main one (parrot_jax.forkserver)
        with forkserver.without_main():
            pool = forkserver.context(__name__, *manipulation.WORKER_IMPORTS,
                                      main=False).Pool(workers)
        with pool:
            counts = pool.map(_success_count, jobs)
    totals = {env_id: 0 for env_id in env_ids}
    for env_id, n in counts:
        totals[env_id] += n
    return [SuccessRate(env_id, totals[env_id], episodes) for env_id in env_ids]
