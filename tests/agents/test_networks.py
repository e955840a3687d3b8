"""Actor and critic shapes, and the actor at init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parrot_jax.agents import sac
from parrot_jax.agents.networks import Actor, Critic, mode

IMAGES = (48, 48, 3)


def _networks(image_obs=True, shared=False, squash=True, action_dim=7):
    channels, hidden = (4, 4), (16, 16)
    return sac.Networks(Actor(action_dim, hidden, image_obs, channels, own_trunk=not shared,
                              squash=squash),
                        Critic(hidden, image_obs, channels, 2, shared))


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("image_obs", [True, False])
def test_shapes_and_dtypes(image_obs, shared):
    networks = _networks(image_obs, shared)
    obs = (jnp.zeros((5,) + IMAGES, jnp.uint8) if image_obs else jnp.zeros((5, 3), jnp.float32))
    actor_params, critic_params = sac.init_params(networks, jax.random.key(0), obs[0])
    q = networks.q_values(critic_params, obs, jnp.zeros((5, 7)))
    assert q.shape == (2, 5) and q.dtype == jnp.float32
    dist = networks.policy(actor_params, critic_params, obs)
    actions, log_prob = dist.sample_and_log_prob(seed=jax.random.key(1))
    assert actions.shape == (5, 7) and log_prob.shape == (5,)
    assert np.all(np.abs(np.asarray(actions)) < 1)
    if image_obs and shared:  # one trunk, in the critic, read by the actor
        assert "trunk" in critic_params and "trunk" not in critic_params["qs"]
        assert set(actor_params) == {"head"}
    elif image_obs:  # the actor's and each Q's own
        assert "trunk" in actor_params and "trunk" not in critic_params["qs"]
        assert sorted(k for k in critic_params if k.startswith("trunk")) == ["trunk_0", "trunk_1"]
        assert critic_params["qs"]["head"]["out"]["kernel"].shape[0] == 2


def test_the_two_q_networks_differ_at_init():
    networks = _networks()
    obs = jax.random.randint(jax.random.key(0), (4,) + IMAGES, 0, 255).astype(jnp.uint8)
    _, critic_params = sac.init_params(networks, jax.random.key(0), obs[0])
    q = networks.q_values(critic_params, obs, jnp.ones((4, 7)))
    assert not np.allclose(q[0], q[1])


def test_unsquashed_actor_is_a_standard_normal_at_init():
    networks = _networks(squash=False)
    obs = jax.random.randint(jax.random.key(0), (3,) + IMAGES, 0, 255).astype(jnp.uint8)
    actor_params, critic_params = sac.init_params(networks, jax.random.key(1), obs[0])
    dist = networks.policy(actor_params, critic_params, obs)
    np.testing.assert_array_equal(dist.mean(), np.zeros((3, 7)))
    np.testing.assert_array_equal(dist.stddev(), np.ones((3, 7)))
    np.testing.assert_array_equal(mode(dist), np.zeros((3, 7)))


def test_squashed_mode_is_tanh_of_the_mean():
    networks = _networks(squash=True)
    obs = jnp.zeros((2,) + IMAGES, jnp.uint8)
    actor_params, critic_params = sac.init_params(networks, jax.random.key(1), obs[0])
    actor_params = jax.tree.map(lambda x: x + 0.1, actor_params)  # a non-zero mean
    dist = networks.policy(actor_params, critic_params, obs)
    np.testing.assert_allclose(mode(dist), np.tanh(dist.distribution.mean()), rtol=1e-6)


def test_bfloat16_trunks_compute_in_bf16_and_keep_float32_parameters():
    hidden, channels = (16, 16), (4, 4)
    obs = jax.random.randint(jax.random.key(0), (4,) + IMAGES, 0, 255).astype(jnp.uint8)
    plain = sac.Networks(Actor(7, hidden, True, channels), Critic(hidden, True, channels))
    bf16 = sac.Networks(Actor(7, hidden, True, channels, trunk_dtype="bfloat16"),
                        Critic(hidden, True, channels, trunk_dtype="bfloat16"))
    actor_params, critic_params = sac.init_params(plain, jax.random.key(1), obs[0])
    # the same parameters (float32, same tree) serve both
    bf16_params = sac.init_params(bf16, jax.random.key(1), obs[0])
    assert jax.tree.map(lambda a: (a.shape, a.dtype), bf16_params) == \
        jax.tree.map(lambda a: (a.shape, a.dtype), (actor_params, critic_params))
    q, q16 = (n.q_values(critic_params, obs, jnp.ones((4, 7))) for n in (plain, bf16))
    assert q16.dtype == jnp.float32
    # bf16 keeps 8 bits of mantissa: the Q values agree to about 1%, not bit for bit
    np.testing.assert_allclose(q16, q, rtol=0.05, atol=0.05 * float(jnp.abs(q).max()))
    assert not np.array_equal(np.asarray(q16), np.asarray(q))
    grads = jax.grad(lambda p: bf16.q_values(p, obs, jnp.ones((4, 7))).sum())(critic_params)
    assert all(g.dtype == jnp.float32 and np.isfinite(np.asarray(g)).all()
               for g in jax.tree.leaves(grads))


def test_an_unknown_trunk_dtype_is_refused():
    networks = sac.Networks(Actor(7, (8,), True, (4,)), Critic((8,), True, (4,),
                                                               trunk_dtype="float16"))
    obs = jnp.zeros(IMAGES, jnp.uint8)
    with pytest.raises(ValueError, match="trunk dtype 'float16'; expected one of"):
        sac.init_params(networks, jax.random.key(0), obs)


def test_vmapped_trunks_compute_what_the_sequential_ones_do():
    obs = jax.random.randint(jax.random.key(0), (3,) + IMAGES, 0, 255).astype(jnp.uint8)
    actions = jax.random.normal(jax.random.key(1), (3, 7))
    sequential = Critic((16,), True, (4, 4))
    vmapped = Critic((16,), True, (4, 4), vmap_trunks=True)
    params = sequential.init(jax.random.key(2), obs, actions)["params"]
    stacked = vmapped.init(jax.random.key(2), obs, actions)["params"]
    assert set(stacked) == {"qs", "trunks"}
    assert stacked["trunks"]["conv0"]["kernel"].shape == (2, 3, 3, 3, 4)
    # the sequential critic's trunk_0 and trunk_1, stacked: the same Q values
    restacked = {"qs": params["qs"], "trunks": jax.tree.map(
        lambda *p: jnp.stack(p), params["trunk_0"], params["trunk_1"])}
    np.testing.assert_allclose(vmapped.apply({"params": restacked}, obs, actions),
                               sequential.apply({"params": params}, obs, actions),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="vmap_trunks stacks each head's own trunk: it needs "
                                         "shared_trunk=False"):
        Critic((16,), True, (4,), shared_trunk=True, vmap_trunks=True).init(
            jax.random.key(0), obs, actions)
