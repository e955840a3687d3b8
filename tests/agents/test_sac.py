"""SAC's pure update: what each loss does, target copies, fusion and device invariance."""

import functools

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parrot_jax import parallel
from parrot_jax.agents import sac
from parrot_jax.agents.networks import Actor, Critic


def _networks(image_obs=False):
    channels, hidden = (4, 4), (32, 32)
    return sac.Networks(Actor(2, hidden, image_obs, channels), Critic(hidden, image_obs, channels))


def _batch(seed=0, size=32, image_obs=False, terminated=False):
    rng = np.random.default_rng(seed)
    shape = (size, 12, 12, 3) if image_obs else (size, 3)
    obs = (rng.integers(0, 255, shape, dtype=np.uint8) if image_obs
           else rng.normal(size=shape).astype(np.float32))
    next_obs = (rng.integers(0, 255, shape, dtype=np.uint8) if image_obs
                else rng.normal(size=shape).astype(np.float32))
    return dict(observations=obs, next_observations=next_obs,
                actions=rng.uniform(-1, 1, (size, 2)).astype(np.float32),
                rewards=rng.normal(size=size).astype(np.float32),
                terminated=np.full(size, terminated))


def _init(networks, hp, batch, seed=0):
    return sac.init_state(networks, hp, jax.random.key(seed), batch["observations"][0])


@functools.lru_cache(maxsize=None)
def _update(networks, hp):
    return jax.jit(functools.partial(sac.update_step, networks=networks, hp=hp))


def test_critic_loss_falls_on_a_fixed_batch():
    # terminated everywhere: the target is the reward, so the critic fits a fixed regression
    networks, hp = _networks(), sac.Hyperparams(critic_lr=1e-3)
    batch = _batch(terminated=True)
    state = _init(networks, hp, batch)
    update = _update(networks, hp)
    losses = []
    for _ in range(200):
        state, metrics = update(state, batch)
        losses.append(float(metrics["critic_loss"]))
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])
    assert int(state.step) == 200


@pytest.mark.parametrize("target_entropy, direction", [(-20.0, -1), (20.0, 1)])
def test_temperature_moves_toward_the_target_entropy(target_entropy, direction):
    networks = _networks()
    hp = sac.Hyperparams(target_entropy=target_entropy, alpha_lr=1e-2)
    batch = _batch()
    state = _init(networks, hp, batch)
    update = _update(networks, hp)
    for _ in range(20):
        state, metrics = update(state, batch)
    # entropy of a 2-D tanh-Gaussian is between the two targets: alpha falls when the
    # policy is more random than the target, and rises when it is less
    assert -20 < float(metrics["entropy"]) < 20
    assert direction * (float(jnp.exp(state.log_alpha)) - 1.0) > 0.1


def test_hard_target_copy_happens_exactly_every_period():
    networks, hp = _networks(), sac.Hyperparams(target_update_period=3)
    batch = _batch()
    state = _init(networks, hp, batch)
    update = _update(networks, hp)
    previous_target = state.target_critic_params
    for step in range(1, 8):
        state, _ = update(state, batch)
        same_as_critic = jax.tree.all(jax.tree.map(np.array_equal, state.target_critic_params,
                                                   state.critic_params))
        unchanged = jax.tree.all(jax.tree.map(np.array_equal, state.target_critic_params,
                                              previous_target))
        if step % 3 == 0:
            assert same_as_critic and not unchanged, step
        else:
            assert unchanged and not same_as_critic, step
        previous_target = state.target_critic_params


def test_polyak_target_update():
    networks, hp = _networks(), sac.Hyperparams(target_update="polyak", tau=0.1)
    batch = _batch()
    state = _init(networks, hp, batch)
    old = state.target_critic_params
    state, _ = _update(networks, hp)(state, batch)
    expected = jax.tree.map(lambda new, o: 0.1 * new + 0.9 * o, state.critic_params, old)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7),
                 state.target_critic_params, expected)


def test_actor_loss_raises_the_q_of_its_actions():
    networks, hp = _networks(), sac.Hyperparams(actor_lr=1e-3, init_alpha=1e-3)
    batch = _batch()
    state = _init(networks, hp, batch)
    update = _update(networks, hp)
    q0 = None
    for i in range(100):
        state, metrics = update(state, batch)
        if i == 0:
            q0 = -float(metrics["actor_loss"])
    # the critic moves too, but the actor's objective (min Q - alpha log pi) must improve
    obs = batch["observations"]
    dist = networks.policy(state.actor_params, state.critic_params, obs)
    actions = dist.sample(seed=jax.random.key(0))
    q = networks.q_values(state.critic_params, obs, actions).min(0).mean()
    random_q = networks.q_values(state.critic_params, obs, batch["actions"]).min(0).mean()
    assert float(q) > float(random_q), (float(q), float(random_q), q0)


def test_fused_updates_match_single_updates():
    networks, hp = _networks(image_obs=True), sac.Hyperparams()
    batches = [_batch(seed, size=8, image_obs=True) for seed in range(3)]
    state = _init(networks, hp, batches[0])
    single = state
    for b in batches:
        single, _ = _update(networks, hp)(single, b)
    stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
    fused, metrics = jax.jit(functools.partial(sac.update_steps, networks=networks, hp=hp))(
        state, stacked)
    assert metrics["critic_loss"].shape == (3,)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5),
                 fused.critic_params, single.critic_params)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5),
                 fused.actor_params, single.actor_params)


@pytest.mark.multi_device
@pytest.mark.parametrize("agent_name", ["sac", "iql", "awac"])  # the same programs
def test_one_device_matches_four(agent_name):
    from parrot_jax.agents.programs import compile_programs
    from parrot_jax.agents.agent import make_agent
    from experiments.configs import rl

    config = rl.get_config("tiny")
    config.agent = agent_name
    agent = make_agent(config, (48, 48, 3), "uint8", (7,))
    rng = np.random.default_rng(0)
    batch = dict(observations=rng.integers(0, 255, (16, 48, 48, 3), dtype=np.uint8),
                 next_observations=rng.integers(0, 255, (16, 48, 48, 3), dtype=np.uint8),
                 actions=rng.uniform(-1, 1, (16, 7)).astype(np.float32),
                 rewards=rng.normal(size=16).astype(np.float32), terminated=np.zeros(16, bool))
    results = []
    for devices in (1, 4):
        programs = compile_programs(agent, parallel.make_mesh(devices), (48, 48, 3), "uint8", 1,
                                    True)
        state = programs.init(jax.random.key(0))
        for _ in range(3):
            state, metrics = programs.update(state, jax.device_put(batch,
                                                                   programs.batch_sharding))
        assert len(state.critic_params["qs"]["head"]["out"]["kernel"].sharding.device_set) == \
            devices
        results.append((jax.tree.map(np.asarray, state.critic_params),
                        jax.tree.map(np.asarray, state.actor_params), float(metrics["critic_loss"])))
    (c1, a1, l1), (c4, a4, l4) = results
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5), c1, c4)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5), a1, a4)
    np.testing.assert_allclose(l1, l4, rtol=1e-4)


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="target_update='soft'"):
        sac.Hyperparams(target_update="soft")
    with pytest.raises(ValueError, match="discount=1.5"):
        sac.Hyperparams(discount=1.5)
    with pytest.raises(ValueError, match="critic_lr=0"):
        sac.Hyperparams(critic_lr=0)
    with pytest.raises(ValueError, match="n_step=0"):
        sac.Hyperparams(n_step=0)


def test_n_step_batches_bootstrap_with_their_own_discounts():
    networks, hp = _networks(), sac.Hyperparams()
    batch = _batch()
    state = _init(networks, hp, batch)
    obs = jnp.asarray(batch["observations"])

    def target(discounts):
        b = batch if discounts is None else dict(batch, discounts=discounts)
        return float(sac.critic_loss(state.critic_params, state, b, obs, obs,
                                     jax.random.key(0), networks, hp)[1]["target_q"])

    np.testing.assert_allclose(target(np.zeros(32, np.float32)), batch["rewards"].mean(),
                               rtol=1e-5)  # gamma^m = 0: the reward sum alone
    np.testing.assert_allclose(target(np.full(32, hp.discount, np.float32)), target(None),
                               rtol=1e-6)  # gamma^1: the one-step target


def test_kl_regularizer_pulls_the_mean_of_z_back_and_entropy_does_not():
    """Against a flat critic the entropy bonus leaves a Gaussian's mean where it is (its
    entropy does not depend on the mean); -KL(pi || N(0, I)) pulls it toward 0."""
    networks = sac.Networks(Actor(2, (16,), False, squash=False), Critic((16,), False))
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    actor_params, critic_params = sac.init_params(networks, jax.random.key(0), obs[0])
    bias = actor_params["head"]["out"]["bias"]
    actor_params["head"]["out"]["bias"] = bias.at[:2].set(1.0)  # mean (1, 1), std 1
    critic_params = jax.tree.map(jnp.zeros_like, critic_params)  # Q == 0 everywhere
    grads = {}
    for regularizer in ("entropy", "kl_standard_normal"):
        hp = sac.Hyperparams(regularizer=regularizer)
        grads[regularizer] = jax.grad(lambda p: sac.actor_loss(
            p, critic_params, jnp.log(0.5), obs, jax.random.key(1), networks, hp)[0])(
            actor_params)["head"]["out"]["bias"]
    np.testing.assert_allclose(grads["entropy"][:2], 0.0, atol=1e-6)
    # d/d mu of alpha * E[log pi - log N(0, I)] = alpha * mu = 0.5 per dimension
    np.testing.assert_allclose(grads["kl_standard_normal"][:2], 0.5, atol=0.05)
    with pytest.raises(ValueError, match="regularizer='kl'"):
        sac.Hyperparams(regularizer="kl")


def test_diagnostics_split_q_by_reward_and_measure_the_policy():
    networks, hp = _networks(), sac.Hyperparams()
    batch = _batch(size=64)
    state = _init(networks, hp, batch)
    obs = jnp.asarray(batch["observations"])
    _, metrics = sac.critic_loss(state.critic_params, state, batch, obs, obs,
                                 jax.random.key(0), networks, hp)
    q = np.asarray(networks.q_values(state.critic_params, obs, batch["actions"]).min(0))
    rewarded = batch["rewards"] > 0
    assert 0 < rewarded.sum() < 64
    np.testing.assert_allclose(metrics["q_rewarded"], q[rewarded].mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["q_unrewarded"], q[~rewarded].mean(), rtol=1e-5)
    target = np.asarray(metrics["target_q"])  # a batch mean; td_error is |q - y| per head
    assert float(metrics["td_error"]) >= abs(float(metrics["q"]) - float(target)) - 1e-6
    unrewarded = dict(batch, rewards=-np.abs(batch["rewards"]))
    _, metrics = sac.critic_loss(state.critic_params, state, unrewarded, obs, obs,
                                 jax.random.key(0), networks, hp)
    assert np.isnan(metrics["q_rewarded"]) and np.isfinite(metrics["q_unrewarded"])

    # the policy's Gaussian: mean (1, -3) and std 1, squashed or not
    for squash in (False, True):
        actor = Actor(2, (16,), False, squash=squash)
        networks = sac.Networks(actor, Critic((16,), False))
        actor_params, critic_params = sac.init_params(networks, jax.random.key(0), obs[0])
        bias = actor_params["head"]["out"]["bias"]
        actor_params["head"]["out"]["bias"] = bias.at[:2].set(jnp.array([1.0, -3.0]))
        _, (_, _, moved) = sac.actor_loss(actor_params, critic_params, jnp.log(0.5), obs,
                                          jax.random.key(1), networks, hp)
        np.testing.assert_allclose(moved["policy_abs_mean"], 2.0, rtol=1e-6)
        np.testing.assert_allclose(moved["policy_std"], 1.0, rtol=1e-6)
        np.testing.assert_allclose(moved["policy_kl"], 0.5 * (1.0 + 9.0), rtol=1e-6)


def test_policy_kl_to_the_base_distribution_is_the_closed_form():
    mean, std = jnp.array([[1.0, 0.0], [0.0, 0.0]]), jnp.array([[2.0, 0.5], [1.0, 1.0]])
    moved = sac.policy_movement(distrax.MultivariateNormalDiag(mean, std))
    by_hand = 0.5 * ((1 + 4 - 1 - 2 * np.log(2)) + (0.25 - 1 - 2 * np.log(0.5)))
    np.testing.assert_allclose(moved["policy_kl"], by_hand / 2, rtol=1e-6)  # batch mean
    expected = distrax.MultivariateNormalDiag(mean, std).kl_divergence(
        distrax.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2))).mean()
    np.testing.assert_allclose(moved["policy_kl"], expected, rtol=1e-6)
    np.testing.assert_allclose(moved["policy_std"], 1.125, rtol=1e-6)


def test_kl_of_the_base_distribution_is_zero():
    z = jax.random.normal(jax.random.key(0), (20000, 7))
    log_prob = distrax.MultivariateNormalDiag(jnp.zeros(7), jnp.ones(7)).log_prob(z)
    hp = sac.Hyperparams(regularizer="kl_standard_normal")
    np.testing.assert_allclose(sac.regularized_log_prob(z, log_prob, hp), 0.0, atol=1e-4)
    np.testing.assert_array_equal(sac.regularized_log_prob(z, log_prob, sac.Hyperparams()),
                                  log_prob)
