"""pybullet's KukaDiverseObject grasping task through our gymnasium adapter: the API, seeding,
isolation between instances and from sys.modules, errors, and a SAC run through train_rl."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from parrot_jax.envs import kuka_grasping

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _episode(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    frames, rewards = [obs], []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        frames.append(obs)
        rewards.append(reward)
        assert info["success"] == (reward == 1.0) and not truncated
        if terminated:
            break
    return np.stack(frames), rewards


def test_spaces_and_gymnasiums_checker():
    env = gym.make(kuka_grasping.ENV_ID)
    assert env.observation_space == gym.spaces.Box(0, 255, (48, 48, 3), np.uint8)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()
    four = kuka_grasping.KukaDiverseObjectGrasping(removeHeightHack=True, width=32, height=32)
    assert four.action_space.shape == (4,) and four.observation_space.shape == (32, 32, 3)
    four.close()


def test_the_old_gym_names_are_not_left_behind():
    before = {name for name in ("gym", "pkg_resources", "pybullet_envs") if name in sys.modules}
    env = kuka_grasping.KukaDiverseObjectGrasping()
    after = {name for name in ("gym", "pkg_resources", "pybullet_envs") if name in sys.modules}
    assert after == before and not any(m.startswith("pybullet_envs.") for m in sys.modules)
    env.close()


def test_seeded_episodes_repeat_and_two_envs_do_not_share_a_simulation():
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 3))
    a, b = kuka_grasping.KukaDiverseObjectGrasping(), kuka_grasping.KukaDiverseObjectGrasping()
    alone = _episode(a, 7, actions)
    # interleaved: each step of a then the same step of b, on two simulations
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    together = [[obs_a], [obs_b]]
    for action in actions:
        steps = [env.step(action) for env in (a, b)]
        for frames, step in zip(together, steps):
            frames.append(step[0])
        if steps[0][2]:
            break
    assert 2 <= len(alone[0]) <= 9 and all(len(f) == len(alone[0]) for f in together)
    np.testing.assert_array_equal(np.stack(together[0]), alone[0])
    np.testing.assert_array_equal(np.stack(together[1]), alone[0])
    other = a.reset(seed=8)[0]
    assert not np.array_equal(other, alone[0][0])  # other objects, placed elsewhere
    a.close()
    b.close()


def test_bad_arguments_are_refused_with_their_value():
    with pytest.raises(ValueError, match="renders=True is not supported here; expected False"):
        kuka_grasping.KukaDiverseObjectGrasping(renders=True)
    with pytest.raises(ValueError, match="isDiscrete=True is not supported here"):
        kuka_grasping.KukaDiverseObjectGrasping(isDiscrete=True)
    with pytest.raises(ValueError, match="bad keyword for pybullet/KukaDiverseObjectGrasping-v0"
                                         ".*num_objects"):
        kuka_grasping.KukaDiverseObjectGrasping(num_objects=3)
    with pytest.raises(ValueError, match="render_mode='human'; expected None or 'rgb_array'"):
        kuka_grasping.KukaDiverseObjectGrasping(render_mode="human")
    env = kuka_grasping.KukaDiverseObjectGrasping()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action of shape \(4,\); expected \(3,\)"):
        env.step(np.zeros(4))
    env.close()


def test_sac_trains_on_it_through_train_rl(tmp_path):
    workdir = str(tmp_path / "sac")
    done = subprocess.run(
        [sys.executable, "-m", "experiments.train_rl", "--config=experiments/configs/rl.py:tiny",
         "--config.agent=sac", f"--config.env=parrot_jax.envs.kuka_grasping:"
         f"{kuka_grasping.ENV_ID}", "--config.total_env_steps=40", "--config.start_steps=16",
         "--config.eval_every=20", f"--workdir={workdir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    evals = [r for r in rows if "eval/success" in r]
    assert [r["step"] for r in evals] == [0, 20, 40]
    assert all(0.0 <= r["eval/success"] <= 1.0 for r in evals)
    assert any(r.get("train/episodes", 0) > 0 for r in rows)  # episodes ended in training
