"""IQL and AWAC: the losses' math, the weights, what updates do on fixed batches."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parrot_jax.agents import awac, awr, iql, sac
from parrot_jax.agents.networks import Actor, Critic, Value


def _networks(value=True, shared=False, image_obs=False):
    channels, hidden = (4, 4), (32, 32)
    return sac.Networks(
        Actor(1, hidden, image_obs, channels, own_trunk=not shared),
        Critic(hidden, image_obs, channels, shared_trunk=shared),
        Value(hidden, image_obs, channels, own_trunk=not shared) if value else None)


def _two_action_batch(size=64, seed=0, rewards=(1.0, 0.0)):
    """One-step episodes (terminated) from random states, each state twice: once with
    a = +0.5 (reward rewards[0]), once with a = -0.5 (reward rewards[1]); the data's
    behaviour is 50/50 in every state."""
    rng = np.random.default_rng(seed)
    good = np.arange(size) % 2 == 0
    states = rng.normal(size=(size // 2, 3)).astype(np.float32)
    return dict(observations=np.repeat(states, 2, axis=0),
                next_observations=rng.normal(size=(size, 3)).astype(np.float32),
                actions=np.where(good, 0.5, -0.5)[:, None].astype(np.float32),
                rewards=np.where(good, *rewards).astype(np.float32),
                terminated=np.ones(size, bool))


@functools.lru_cache(maxsize=None)
def _update(module, networks, hp):
    return jax.jit(functools.partial(module.update_step, networks=networks, hp=hp))


def _train(module, hp, batch, steps, value=True, seed=0):
    networks = _networks(value)
    state = module.init_state(networks, hp, jax.random.key(seed), batch["observations"][0])
    update = _update(module, networks, hp)
    history = []
    for _ in range(steps):
        state, metrics = update(state, batch)
        history.append(jax.tree.map(float, metrics))
    return networks, state, history


def _policy_mean(networks, state, obs):
    dist = networks.policy(state.actor_params, state.critic_params, obs)
    return np.asarray(jnp.tanh(dist.distribution.mean()))


def test_an_unsquashed_policy_weighs_the_batch_actions_unclipped():
    # PARROT's policy over z (no tanh): z = 2.5 is scored where it is, not at 0.999
    networks = sac.Networks(Actor(1, (8,), False, (), squash=False, mean_bound=3.0),
                            Critic((8,), False, ()))
    obs = np.zeros((2, 3), np.float32)
    actor, critic = sac.init_params(networks, jax.random.key(0), obs[0])
    actions = np.array([[2.5], [-0.3]], np.float32)
    loss, aux = awr.weighted_log_likelihood_loss(actor, critic, obs, actions,
                                                 jnp.array([1.0, 3.0]), networks)
    log_n01 = -0.5 * (actions[:, 0] ** 2 + np.log(2 * np.pi))  # pi = N(0, 1) at init
    assert float(loss) == pytest.approx(-np.mean([1.0, 3.0] * log_n01), rel=1e-5)
    assert float(aux["log_prob"]) == pytest.approx(log_n01.mean(), rel=1e-5)


@pytest.mark.parametrize("tau", [0.1, 0.5, 0.7, 0.9])
def test_the_expectile_loss_is_minimised_by_the_expectile(tau):
    q = jnp.asarray([0.0, 1.0, 2.0, 10.0])
    # closed form: v solves tau sum_{q > v} (q - v) = (1 - tau) sum_{q < v} (v - q); for v in
    # [2, 10] that is tau (10 - v) = (1 - tau)(3 v - 3), v = (10 tau + 3 - 3 tau) / (3 - 2 tau)
    expected = (10 * tau + 3 * (1 - tau)) / (3 * (1 - tau) + tau)
    if not 2.0 <= expected <= 10.0:  # small tau: the root lies in [1, 2]
        expected = (12 * tau + 1 - tau) / (2 * (1 - tau) + 2 * tau)
    # the loss is convex in v: bisect on the sign of its derivative
    slope = jax.jit(jax.grad(lambda v: iql.expectile_loss(q - v, tau)))
    low, high = 0.0, 10.0
    for _ in range(40):
        low, high = ((low + high) / 2, high) if slope((low + high) / 2) < 0 else \
            (low, (low + high) / 2)
    assert low == pytest.approx(expected, abs=1e-4)
    if tau == 0.5:  # the mean
        assert expected == pytest.approx(float(q.mean()))


def test_iql_weights_are_clipped_exponentiated_advantages():
    hp = iql.Hyperparams(inverse_temperature=3.0, max_weight=100.0)
    weights = iql.advantage_weights(jnp.asarray([-1.0, 0.0, 1.0, 10.0]), hp)
    np.testing.assert_allclose(weights, [np.exp(-3.0), 1.0, np.exp(3.0), 100.0], rtol=1e-6)


def test_awac_weights_are_a_batch_softmax_that_sums_to_the_batch_size():
    advantages = jnp.asarray([0.0, 1.0, 2.0, -1.0])
    weights = awac.advantage_weights(advantages, awac.Hyperparams(temperature=0.5))
    expected = 4 * np.exp(np.asarray(advantages) / 0.5) / np.exp(np.asarray(advantages) / 0.5).sum()
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert float(weights.sum()) == pytest.approx(4.0)
    flat = awac.advantage_weights(advantages, awac.Hyperparams(temperature=1e6))
    np.testing.assert_allclose(flat, 1.0, atol=1e-5)  # lambda -> inf: behaviour cloning


def test_awac_clips_advantages_before_the_softmax():
    hp = awac.Hyperparams(temperature=0.5, max_advantage=0.5)
    weights = np.asarray(awac.advantage_weights(jnp.asarray([0.0, 1.0, 2.0, -1.0]), hp))
    clipped = np.exp(np.asarray([0.0, 0.5, 0.5, -1.0]) / 0.5)
    np.testing.assert_allclose(weights, 4 * clipped / clipped.sum(), rtol=1e-6)
    assert weights[1] == pytest.approx(weights[2])  # both above A_max: equal weight
    assert weights.max() / weights[0] == pytest.approx(np.exp(0.5 / 0.5), rel=1e-6)


def test_awac_q_max_bounds_the_bootstrapped_values():
    # rewards 1 and no termination: the unbounded fixed point is 1 / (1 - 0.99) = 100;
    # with q_max = 2 it is 1 + 0.99 * 2 = 2.98, and no target ever exceeds it
    batch = dict(_two_action_batch(rewards=(1.0, 1.0)), terminated=np.zeros(64, bool))
    base = dict(augment_pad=0, tau=0.1, target_update="polyak")
    _, _, bounded = _train(awac, awac.Hyperparams(**base, q_max=2.0), batch, 300, value=False)
    _, _, free = _train(awac, awac.Hyperparams(**base), batch, 300, value=False)
    assert max(m["target_q"] for m in bounded) <= 1.0 + 0.99 * 2.0 + 1e-4
    assert bounded[-1]["q"] == pytest.approx(2.98, abs=0.2)
    assert free[-1]["q"] > 5.0  # the bound binds: without it Q is still climbing to 100


# Faster targets (tau 0.1) than the default 0.005 so a few hundred updates converge; a
# sharp AWAC temperature (advantages are +-0.5 here: weights e^{+-1.7}).
@pytest.mark.parametrize("module, hp", [(iql, iql.Hyperparams(augment_pad=0, tau=0.1)),
                                        (awac, awac.Hyperparams(augment_pad=0, tau=0.1,
                                                                temperature=0.3))])
def test_offline_updates_fit_the_critic_and_prefer_the_rewarded_action(module, hp):
    batch = _two_action_batch()
    networks, state, history = _train(module, hp, batch, 300, value=module is iql)
    assert history[-1]["critic_loss"] < 0.1 * history[0]["critic_loss"]
    q = networks.q_values(state.critic_params, batch["observations"], batch["actions"]).min(0)
    good = batch["rewards"] > 0
    assert float(q[good].mean()) == pytest.approx(1.0, abs=0.15)
    assert float(q[~good].mean()) == pytest.approx(0.0, abs=0.15)
    # the diagnostics split Q by reward, as SAC's do
    assert history[-1]["q_rewarded"] == pytest.approx(1.0, abs=0.15)
    assert history[-1]["q_unrewarded"] == pytest.approx(0.0, abs=0.15)
    # the data is 50/50; the weighted likelihood moves the policy toward a = +0.5
    assert _policy_mean(networks, state, batch["observations"]).mean() > 0.25
    assert int(state.step) == 300


def test_iql_value_is_the_expectile_of_the_data_q():
    hp = iql.Hyperparams(augment_pad=0, expectile=0.9, value_lr=1e-3, tau=0.1)
    batch = _two_action_batch()
    networks, state, history = _train(iql, hp, batch, 400)
    v = networks.values(state.value_params, state.critic_params, batch["observations"])
    # Q is about 1 for half the data's actions and 0 for the other half: the 0.9-expectile
    # of {0, 1} with equal mass is 0.9 (0.9 (1 - v) = 0.1 v)
    assert float(v.mean()) == pytest.approx(0.9, abs=0.1)
    # and the loss sits at its minimum there: 0.5 (0.9 * 0.1^2) + 0.5 (0.1 * 0.9^2) = 0.045
    assert history[-1]["value_loss"] == pytest.approx(0.045, abs=0.01)


@pytest.mark.parametrize("module, hp", [(iql, iql.Hyperparams(augment_pad=0)),
                                        (awac, awac.Hyperparams(augment_pad=0))])
def test_with_zero_rewards_the_actor_update_is_behaviour_cloning(module, hp):
    batch = _two_action_batch(rewards=(0.0, 0.0))
    networks, state, history = _train(module, hp, batch, 200, value=module is iql)
    # Q and V stay near 0, so every weight is near 1 and the policy fits the data's 50/50
    # mixture: its mean stays near 0 and the likelihood of the data rises
    assert abs(history[-1]["q"]) < 0.05 and abs(history[-1]["advantage"]) < 0.05
    assert history[-1]["weight_max"] < 2.0  # against e^{+-1.5} and more with rewards
    assert abs(_policy_mean(networks, state, batch["observations"]).mean()) < 0.1
    assert history[-1]["log_prob"] > history[0]["log_prob"]


def test_fused_iql_updates_match_single_updates():
    hp = iql.Hyperparams(augment_pad=0)
    networks = _networks()
    batches = [_two_action_batch(seed=s) for s in range(3)]
    state = iql.init_state(networks, hp, jax.random.key(0), batches[0]["observations"][0])
    single = state
    for b in batches:
        single, _ = _update(iql, networks, hp)(single, b)
    stacked = jax.tree.map(lambda *x: np.stack(x), *batches)
    fused, metrics = jax.jit(functools.partial(iql.update_steps, networks=networks, hp=hp))(
        state, stacked)
    assert metrics["critic_loss"].shape == (3,)
    fused, single = (s.replace(rng=jax.random.key_data(s.rng)) for s in (fused, single))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 fused, single)


def test_image_observations_with_a_shared_trunk():
    networks = _networks(shared=True, image_obs=True)
    rng = np.random.default_rng(0)
    batch = dict(observations=rng.integers(0, 255, (8, 12, 12, 3), dtype=np.uint8),
                 next_observations=rng.integers(0, 255, (8, 12, 12, 3), dtype=np.uint8),
                 actions=rng.uniform(-1, 1, (8, 1)).astype(np.float32),
                 rewards=rng.normal(size=8).astype(np.float32), terminated=np.zeros(8, bool))
    for module, hp in ((iql, iql.Hyperparams(augment_pad=2)), (awac, awac.Hyperparams())):
        state = module.init_state(networks, hp, jax.random.key(0), batch["observations"][0])
        # the trunk lives in the critic only; the value network reads its features
        assert "trunk" in state.critic_params and "trunk" not in state.actor_params
        if module is iql:
            assert "trunk" not in state.value_params
        state, metrics = _update(module, networks, hp)(state, batch)
        assert np.isfinite(metrics["critic_loss"]) and int(state.step) == 1


@pytest.mark.parametrize("make, message", [
    (lambda: iql.Hyperparams(expectile=1.0), "expectile=1.0; expected a number in \\(0, 1\\)"),
    (lambda: iql.Hyperparams(max_weight=0.0), "max_weight=0.0; expected a positive"),
    (lambda: iql.Hyperparams(inverse_temperature=-1.0), "inverse_temperature=-1.0"),
    (lambda: awac.Hyperparams(temperature=0.0), "temperature=0.0; expected a positive"),
    (lambda: awac.Hyperparams(tau=2.0), "tau=2.0; expected a number in \\(0, 1\\]"),
    (lambda: awac.Hyperparams(q_max=float("inf")), "q_max=inf; expected a finite number or"),
    (lambda: awac.Hyperparams(max_advantage=float("nan")), "max_advantage=nan; expected a"),
    (lambda: iql.init_state(_networks(value=False), iql.Hyperparams(), jax.random.key(0),
                            np.zeros(3, np.float32)), "IQL needs networks with a value"),
])
def test_bad_hyperparameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_hyperparameters_from_the_run_config_sections():
    from experiments.configs import rl

    config = rl.get_config("cpu")
    hp = iql.Hyperparams.from_config(config.sac, config.iql)
    assert (hp.discount, hp.n_step, hp.target_update_period) == (0.99, 5, 250)
    assert (hp.expectile, hp.inverse_temperature) == (0.7, 3.0)
    hp_awac = awac.Hyperparams.from_config(config.sac, config.awac)
    assert (hp_awac.temperature, hp_awac.max_advantage, hp_awac.q_max) == (2.0, None, None)
    config.awac.max_advantage, config.awac.q_max = 0.5, 0.0  # as --config.awac.q_max=0 sets
    hp_awac = awac.Hyperparams.from_config(config.sac, config.awac)
    assert (hp_awac.max_advantage, hp_awac.q_max) == (0.5, 0.0)
    assert isinstance(hp, awr.Hyperparams)
