"""The prior as a gymnasium wrapper: the env checker, PARROT's actions, bad input."""

import gymnasium as gym
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from experiments.configs import rl
from parrot_jax.agents.agent import make_agent
from parrot_jax.agents.programs import act
from parrot_jax.agents.sac import init_params
from parrot_jax.envs.manipulation import ManipulationEnv
from parrot_jax.flows.action_wrapper import PriorActionWrapper, prior_env
from parrot_jax.flows.prior import BehavioralPrior, load_prior
from tests.flows.prior_workdir import TINY_MODEL, write_prior


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    """A prior whose map depends on the image: the identity init, perturbed."""
    workdir = write_prior(tmp_path_factory.mktemp("prior"))
    loaded = load_prior(workdir)
    leaves, tree = jax.tree.flatten(loaded.params)
    keys = jax.random.split(jax.random.key(3), len(leaves))
    noisy = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    return workdir, BehavioralPrior(loaded.flow, jax.tree.unflatten(tree, noisy),
                                    loaded.image_shape)


def test_the_wrapped_env_passes_gymnasiums_checker(prior):
    env = PriorActionWrapper(ManipulationEnv("parrot/PickUpCan-v0"), prior[1])
    assert env.action_space == gym.spaces.Box(-4.0, 4.0, (7,), np.float32)
    check_env(env, skip_render_check=True)
    env.close()


def test_it_executes_what_the_parrot_agent_executes_for_the_same_z(prior):
    """Our PARROT agent, deterministic: z = its policy's mean, env action = f(z; s). The
    wrapper given that z executes the same action."""
    _, behavioral = prior
    config = rl.get_config("tiny")
    config.agent = "parrot"
    agent = make_agent(config, (48, 48, 3), "uint8", (7,), (-1.0, 1.0), TINY_MODEL, (48, 48, 3))
    actor, critic = init_params(agent.networks, jax.random.key(0),
                                jax.numpy.zeros((48, 48, 3), jax.numpy.uint8))
    actor = jax.tree.map(lambda x: x + 0.2, actor)  # a policy mean away from 0
    params = {"actor": actor, "critic": critic, "prior": behavioral.params}
    env = PriorActionWrapper(ManipulationEnv("parrot/PickUpCan-v0"), behavioral)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        z, executed = act(agent, params, obs[None], jax.random.key(1), deterministic=True)
        z, executed = np.asarray(z)[0], np.asarray(executed)[0]
        assert np.abs(z).max() > 0.05
        obs, _, _, _, info = env.step(z)
        np.testing.assert_allclose(info["prior_action"], executed, rtol=1e-5, atol=1e-6)
    # the map depends on the image: the same z elsewhere gives another action
    other, _ = env.reset(seed=5)
    assert not np.allclose(env.action(z), executed, atol=1e-4)
    env.close()


def test_prior_env_loads_the_prior_and_bad_input_is_named(prior, tmp_path):
    env = prior_env("parrot/PickUpCan-v0", prior[0], z_bound=2.5)
    assert env.action_space.high[0] == np.float32(2.5)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(7, np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"z has shape \(6,\); expected \(7,\)"):
        env.step(np.zeros(6, np.float32))
    env.close()
    with pytest.raises(ValueError, match="z_bound=0"):
        PriorActionWrapper(ManipulationEnv("parrot/PickUpCan-v0"), prior[1], z_bound=0)
    six = load_prior(write_prior(tmp_path / "six", action_dim=6))
    with pytest.raises(ValueError, match="the prior has action_dim 6 but parrot/PickUpCan-v0"):
        PriorActionWrapper(gym.make("parrot/PickUpCan-v0"), six)
