"""ActionChunks: a plan of H actions per step equals H steps of the inner env; LatentSkills:
a latent per step, each inner action decoded from that step's observation."""

import functools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from parrot_jax.envs.chunks import ActionChunks, LatentSkills, env_source, make_chunked, make_skills
from parrot_jax.envs.pool import EnvPool
from tests.agents import point_env  # noqa: F401  (registers PointReach-v0)

POINT = "tests.agents.point_env:PointReach-v0"


def test_a_chunk_is_its_steps_summed():
    env = make_chunked(POINT, 5)
    assert env.action_space.shape == (10,)
    np.testing.assert_array_equal(env.action_space.low, -np.ones(10))
    plan = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    inner = gym.make("PointReach-v0")
    obs, _ = env.reset(seed=3)
    inner_obs, _ = inner.reset(seed=3)
    np.testing.assert_array_equal(obs, inner_obs)
    total = 0.0
    for action in plan:
        inner_obs, reward, *_ = inner.step(action)
        total += reward
    obs, reward, terminated, truncated, info = env.step(plan.reshape(-1))
    np.testing.assert_array_equal(obs, inner_obs)
    assert reward == pytest.approx(total) and info["chunk_steps"] == 5
    assert not terminated and not truncated
    for _ in range(3):  # 20-step episodes: the fourth chunk reaches the time limit
        obs, reward, terminated, truncated, info = env.step(plan.reshape(-1))
    assert truncated and not terminated and info["chunk_steps"] == 5


def test_a_plan_longer_than_the_rest_of_the_episode_stops_at_its_end():
    env = make_chunked(POINT, 15, terminal_at_end=True)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(np.zeros(30))
    assert not terminated and info["chunk_steps"] == 15
    # 5 steps left: the plan stops there, and the time limit ends the agent's MDP
    _, _, terminated, truncated, info = env.step(np.zeros(30))
    assert terminated and not truncated and info["chunk_steps"] == 5


def test_gymnasium_checker_and_a_pool_of_suite_envs():
    check_env(make_chunked(POINT, 4), skip_render_check=True)
    assert env_source(POINT) == POINT  # one step: the id itself
    source = env_source("parrot/PickUpCan-v0", 25, True)
    assert isinstance(source, functools.partial)
    with EnvPool(source, num_envs=2, num_workers=1) as pool:
        assert pool.single_action_space.shape == (175,)
        obs, _ = pool.reset(seed=0)
        obs, rewards, terminated, truncated, infos = pool.step(np.zeros((2, 175), np.float32))
        # one step is the whole 25-step episode, ended as a terminal transition
        assert obs.shape == (2, 48, 48, 3) and terminated.all() and not truncated.any()
        np.testing.assert_array_equal(infos["chunk_steps"], [25, 25])
        assert np.asarray(infos["held"]).shape[0] == 2 and "success" in infos


def test_bad_wrapping_is_named():
    with pytest.raises(ValueError, match="horizon=0; expected >= 1"):
        ActionChunks(gym.make("PointReach-v0"), 0)
    with pytest.raises(ValueError, match="a plan of horizon=26 steps is longer than "
                                         "parrot/PickUpCan-v0's 25-step episodes"):
        make_chunked("parrot/PickUpCan-v0", 26)
    with pytest.raises(ValueError, match="needs a 1-D Box action space"):
        ActionChunks(gym.make("CartPole-v1"), 2)


def _feedback(z, obs):
    """A decoder whose action depends on the latent and on the observation it acts on."""
    return np.clip(np.asarray(z[:2]) - 0.5 * np.asarray(obs[:2], np.float32), -1, 1)


def test_latent_skills_decode_every_step_from_its_observation():
    env = make_skills(POINT, _feedback, 5, latent_dim=3, bound=2.0)
    assert env.action_space.shape == (3,)
    np.testing.assert_array_equal(env.action_space.high, [2.0, 2.0, 2.0])
    inner = gym.make("PointReach-v0")
    obs, _ = env.reset(seed=4)
    inner_obs, _ = inner.reset(seed=4)
    z = np.array([0.7, -1.5, 0.2], np.float32)
    for _ in range(2):  # a second skill starts from where the first left off
        total = 0.0
        for _ in range(5):
            inner_obs, reward, *_ = inner.step(_feedback(z, inner_obs))
            total += reward
        obs, reward, terminated, truncated, info = env.step(z)
        np.testing.assert_array_equal(obs, inner_obs)
        assert reward == pytest.approx(total) and info["chunk_steps"] == 5
    check_env(make_skills(POINT, _feedback, 4, latent_dim=3, bound=2.0),
              skip_render_check=True)
    with pytest.raises(ValueError, match="a plan of horizon=30 steps is longer than "
                                         "parrot/PickUpCan-v0's 25-step episodes"):
        LatentSkills(gym.make("parrot/PickUpCan-v0"), _feedback, 30, 3, 2.0)
    with pytest.raises(ValueError, match="latent_dim=0, bound=2.0; expected a positive"):
        make_skills(POINT, _feedback, 5, latent_dim=0, bound=2.0)
    source = env_source(POINT, 5, skills=(_feedback, 3, 2.0))
    with EnvPool(source, num_envs=2, num_workers=1) as pool:  # a picklable factory
        assert pool.single_action_space.shape == (3,)
        pool.reset(seed=0)
        *_, infos = pool.step(np.zeros((2, 3), np.float32))
        np.testing.assert_array_equal(infos["chunk_steps"], [5, 5])
