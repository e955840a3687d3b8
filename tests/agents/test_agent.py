"""The agents on the suite's real spaces: shapes, what reaches the env, PARROT at init."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from experiments.configs import rl
from parrot_jax.agents import sac
from parrot_jax.agents.agent import (AGENTS, acting_params, make_agent, with_pretrained_trunk,
                                     with_reference)
from parrot_jax.agents.programs import StartRecorder, act, act_by_critic, compile_programs
from parrot_jax import parallel
from parrot_jax.flows.prior import BehavioralPrior
from parrot_jax.pretrained.cvae import init_params as init_cvae
from parrot_jax.pretrained.vae import init_params as init_vae, make_vae
from tests.flows.prior_workdir import TINY_MODEL

OBS, ACTIONS = (48, 48, 3), (7,)
TINY_VAE = {"channels": 4, "num_residual": 1, "latent_dim": 6}
TINY_CVAE = {"encoder_hidden": (16,), "decoder_hidden": (16,), "image_channels": (4, 4, 4),
             "image_hidden": (16,), "embedding": 8}
TINY_TRAJVAE = {"horizon": 5, "encoder_hidden": (16,), "decoder_hidden": (16,)}
TINY_SKILLS = {"horizon": 5, "latent_dim": 3, "lstm_size": 8, "prior_hidden": (16, 16),
               "prior_channels": (4, 4)}
PLAN_AGENTS = ("trajrl", "spirl")  # their action: a 5-step plan, ActionChunks' Box


def _agent(name, **overrides):
    config = rl.get_config("tiny")
    config.agent = name
    for key, value in overrides.items():
        section, _, field = key.rpartition(".")
        (config[section] if section else config)[field] = value
    pretrained = {"hirl": TINY_CVAE, "trajrl": TINY_TRAJVAE,
                  "spirl": TINY_SKILLS}.get(name, TINY_VAE)
    actions = (5 * 7,) if name in PLAN_AGENTS else ACTIONS
    return make_agent(config, OBS, "uint8", actions, (-1.0, 1.0), TINY_MODEL, OBS, pretrained, OBS)




def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n,) + OBS, dtype=np.uint8)


@pytest.mark.parametrize("name", AGENTS)
@pytest.mark.parametrize("deterministic", [False, True])
def test_act_shapes_dtypes_and_range(name, deterministic):
    agent = _agent(name)
    policy, env = act(agent, _params(agent), _images(5), jax.random.key(0), deterministic)
    assert policy.shape == (5, agent.policy_dim) and env.shape == (5, agent.env_action_dim)
    assert agent.env_action_dim == (35 if name in PLAN_AGENTS else 7)
    assert policy.dtype == env.dtype == jnp.float32
    assert np.all(np.abs(np.asarray(env)) <= 1.0) and np.isfinite(np.asarray(policy)).all()


def test_parrot_policy_at_init_is_the_base_distribution():
    agent = _agent("parrot")
    params = _params(agent)
    images = np.repeat(_images(4), 2500, axis=0)  # 10,000 draws over four images
    z, actions = act(agent, params, images, jax.random.key(3))
    z = np.asarray(z, np.float64)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=0.04)  # 4 sigma of the sample mean
    np.testing.assert_allclose(z.std(0), 1.0, atol=0.03)
    corr = np.corrcoef(z.T)[np.triu_indices(7, 1)]
    assert np.abs(corr).max() < 0.05
    assert stats.kstest(z[:, 0], "norm").pvalue > 1e-3
    # the env receives the prior's action for that z: the first episodes are prior rollouts
    prior = BehavioralPrior(agent.prior_flow, params["prior"], OBS)
    np.testing.assert_allclose(actions, prior.sample(jnp.asarray(z, jnp.float32), images),
                               atol=1e-5)
    _, mode_actions = act(agent, params, images[:3], jax.random.key(0), True)
    np.testing.assert_allclose(mode_actions, prior.sample(jnp.zeros((3, 7)), images[:3]),
                               atol=1e-6)


@pytest.mark.parametrize("name", ["parrot", "sac"])
def test_act_by_critic_takes_the_best_of_the_policy_samples(name):
    agent = _agent(name)
    params = _params(agent)
    images, key = _images(6), jax.random.key(4)
    chosen, env = act_by_critic(agent, params, images, key, 5)
    # the same draws by hand: each observation's draw of highest min-over-heads Q
    draws = agent.policy_distribution(params, images).sample(seed=key, sample_shape=5)
    q = np.stack([np.asarray(agent.networks.q_values(params["critic"], images, d).min(0))
                  for d in draws])
    best = np.asarray(draws)[q.argmax(0), np.arange(6)]
    np.testing.assert_allclose(chosen, best, atol=1e-6)
    assert len(set(q.argmax(0).tolist())) > 1  # not always the same draw index
    np.testing.assert_allclose(env, agent.env_actions(params, images, chosen), atol=1e-6)
    if name == "parrot":  # the env gets the prior's action for the chosen z
        prior = BehavioralPrior(agent.prior_flow, params["prior"], OBS)
        np.testing.assert_allclose(env, prior.sample(chosen, images), atol=1e-5)
    with pytest.raises(ValueError, match="critic_samples=4 with deterministic=True"):
        StartRecorder(agent, params, True, critic_samples=4)


def test_parrot_regularizer_settings():
    agent = _agent("parrot")
    assert agent.hp.regularizer == "kl_standard_normal" and agent.hp.target_entropy == -2.0
    plain = _agent("parrot", **{"parrot.regularizer": "entropy"})
    assert plain.hp.regularizer == "entropy" and plain.hp.target_entropy is None
    assert _agent("sac").hp.regularizer == "entropy"
    assert _agent("parrot", **{"parrot.tanh_z": True}).hp.regularizer == "entropy"


def test_parrot_tanh_z_ablation_bounds_z():
    agent = _agent("parrot", **{"parrot.tanh_z": True})
    z, _ = act(agent, _params(agent), _images(256), jax.random.key(0))
    assert np.all(np.abs(np.asarray(z)) < 1) and np.asarray(z).std() > 0.3


def test_parrot_z_bounds():
    agent = _agent("parrot")
    assert agent.networks.actor.mean_bound == 3.0 and agent.networks.actor.log_std_max == 0.0
    params = _params(agent)
    head = params["actor"]["head"]["out"]
    params["actor"]["head"]["out"] = {**head, "bias": head["bias"] + 100.0}  # huge raw outputs
    z, _ = act(agent, params, _images(512), jax.random.key(0))
    # mean <= 3 and std <= 1: no draw of 512 x 7 lies beyond 3 + 6 sigma
    assert np.asarray(z).max() < 9.0 and np.asarray(z).mean() > 2.5


@pytest.mark.parametrize("epsilon", [0.0, 1.0, 0.5])
def test_prior_explore_executes_prior_samples_with_probability_epsilon(epsilon):
    agent = _agent("prior_explore", **{"prior_explore.epsilon": epsilon})
    sac_agent = _agent("sac")
    params = _params(agent)
    images = _images(400)
    stored, executed = act(agent, params, images, jax.random.key(5))
    np.testing.assert_array_equal(stored, executed)  # the buffer stores the executed action
    _, own = act(sac_agent, params, images, jax.random.key(5))
    from_policy = np.all(np.isclose(executed, own, atol=1e-6), axis=1)
    assert abs(1 - from_policy.mean() - epsilon) < 0.08
    _, mode_actions = act(agent, params, images[:4], jax.random.key(5), True)
    _, sac_mode = act(sac_agent, params, images[:4], jax.random.key(5), True)
    np.testing.assert_array_equal(mode_actions, sac_mode)  # evaluation: the policy alone


def test_sac_on_a_box_with_other_bounds_rescales():
    config = rl.get_config("vector")
    agent = make_agent(config, (3,), "float32", (1,), (-2.0, 2.0))
    params = _params_vector(agent)
    policy, env = act(agent, params, np.ones((1000, 3), np.float32), jax.random.key(0))
    np.testing.assert_allclose(env, 2.0 * np.asarray(policy), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(env)).max() > 1.2


def _params(agent, seed=0, obs=OBS, dtype="uint8"):
    state = compile_programs(agent, parallel.make_mesh(1), obs, dtype, 1, True).init(
        jax.random.key(seed))
    prior = agent.init_frozen(jax.random.key(1))
    if agent.prior_flow is not None:  # away from the identity flow, so the image matters
        prior = jax.tree.map(lambda x: x + 0.05 * jnp.cos(jnp.arange(x.size).reshape(x.shape)),
                             prior)
    return acting_params(state, prior)


@pytest.mark.parametrize("freeze", [True, False])
def test_prior_encoder_trunk_starts_from_the_prior_and_freezes(freeze):
    agent = _agent("parrot", **{"network.shared_trunk": True, "network.trunk": "prior_encoder",
                                "network.freeze_trunk": freeze})
    programs = compile_programs(agent, parallel.make_mesh(1), OBS, "uint8", 1, True)
    prior_params = _params(agent)["prior"]
    state = with_pretrained_trunk(agent, programs.init(jax.random.key(0)), prior_params)
    assert "encoder" in state.critic_params and "trunk" not in state.critic_params
    images = _images(6)
    prior = BehavioralPrior(agent.prior_flow, prior_params, OBS)
    embedding = agent.prior_flow.apply({"params": prior_params}, images, method="embed")
    features = agent.networks.critic.apply({"params": state.critic_params}, images,
                                           method="encode")
    np.testing.assert_array_equal(features, embedding)
    batch = {"observations": images, "next_observations": _images(6, 1),
             "actions": np.zeros((6, 7), np.float32), "rewards": np.ones(6, np.float32),
             "terminated": np.zeros(6, bool)}
    before = jax.tree.map(np.asarray, state.critic_params)
    for _ in range(3):  # the update donates the state: the prior's buffers must survive it
        state, _ = programs.update(state, batch)
    after = state.critic_params
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()), after, before)
    assert max(jax.tree.leaves(moved["qs"])) > 0
    if freeze:
        assert max(jax.tree.leaves(moved["encoder"])) == 0.0
    else:
        assert max(jax.tree.leaves(moved["encoder"])) > 0
    # acting still reads the prior's (undonated) parameters
    z, actions = act(agent, acting_params(state, prior_params), images, jax.random.key(2))
    np.testing.assert_allclose(actions, prior.sample(z, images), atol=1e-5)


@pytest.mark.parametrize("critic_input", ["action", "both"])
@pytest.mark.parametrize("learner", ["sac", "awac"])
def test_parrot_critic_reads_the_frozen_prior_action(critic_input, learner):
    agent = _agent("parrot", learner=learner, **{"parrot.critic_input": critic_input})
    programs = compile_programs(agent, parallel.make_mesh(1), OBS, "uint8", 1, True)
    prior_params = _params(agent)["prior"]
    state = with_pretrained_trunk(agent, programs.init(jax.random.key(0)), prior_params)
    np.testing.assert_array_equal(
        jax.tree.leaves(state.target_critic_params["action_map"])[0],
        jax.tree.leaves(prior_params)[0])
    images, z = _images(6), jax.random.normal(jax.random.key(3), (6, 7))
    prior = BehavioralPrior(agent.prior_flow, prior_params, OBS)
    # Q(s, z) of the parrot critic = the same heads on the prior's action (and z)
    heads_input = prior.sample(z, images)
    if critic_input == "both":
        heads_input = jnp.concatenate([z, heads_input], axis=-1)
    plain = dataclasses.replace(agent.networks.critic, action_map=None, action_input="z")
    without_map = {k: v for k, v in state.critic_params.items() if k != "action_map"}
    np.testing.assert_allclose(agent.networks.q_values(state.critic_params, images, z),
                               plain.apply({"params": without_map}, images, heads_input),
                               rtol=1e-5, atol=1e-6)
    batch = {"observations": images, "next_observations": _images(6, 1),
             "actions": np.asarray(z), "rewards": np.ones(6, np.float32),
             "terminated": np.zeros(6, bool)}
    before = jax.tree.map(np.asarray, state.critic_params)
    for _ in range(3):
        state, _ = programs.update(state, batch)
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()),
                         state.critic_params, before)
    assert max(jax.tree.leaves(moved["qs"])) > 0
    assert max(jax.tree.leaves(moved["action_map"])) == 0.0  # the flow stays the prior's
    if learner == "sac":  # the actor's gradient reaches z through the frozen flow
        assert max(jax.tree.leaves(jax.tree.map(
            lambda a, b: float(np.abs(np.asarray(a) - b).max()), state.actor_params,
            jax.tree.map(np.asarray, programs.init(jax.random.key(0)).actor_params)))) > 0


def test_critic_input_errors_are_named():
    with pytest.raises(ValueError, match="parrot.critic_input='action' reads the behavioral "
                                         "prior's action; agent 'sac' is not parrot"):
        _agent("sac", **{"parrot.critic_input": "action"})
    agent = _agent("parrot", **{"parrot.critic_input": "actions"})
    with pytest.raises(ValueError, match="critic input 'actions'; expected one of "
                                         "\\('z', 'action', 'both'\\)"):
        sac.init_state(agent.networks, agent.hp, jax.random.key(0), jnp.zeros(OBS, jnp.uint8))


def test_conv_trunk_is_left_alone_by_with_pretrained_trunk():
    agent = _agent("parrot")
    state = sac.init_state(agent.networks, agent.hp, jax.random.key(0),
                           jnp.zeros(OBS, jnp.uint8))
    assert with_pretrained_trunk(agent, state, {"encoder": None}) is state


def test_vae_features_reads_the_frozen_vae_mean():
    agent = _agent("vae_features")  # the config's separate trunks: the agent sets its own
    critic = agent.networks.critic
    assert critic.shared_trunk and critic.freeze_trunk and not agent.networks.actor.own_trunk
    vae = make_vae(TINY_VAE, OBS)
    vae_params = init_vae(vae, jax.random.key(4))
    programs = compile_programs(agent, parallel.make_mesh(1), OBS, "uint8", 1, True)
    state = with_pretrained_trunk(agent, programs.init(jax.random.key(0)), vae_params)
    images = _images(6)
    mean, _ = vae.apply({"params": vae_params}, images, method="encode")
    np.testing.assert_array_equal(
        critic.apply({"params": state.critic_params}, images, method="encode"), mean)
    batch = {"observations": images, "next_observations": _images(6, 1),
             "actions": np.zeros((6, 7), np.float32), "rewards": np.ones(6, np.float32),
             "terminated": np.zeros(6, bool)}
    for _ in range(3):
        state, _ = programs.update(state, batch)
    jax.tree.map(np.testing.assert_array_equal, state.critic_params["encoder"],
                 vae_params["encoder"])  # frozen: no loss moves it
    policy, env = act(agent, acting_params(state), images, jax.random.key(1))
    assert policy.shape == env.shape == (6, 7)


def test_hirl_acts_through_the_frozen_cvae_decoder():
    agent = _agent("hirl")
    assert agent.policy_dim == 7 and agent.hp.regularizer == "kl_standard_normal"
    assert agent.networks.actor.mean_bound == 3.0  # parrot's z-space settings
    params = _params(agent)
    images = np.repeat(_images(2), 2000, axis=0)
    z, actions = act(agent, params, images, jax.random.key(3))
    z = np.asarray(z, np.float64)  # pi(z | s) = N(0, I) at init
    np.testing.assert_allclose(z.mean(0), 0.0, atol=0.06)
    np.testing.assert_allclose(z.std(0), 1.0, atol=0.04)
    decoded = agent.action_decoder.apply({"params": params["prior"]},
                                         jnp.asarray(z, jnp.float32), images, method="decode")
    np.testing.assert_allclose(actions, decoded, atol=1e-6)
    assert np.abs(np.asarray(actions)).max() < 1.0
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a.shape, b.shape), params["prior"],
                 init_cvae(agent.action_decoder, jax.random.key(0)))


def test_trajrl_plans_open_loop_through_the_frozen_trajvae_decoder():
    agent = _agent("trajrl")
    assert agent.policy_dim == 7 and agent.networks.actor.mean_bound == 3.0
    params = _params(agent)
    z = jnp.asarray(np.random.default_rng(0).normal(size=(3, 7)), jnp.float32)
    plans = [agent.action_decoder.apply({"params": params["prior"]}, z, _images(3, seed),
                                        method="env_action") for seed in (0, 1)]
    np.testing.assert_array_equal(plans[0], plans[1])  # the plan does not look at the image
    steps = agent.action_decoder.apply({"params": params["prior"]}, z, method="decode")
    assert steps.shape == (3, 5, 7)
    np.testing.assert_array_equal(plans[0], np.asarray(steps).reshape(3, 35))
    _, mode_plan = act(agent, params, _images(3), jax.random.key(0), True)
    np.testing.assert_allclose(mode_plan, agent.action_decoder.apply(
        {"params": params["prior"]}, jnp.zeros((3, 7)), method="env_action"), atol=1e-6)
    config = rl.get_config("tiny")
    config.agent = "trajrl"
    with pytest.raises(ValueError, match="plans 5 steps, but the env's action of dimension 36 "
                                         "is not a whole number of them"):
        make_agent(config, OBS, "uint8", (36,), pretrained_model=TINY_TRAJVAE,
                   pretrained_image_shape=OBS)


def _trained_skills(agent):
    """Skill-model parameters away from their init (the prior no longer N(0, I))."""
    params = agent.init_frozen(jax.random.key(1))
    return jax.tree.map(lambda x: x + 0.05 * jnp.cos(jnp.arange(x.size).reshape(x.shape)),
                        params)


def test_spirl_starts_as_its_skill_prior_with_zero_kl():
    agent = _agent("spirl")
    assert agent.policy_dim == 3 and agent.latent_scale == 2.0
    assert agent.hp.regularizer == "kl_reference" and agent.hp.target_entropy == -5.0
    assert agent.networks.actor.own_trunk and agent.networks.actor.squash
    programs = compile_programs(agent, parallel.make_mesh(1), OBS, "uint8", 1, True)
    skills = _trained_skills(agent)
    state = with_reference(agent, programs.init(jax.random.key(0)), skills["prior"])
    jax.tree.map(np.testing.assert_array_equal, state.actor_params, skills["prior"])
    jax.tree.map(np.testing.assert_array_equal, state.reference_params, skills["prior"])
    images = _images(6)
    # the policy's Gaussian (before its tanh) is the prior's: KL 0, for every image
    policy = agent.networks.policy(state.actor_params, state.critic_params, images)
    prior = agent.networks.reference_policy(state.reference_params, images)
    kl = sac.regularizer(policy, None, None, images, state.reference_params, agent.networks,
                         agent.hp)
    np.testing.assert_array_equal(kl, np.zeros(6))
    assert float(jnp.abs(prior.mean()).max()) > 0  # a prior that depends on the image
    # deterministic: the skill 2 tanh(mu_prior(s)), decoded open-loop
    params = acting_params(state, skills)
    z, plan = act(agent, params, images, jax.random.key(1), True)
    np.testing.assert_allclose(z, np.tanh(prior.mean()), atol=1e-6)
    np.testing.assert_allclose(plan, agent.action_decoder.apply(
        {"params": skills}, 2.0 * jnp.tanh(prior.mean()), method="env_action"), atol=1e-6)
    # one update: the KL it reports is the pre-update policy's, 0; the reference stays
    batch = {"observations": images, "next_observations": _images(6, 1),
             "actions": np.asarray(z), "rewards": np.ones(6, np.float32),
             "terminated": np.zeros(6, bool)}
    state, metrics = programs.update(state, batch)
    assert float(metrics["kl"]) == 0.0
    jax.tree.map(np.testing.assert_array_equal, state.reference_params, skills["prior"])
    assert any(float(jnp.abs(a - b).max()) > 0 for a, b in zip(
        jax.tree.leaves(state.actor_params), jax.tree.leaves(skills["prior"])))
    # without the initialisation (S App. F's ablation) the policy starts at N(0, I)
    fresh = programs.init(jax.random.key(0))
    ablation = with_reference(agent, fresh, skills["prior"], init_policy=False)
    policy = agent.networks.policy(ablation.actor_params, ablation.critic_params, images)
    np.testing.assert_array_equal(policy.distribution.mean(), np.zeros((6, 3)))
    assert with_reference(_agent("sac"), fresh, skills["prior"]) is fresh
    # with the critic's trunk shared (the :cpu configs) the policy keeps its own trunk
    shared = _agent("spirl", **{"network.shared_trunk": True})
    assert shared.networks.critic.shared_trunk and shared.networks.actor.own_trunk
    policy, plan = act(shared, _params(shared), images, jax.random.key(2))
    assert policy.shape == (6, 3) and plan.shape == (6, 35)


def test_vae_features_errors_are_named():
    config = rl.get_config("tiny")
    config.agent = "vae_features"
    with pytest.raises(ValueError, match="needs a pretrained vae: pass --config.pretrained"):
        make_agent(config, OBS, "uint8", ACTIONS)
    with pytest.raises(ValueError, match=r"trained on images of shape \(64, 64, 3\), but the "
                                         r"env's observations have shape \(48, 48, 3\)"):
        make_agent(config, OBS, "uint8", ACTIONS, pretrained_model=TINY_VAE,
                   pretrained_image_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="network.trunk='prior_encoder' cannot replace them"):
        _agent("vae_features", **{"network.shared_trunk": True,
                                  "network.trunk": "prior_encoder"})


def test_bad_trunks_are_named():
    with pytest.raises(ValueError, match="network.trunk='resnet'; expected one of"):
        _agent("parrot", **{"network.shared_trunk": True, "network.trunk": "resnet"})
    with pytest.raises(ValueError, match="needs network.shared_trunk=True"):
        _agent("parrot", **{"network.trunk": "prior_encoder"})
    with pytest.raises(ValueError, match="needs network.shared_trunk=True"):
        _agent("sac", **{"network.freeze_trunk": True})
    with pytest.raises(ValueError, match="agent 'sac' has no prior"):
        _agent("sac", **{"network.shared_trunk": True, "network.trunk": "prior_encoder"})


def _params_vector(agent):
    return _params(agent, obs=(3,), dtype="float32")


def test_bad_agents_and_spaces_are_named():
    with pytest.raises(ValueError, match="unknown agent 'ppo'; valid agents: parrot, sac, "
                                         "bc_sac, prior_explore"):
        _agent("ppo")
    config = rl.get_config("tiny")
    with pytest.raises(ValueError, match="needs a behavioral prior"):
        make_agent(config, OBS, "uint8", ACTIONS)
    with pytest.raises(ValueError, match="uint8"):
        make_agent(config, OBS, "float32", ACTIONS, prior_model=TINY_MODEL, prior_image_shape=OBS)
    config.agent = "sac"
    with pytest.raises(ValueError, match="1-D action Box"):
        make_agent(config, OBS, "uint8", (2, 3))


def test_learner_setting_chooses_how_an_agent_learns():
    from parrot_jax.agents import awac, iql

    parrot = _agent("parrot")
    assert parrot.learner_name == "sac" and parrot.learner is sac
    assert _agent("iql").learner is iql and _agent("parrot", learner="sac").learner is sac
    by_awac = _agent("parrot", learner="awac", **{"awac.temperature": 0.5})
    assert by_awac.learner is awac and by_awac.hp == awac.Hyperparams(
        **{f: by_awac.hp.__dict__[f] for f in ("discount", "actor_lr", "critic_lr", "tau",
                                                "target_update", "target_update_period",
                                                "augment_pad", "n_step", "reward_scale")},
        temperature=0.5)
    # PARROT's z-space policy stays unsquashed and N(0, I) at init; no KL term to carry
    assert not by_awac.networks.actor.squash and by_awac.networks.actor.mean_bound == 3.0
    by_iql = _agent("parrot", learner="iql")
    assert by_iql.learner is iql and by_iql.networks.value is not None
    assert _agent("hirl", learner="awac").learner is awac
    z, _ = act(by_iql, _params(by_iql), _images(2000), jax.random.key(0))
    np.testing.assert_allclose(np.asarray(z).std(0), 1.0, atol=0.06)


@pytest.mark.parametrize("name, learner, message", [
    ("parrot", "ppo", r"config.learner='ppo'; expected one of \('sac', 'iql', 'awac'\)"),
    ("iql", "sac", "agent 'iql' learns by iql; config.learner='sac' contradicts it"),
    ("spirl", "awac", "agent 'spirl' learns by SAC with KL to its skill prior"),
])
def test_bad_learners_are_named(name, learner, message):
    with pytest.raises(ValueError, match=message):
        _agent(name, learner=learner)


def test_box_bounds():
    import gymnasium as gym
    from parrot_jax.agents.agent import box_bounds

    assert box_bounds(gym.spaces.Box(-2.0, 2.0, (3,))) == (-2.0, 2.0)
    with pytest.raises(ValueError, match="same finite bounds on every dimension"):
        box_bounds(gym.spaces.Box(np.array([-1.0, -2.0]), np.array([1.0, 2.0])))
    with pytest.raises(ValueError, match="same finite bounds"):
        box_bounds(gym.spaces.Box(-np.inf, np.inf, (2,)))
