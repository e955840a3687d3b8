"""The PyTorch references compute what our JAX code computes, given the same parameters.

Every parameter is random (the zero-initialised last layers included, else half of each
network would be invisible to the comparison) and loaded into the torch modules, and the
two frameworks are fed the same images, actions and random draws: log-densities, samples,
losses and one optimizer step must agree to float32 rounding. Skipped without torch.
"""

import functools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks.torch_ref import flow as tflow  # noqa: E402
from benchmarks.torch_ref import sac as tsac  # noqa: E402
from parrot_jax.agents import sac  # noqa: E402
from parrot_jax.networks import augment  # noqa: E402
from parrot_jax.agents.networks import Actor, Critic  # noqa: E402
from parrot_jax.flows import train_state  # noqa: E402
from parrot_jax.flows.prior import init_params, make_flow  # noqa: E402
from parrot_jax.flows.realnvp import ConditionalRealNVP  # noqa: E402

SMALL_FLOW = dict(hidden=(32, 32), encoder_channels=(4, 4), encoder_hidden=(32,), embedding=16)
CHANNELS, HIDDEN, A = (4, 4), (32, 32), 7
# Adam's first step moves every parameter by about lr * sign(grad): the parameters after it
# agree to far less than lr when both frameworks computed the same gradients.
PARAM_ATOL = 1e-5


# ---- helpers ---------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These networks are tiny; with 2 OpenMP threads on a busy 2-core machine every
    parallel region waits for a descheduled thread, and an update that takes 20 ms can take
    over a second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_params(abstract, seed, scale=0.5):
    """Random values for a params pytree shaped like ``abstract`` (from ``jax.eval_shape``
    of our init): each kernel N(0, scale^2 / fan_in), each bias N(0, 0.01). Every parameter
    is non-zero (the zero-initialised last layers too, else half of each network would be
    invisible to the comparison) and activations stay O(1) at any width. Stacked ensemble
    params (under ``qs``) take the fan-in of one member. numpy draws them: JAX's eager
    init and RNG would compile a kernel per shape, seconds per network."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        names = [getattr(p, "key", None) for p in path]
        shape = leaf.shape[1:] if "qs" in names else leaf.shape
        std = scale / math.sqrt(math.prod(shape[:-1])) if names[-1] == "kernel" else 0.1
        return jnp.asarray(std * rng.normal(size=leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def t(x):
    return torch.from_numpy(np.array(x))


def images(rng, size, shape=(48, 48, 3)):
    return rng.integers(0, 256, (size,) + shape, dtype=np.uint8)


def assert_state_close(torch_module, expected: dict, atol=PARAM_ATOL):
    got = dict(torch_module.named_parameters())
    assert set(got) == set(expected)
    worst = max((got[k].detach() - expected[k]).abs().max().item() for k in expected)
    assert worst < atol, worst


def assert_close(got, want, rtol=1e-4, atol=1e-4):
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    np.testing.assert_allclose(got, np.asarray(want), rtol=rtol, atol=atol)


# ---- the flow --------------------------------------------------------------------------

def _flow_pair(config, seed=0):
    flow = make_flow(config)
    params = random_params(jax.eval_shape(lambda: init_params(flow, jax.random.key(0))), seed)
    torch_flow = tflow.Flow.from_module(flow)
    tflow.load_jax_params(torch_flow, params)
    return flow, params, torch_flow


def _flow_batch(rng, size, boundary=False):
    actions = rng.uniform(-0.99, 0.99, (size, A)).astype(np.float32)
    if boundary:  # data may touch +-1: the loss clips it to +-max_abs_action
        actions[0, :3] = [1.0, -1.0, 1.0]
    return {"observations": images(rng, size), "actions": actions}


def test_flow_log_prob_sample_inverse_and_loss_match_jax():
    flow, params, torch_flow = _flow_pair(SMALL_FLOW)
    rng = np.random.default_rng(0)
    batch = _flow_batch(rng, 12)
    obs, actions = batch["observations"], batch["actions"]
    z = rng.normal(size=(12, A)).astype(np.float32)
    with torch.no_grad():
        log_prob = flow.apply({"params": params}, actions, obs, method="log_prob")
        assert float(jnp.std(log_prob)) > 0.5  # the flow is far from the identity
        assert_close(torch_flow.log_prob(t(actions), t(obs)), log_prob,
                     atol=1e-4 * max(1.0, float(jnp.abs(log_prob).max())))
        assert_close(torch_flow.sample(t(z), t(obs)),
                     flow.apply({"params": params}, z, obs, method="sample"), atol=1e-5)
        assert_close(torch_flow.inverse(t(actions), t(obs)),
                     flow.apply({"params": params}, actions, obs, method="inverse"), atol=1e-4)
        got_actions, got_log_det = torch_flow.forward_and_log_det(t(z), t(obs))
        want_actions, want_log_det = flow.apply({"params": params}, z, obs,
                                                method="forward_and_log_det")
        assert_close(got_actions, want_actions, atol=1e-5)
        assert_close(got_log_det, want_log_det)
        for boundary in (False, True):
            batch = _flow_batch(rng, 12, boundary)
            loss, _ = train_state.loss_fn(params, flow, batch, 0.999999)
            got = tflow.nll_loss(torch_flow, t(batch["observations"]), t(batch["actions"]))
            assert np.isfinite(float(loss))
            assert_close(got, loss, rtol=1e-5, atol=1e-4)


def test_flow_loss_matches_jax_at_the_paper_architecture():
    flow, params, torch_flow = _flow_pair({})  # ConditionalRealNVP's defaults: the paper's
    assert isinstance(flow, ConditionalRealNVP) and flow.encoder_hidden == (1024, 512)
    batch = _flow_batch(np.random.default_rng(1), 4, boundary=True)
    loss, _ = train_state.loss_fn(params, flow, batch, 0.999999)
    with torch.no_grad():
        got = tflow.nll_loss(torch_flow, t(batch["observations"]), t(batch["actions"]))
    assert_close(got, loss, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("grad_clip_norm", [None, 0.5])
def test_trainer_step_matches_jax_train_step(grad_clip_norm):
    flow, params, torch_flow = _flow_pair(SMALL_FLOW, seed=2)
    batch = _flow_batch(np.random.default_rng(2), 8, boundary=True)
    optimizer = train_state.make_optimizer(1e-4, grad_clip_norm)
    state = train_state.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                   opt_state=optimizer.init(params), rng=jax.random.key(0))
    step = jax.jit(functools.partial(train_state.train_step, flow=flow, optimizer=optimizer,
                                     max_abs_action=0.999999))
    new_state, metrics = step(state, batch)
    if grad_clip_norm is not None:  # the clipping is exercised
        assert float(metrics["grad_norm"]) > 2 * grad_clip_norm

    trainer = tflow.Trainer(torch_flow, 1e-4, grad_clip_norm)
    loss = trainer.step(t(batch["observations"]), t(batch["actions"]))
    assert not loss.requires_grad
    assert_close(loss, metrics["loss"], rtol=1e-5, atol=1e-4)
    moved = max((torch_flow.state_dict()[k] - v).abs().max().item()
                for k, v in tflow.jax_flow_state(torch_flow, params).items())
    assert moved > 5e-5  # the step did something measurable against the tolerance
    assert_state_close(torch_flow, tflow.jax_flow_state(torch_flow, new_state.params))


def test_flow_rejects_mismatched_params():
    params = _flow_pair(SMALL_FLOW)[1]
    other = tflow.Flow.from_module(make_flow(dict(SMALL_FLOW, embedding=8)))
    with pytest.raises(ValueError, match="shape"):
        tflow.load_jax_params(other, params)
    with pytest.raises(ValueError, match="learning_rate"):
        tflow.Trainer(other, learning_rate=0.0)


# ---- SAC -------------------------------------------------------------------------------

def _networks(shared=False, squash=True, mean_bound=None, image_obs=True):
    critic = Critic(HIDDEN, image_obs, CHANNELS, 2, shared)
    actor = Actor(A, HIDDEN, image_obs, CHANNELS, own_trunk=not shared, squash=squash,
                  mean_bound=mean_bound, log_std_max=1.0)
    return sac.Networks(actor, critic)


def _sac_batch(rng, size, obs_shape=(48, 48, 3)):
    if len(obs_shape) == 3:
        obs, next_obs = images(rng, size, obs_shape), images(rng, size, obs_shape)
    else:
        obs, next_obs = (rng.normal(size=(size,) + obs_shape).astype(np.float32)
                         for _ in range(2))
    terminated = np.zeros(size, bool)
    terminated[::3] = True
    return dict(observations=obs, next_observations=next_obs,
                actions=rng.uniform(-1, 1, (size, A)).astype(np.float32),
                rewards=rng.normal(size=size).astype(np.float32), terminated=terminated)


def _sac_pair(networks, hp, obs_shape=(48, 48, 3), seed=0):
    """A ``SACState`` shaped as ``sac.init_state`` makes it, with random parameters (the
    target critic different from the critic) and fresh optimizer states, and the torch
    agent holding the same parameters."""
    obs = jnp.zeros(obs_shape, jnp.uint8 if len(obs_shape) == 3 else jnp.float32)
    abstract = jax.eval_shape(lambda: sac.init_state(networks, hp, jax.random.key(0), obs))
    actor, critic, target = (random_params(p, seed + i) for i, p in enumerate(
        [abstract.actor_params, abstract.critic_params, abstract.critic_params]))
    actor_opt, critic_opt, alpha_opt = sac.optimizers(hp)
    log_alpha = jnp.log(jnp.float32(0.3))
    state = sac.SACState(step=jnp.zeros((), jnp.int32), actor_params=actor,
                         critic_params=critic, target_critic_params=target,
                         log_alpha=log_alpha, actor_opt_state=actor_opt.init(actor),
                         critic_opt_state=critic_opt.init(critic),
                         alpha_opt_state=alpha_opt.init(log_alpha),
                         rng=jax.random.key(seed))
    agent = tsac.SAC.from_networks(networks, hp, None if len(obs_shape) == 3 else obs_shape)
    tsac.load_jax_state(agent, state)
    return state, agent


def _distrax_noise(key, size):
    """The standard normal draws behind distrax's ``sample_and_log_prob(seed=key)`` of a
    (size, A) Gaussian: ``Normal`` draws ``jax.random.normal(key, (1,) + batch_shape)``
    (checked against distrax in ``test_distrax_noise_reproduces_the_policy_samples``)."""
    return jax.random.normal(key, (1, size, A))[0]


SAC_CASES = [
    # (shared trunk, regularizer, squash, mean_bound, observation shape)
    (False, "entropy", True, None, (48, 48, 3)),
    (True, "entropy", True, None, (48, 48, 3)),
    (False, "kl_standard_normal", True, None, (48, 48, 3)),
    (True, "kl_standard_normal", False, 3.0, (48, 48, 3)),
    (False, "entropy", True, None, (9,)),  # vector observations
]


@pytest.mark.parametrize("shared, squash, mean_bound", [(False, True, None), (True, False, 3.0)])
def test_distrax_noise_reproduces_the_policy_samples(shared, squash, mean_bound):
    networks = _networks(shared, squash, mean_bound)
    hp = sac.Hyperparams(augment_pad=0)
    state, _ = _sac_pair(networks, hp)
    obs = _sac_batch(np.random.default_rng(0), 8)["observations"]
    key = jax.random.key(7)
    dist = networks.policy(state.actor_params, state.critic_params, obs)
    actions, _ = dist.sample_and_log_prob(seed=key)
    gaussian = dist.distribution if squash else dist
    u = gaussian.loc + gaussian.scale_diag * _distrax_noise(key, 8)
    np.testing.assert_allclose(actions, jnp.tanh(u) if squash else u, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shared, regularizer, squash, mean_bound, obs_shape", SAC_CASES)
def test_sac_losses_match_jax(shared, regularizer, squash, mean_bound, obs_shape):
    networks = _networks(shared, squash, mean_bound, image_obs=len(obs_shape) == 3)
    hp = sac.Hyperparams(augment_pad=0, regularizer=regularizer, reward_scale=2.0)
    state, agent = _sac_pair(networks, hp, obs_shape)
    batch = _sac_batch(np.random.default_rng(3), 10, obs_shape)
    tbatch = {k: t(v) for k, v in batch.items()}
    key = jax.random.key(11)
    noise = t(_distrax_noise(key, 10))

    loss, metrics = sac.critic_loss(state.critic_params, state, batch, batch["observations"],
                                    batch["next_observations"], key, networks, hp)
    got, got_metrics = agent.critic_loss(tbatch, tbatch["observations"],
                                         tbatch["next_observations"], noise)
    assert float(loss) > 0.1
    assert_close(got, loss, rtol=1e-5)
    for name in ("q", "target_q"):
        assert_close(got_metrics[name], metrics[name])

    loss, (regularized, log_prob, _) = sac.actor_loss(
        state.actor_params, state.critic_params, state.log_alpha, batch["observations"], key,
        networks, hp)
    got, (got_regularized, got_log_prob) = agent.actor_loss(tbatch["observations"], noise)
    assert_close(got, loss, rtol=1e-5)
    assert_close(got_log_prob, log_prob)
    assert_close(got_regularized, regularized)


def _update_noise(state, batch, hp):
    """The randomness ``sac.update_step`` draws from ``state.rng``, for ``SAC.update``."""
    _, obs_key, next_key, critic_key, actor_key = jax.random.split(state.rng, 5)
    size = batch["actions"].shape[0]
    offsets = [t(jax.random.randint(k, (size, 2), 0, 2 * hp.augment_pad + 1))
               for k in (obs_key, next_key)]
    return tsac.UpdateNoise(offsets[0], offsets[1], t(_distrax_noise(critic_key, size)),
                            t(_distrax_noise(actor_key, size)))


@pytest.mark.parametrize("shared, regularizer, target_update", [
    (False, "entropy", "hard"), (True, "kl_standard_normal", "polyak")])
def test_sac_update_matches_jax_update_step(shared, regularizer, target_update):
    networks = _networks(shared)
    hp = sac.Hyperparams(augment_pad=2, regularizer=regularizer, target_update=target_update,
                         target_update_period=1, tau=0.3)
    state, agent = _sac_pair(networks, hp, seed=4)
    batch = _sac_batch(np.random.default_rng(4), 8)
    update = jax.jit(functools.partial(sac.update_step, networks=networks, hp=hp))
    new_state, metrics = update(state, batch)
    got = agent.update({k: t(v) for k, v in batch.items()}, _update_noise(state, batch, hp))

    for name in ("critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy",
                 "critic_grad_norm", "q", "target_q"):
        assert_close(got[name], metrics[name], rtol=1e-5), name
    assert ("kl" in got) == ("kl" in metrics)
    assert_state_close(agent.actor, tsac.jax_actor_state(agent.actor, new_state.actor_params,
                                                         agent.critic))
    assert_state_close(agent.critic, tsac.jax_critic_state(agent.critic,
                                                           new_state.critic_params))
    assert_state_close(agent.target_critic, tsac.jax_critic_state(
        agent.target_critic, new_state.target_critic_params))
    assert_close(agent.log_alpha, new_state.log_alpha, rtol=0, atol=1e-6)
    assert abs(float(new_state.log_alpha - state.log_alpha)) > 1e-4  # alpha did move


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_sac_update_trains_and_copies_the_target_every_period():
    networks = _networks()
    hp = sac.Hyperparams(augment_pad=4, target_update_period=3, critic_lr=3e-3)
    agent = tsac.SAC.from_networks(networks, hp, seed=0)  # init and noise: deterministic
    batch = {k: t(v) for k, v in _sac_batch(np.random.default_rng(5), 16).items()}
    batch["terminated"][:] = True  # the target is the reward: a fixed regression
    fixed = agent.draw_noise(batch)

    def critic_loss():
        with torch.no_grad():
            return agent.critic_loss(batch, batch["observations"], batch["next_observations"],
                                     fixed.next_noise)[0].item()

    first, actor0, target0 = critic_loss(), _params(agent.actor), _params(agent.target_critic)
    for step in range(1, 61):
        before = _params(agent.target_critic)
        metrics = agent.update(batch)
        after, critic = _params(agent.target_critic), _params(agent.critic)
        copied = all(torch.equal(a, c) for a, c in zip(after, critic))
        unchanged = all(torch.equal(a, b) for a, b in zip(after, before))
        assert copied if step % 3 == 0 else unchanged, step
    assert agent.step == 60 and all(torch.isfinite(v) for v in metrics.values())
    assert critic_loss() < 0.5 * first  # 0.06 to 0.2 of it over seeds 0-5
    assert any(not torch.equal(a, b) for a, b in zip(actor0, _params(agent.actor)))
    assert any(not torch.equal(a, b) for a, b in zip(target0, _params(agent.target_critic)))
    assert agent.log_alpha.item() != 0.0


def test_sac_polyak_target_moves_by_tau():
    hp = sac.Hyperparams(augment_pad=0, target_update="polyak", tau=0.25)
    agent = tsac.SAC.from_networks(_networks(shared=True), hp, seed=1)
    batch = {k: t(v) for k, v in _sac_batch(np.random.default_rng(6), 8).items()}
    target = _params(agent.target_critic)
    agent.update(batch)
    for old, new, critic in zip(target, _params(agent.target_critic), _params(agent.critic)):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * critic, rtol=1e-6, atol=1e-6)


def test_sac_rejects_unsupported_configs():
    networks = _networks(image_obs=False)
    with pytest.raises(ValueError, match="observation_shape"):
        tsac.SAC.from_networks(networks, sac.Hyperparams())
    hp = type("Hp", (), dict(vars(sac.Hyperparams()), regularizer="entropy_bonus"))()
    with pytest.raises(ValueError, match="regularizer='entropy_bonus'"):
        tsac.SAC.from_networks(_networks(), hp)
    mixed = sac.Networks(Actor(A, HIDDEN, True, CHANNELS, own_trunk=True),
                         Critic(HIDDEN, True, CHANNELS, 2, shared_trunk=True))
    with pytest.raises(ValueError, match="own_trunk"):
        tsac.SAC.from_networks(mixed, sac.Hyperparams())


def test_contiguous_nchw_layout_computes_the_same():
    # channels_last (the default) only changes how tensors are stored
    flow, params, torch_flow = _flow_pair(SMALL_FLOW)
    plain_flow = tflow.Flow.from_module(flow, channels_last=False)
    tflow.load_jax_params(plain_flow, params)
    assert torch_flow.encoder.trunk.convs[0].weight.is_contiguous(
        memory_format=torch.channels_last)
    assert plain_flow.encoder.trunk.convs[0].weight.is_contiguous()
    batch = _flow_batch(np.random.default_rng(9), 6)
    obs, actions = t(batch["observations"]), t(batch["actions"])
    with torch.no_grad():
        torch.testing.assert_close(plain_flow.log_prob(actions, obs),
                                   torch_flow.log_prob(actions, obs), rtol=1e-5, atol=1e-4)

    networks, hp = _networks(), sac.Hyperparams(augment_pad=0)
    state, agent = _sac_pair(networks, hp)
    plain = tsac.SAC.from_networks(networks, hp, channels_last=False)
    tsac.load_jax_state(plain, state)
    sac_batch = {k: t(v) for k, v in _sac_batch(np.random.default_rng(9), 6).items()}
    noise = torch.randn(6, A, generator=torch.Generator().manual_seed(0))

    def losses(a):
        with torch.no_grad():
            return (a.critic_loss(sac_batch, sac_batch["observations"],
                                  sac_batch["next_observations"], noise)[0],
                    a.actor_loss(sac_batch["observations"], noise)[0])

    torch.testing.assert_close(losses(plain), losses(agent), rtol=1e-5, atol=1e-5)


# ---- augmentation ----------------------------------------------------------------------

def test_random_crop_matches_ours_given_the_same_offsets():
    rng = np.random.default_rng(7)
    obs, pad, key = images(rng, 16, (10, 12, 3)), 3, jax.random.key(3)
    offsets = jax.random.randint(key, (16, 2), 0, 2 * pad + 1)  # as augment.random_crop
    want = augment.random_crop(key, obs, pad)
    got = tsac.random_crop(t(obs), pad, t(offsets))
    assert got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), np.asarray(want))
    np.testing.assert_array_equal(tsac.random_crop(t(obs), 0).numpy(), obs)


def test_random_crop_windows_of_the_edge_padded_image():
    rng = np.random.default_rng(8)
    obs, pad = images(rng, 32, (8, 8, 3)), 2
    got = tsac.random_crop(t(obs), pad, generator=torch.Generator().manual_seed(0)).numpy()
    padded = np.pad(obs, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    seen = set()
    for i in range(32):
        hits = [(r, c) for r in range(2 * pad + 1) for c in range(2 * pad + 1)
                if np.array_equal(padded[i, r:r + 8, c:c + 8], got[i])]
        assert hits, i
        seen.update(hits)
    assert len(seen) > 5  # independent offsets per image
