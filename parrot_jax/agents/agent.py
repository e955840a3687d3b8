"""The four agents: what SAC's policy chooses, and how that becomes the env's action.

- ``parrot`` (paper section 4.2): the policy chooses ``z`` and the env executes
  ``a = prior.sample(z, s) = tanh(f(z; s))`` through the frozen prior; the replay buffer
  stores ``z``. The policy is an unbounded Gaussian whose last layer starts at zero, so
  at initialisation ``pi(z | s) = N(0, I)``, the prior's base distribution, and the first
  episodes are exactly prior rollouts. The policy's mean is softly bounded to
  ``+-parrot.z_mean_bound`` (3) and its standard deviation to ``<= exp(z_log_std_max)``
  (1): that keeps ``z`` where the flow was trained (N(0, I) puts 99.7% of its mass within
  +-3) and bounds the entropy bonus; with an unbounded mean and std up to e^2 the critic
  diverged (measured: critic loss 6e20 after 750 updates on PickUpCan, the actor chasing
  the critic's extrapolation to huge z). ``parrot.tanh_z=True`` reproduces the original
  code's tanh-squashed ``z`` in (-1, 1) (an ablation). By default SAC's entropy bonus is
  replaced by ``-KL(pi(z | s) || N(0, I))`` (``parrot.regularizer``; the reason is in
  ``parrot_jax.agents.sac``); ``parrot.regularizer="entropy"`` is the paper's plain SAC.
- ``sac``: SAC in the env's action space (tanh-squashed Gaussian, rescaled to the Box).
- ``bc_sac``: as ``sac``, its actor first fitted to the prior dataset by behaviour cloning
  (``parrot_jax.agents.bc``).
- ``prior_explore``: as ``sac``, but each env independently executes a prior sample
  ``prior.sample(z ~ N(0, I), s)`` instead of the policy's action with probability
  ``epsilon`` (paper: 0.9); the buffer stores the executed action. Evaluation uses the
  policy alone.
- ``vae_features`` (paper section 5.1): ``sac`` on the frozen features ``mu(s)`` of a beta-VAE
  pretrained on the prior dataset's images (``parrot_jax.pretrained.vae``, trained by
  ``experiments.pretrain``): the features are the critic's shared trunk, under
  ``stop_gradient``, and the actor reads them too.
- ``hirl`` (paper section 5.1): as ``parrot``, with the flow replaced by the frozen decoder
  mean ``a = tanh(g(z, psi(s)))`` of a conditional VAE pretrained on the prior dataset
  (``parrot_jax.pretrained.cvae``); the policy chooses ``z`` every step (closed-loop),
  with ``parrot``'s z-space settings (the ``parrot`` config section). Unlike the flow, the
  decoder is not invertible: some actions may be out of the policy's reach.
- ``trajrl`` (paper section 5.1, after Ghadirzadeh et al. 2020): one decision per episode.
  The policy chooses ``z`` from the first image and the frozen decoder mean of a trajectory
  VAE pretrained on the prior dataset's episodes (``parrot_jax.pretrained.trajvae``) turns
  it into the whole 25-step plan, executed open-loop by ``envs.chunks.ActionChunks``: one
  RL transition ``(s_0, z, R, done=1)`` per episode. ``parrot``'s z-space settings.
- ``spirl`` (Pertsch et al. 2020): skill-prior RL. SPiRL's skill model
  (``parrot_jax.pretrained.spirl``) is pretrained on the prior dataset: a VAE over
  ``H``-step action windows and a learned prior ``p(z | s)`` over its latent. The policy
  chooses a skill ``z = max_latent * tanh(u)`` every ``H`` env steps (``spirl.max_latent``
  2); the frozen skill decoder's mean runs open-loop through ``envs.chunks.ActionChunks``
  (the agent's reward: the sum of the ``H`` rewards). SAC's entropy bonus is replaced by
  ``-KL(pi(u | s) || p(z | s))`` with its temperature tuned toward
  ``spirl.target_divergence`` (the ``kl_reference`` regularizer of ``agents.sac``). The
  policy network is the prior's architecture, started from its trained parameters
  (``spirl.init_from_prior``), so at step 0 the KL is 0 and the agent acts as the prior.
  With a closed-loop skill model the env's action is ``z`` itself, decoded step by step
  from each observation by ``envs.chunks.LatentSkills`` in the env's workers.
- ``iql`` and ``awac``: SAC's actor and critic in the env's action space, learning by
  implicit Q-learning (with a value network) or by advantage-weighted actor-critic
  (``parrot_jax.agents.iql`` / ``awac``), offline from reward-labelled data first when
  the run has some (``config.offline``).

``config.learner`` ("": the agent's own) makes any agent but ``spirl`` (whose KL to the
skill prior is SAC's) learn by ``sac``, ``iql`` or ``awac``: ``parrot`` with
``learner="awac"`` or ``"iql"`` is PARROT whose policy over ``z`` is pulled only toward
the ``z`` it has tried, weighted by their advantage, instead of along the critic's
gradient (``docs/rl_diagnosis.md``, Round 5).

What differs between agents is data, not branches on their names: each agent is one
entry of ``agents.spec.SPECS`` naming its parts (what it sees, what its policy chooses
and how that reaches the env, how it learns, how it starts), and ``make_agent``, ``act``
and the training loop read those parts. How the agent learns is a module of pure updates
(``LEARNERS``: ``init_state``, ``update_step``, ``update_steps``) with its
hyperparameters (``Agent.hp``), and what the policy chooses and how the env receives it
is ``Agent.act``.

``Agent.act(params, obs, key, deterministic)`` is pure and jittable:
``params = {"actor", "critic"[, "prior"]}``, returns ``(policy_actions, env_actions)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from parrot_jax import legacy
from parrot_jax.agents import awac, awr, iql, sac
from parrot_jax.agents.networks import Actor, Critic, Value, mode
# AGENTS: re-exported for ``parrot_jax.agents.AGENTS``
from parrot_jax.agents.spec import (AGENTS, LEARNER_NAMES, AgentSpec,  # noqa: F401
                                    agents_where, spec_of)
from parrot_jax.flows.prior import BehavioralPrior, init_params as init_prior_params, make_flow
from parrot_jax.flows.realnvp import ConditionalRealNVP, flow_encoder
from parrot_jax.pretrained import (cvae as cvae_model, spirl as spirl_model,
                                   trajvae as trajvae_model, vae as vae_model)

DECODERS = {"cvae": cvae_model, "trajvae": trajvae_model,  # pretrained kind -> its module
            "spirl": spirl_model}
# How each agent learns: a module of pure updates, and its hyperparameters' class and
# config section (besides the shared ``sac`` section).
LEARNERS = {"iql": (iql, iql.Hyperparams, "iql"), "awac": (awac, awac.Hyperparams, "awac")}
SAC_LEARNER = (sac, sac.Hyperparams, None)
assert set(LEARNER_NAMES) == {"sac", *LEARNERS}
# The shared trunk: the paper's conv trunk trained by the critic, or the behavioral prior's
# image encoder psi, started from its trained parameters (``with_pretrained_trunk``).
# Agents that see features set their own (a frozen pretrained encoder).
TRUNKS = ("conv", "prior_encoder")


@dataclasses.dataclass(frozen=True)
class Agent:
    """An agent's static parts (hashable: a static argument of jit)."""

    name: str
    networks: sac.Networks
    hp: sac.Hyperparams | awr.Hyperparams  # the learner's (``LEARNERS``)
    env_action_dim: int
    action_low: float = -1.0  # the env's Box bounds (scalars; checked when made)
    action_high: float = 1.0
    prior_flow: ConditionalRealNVP | None = None
    prior_image_shape: tuple[int, ...] | None = None
    # a decoder agent's frozen z -> the env's action (its ``env_action(z, images)``)
    action_decoder: (cvae_model.ActionCVAE | trajvae_model.TrajectoryVAE
                     | spirl_model.SkillModel | None) = None
    epsilon: float = 0.0  # prior_explore: probability of executing a prior sample
    latent_scale: float = 1.0  # the decoder reads latent_scale * the policy's choice
    learner_name: str = "sac"  # LEARNER_NAMES (``learner_name``)

    @property
    def spec(self) -> AgentSpec:
        """The agent's parts (``agents.spec``)."""
        return spec_of(self.name)

    @property
    def learner(self):
        """The module of pure updates this agent learns by (``sac``, ``iql``, ``awac``)."""
        return LEARNERS.get(self.learner_name, SAC_LEARNER)[0]

    @property
    def policy_dim(self) -> int:
        """The dimension of what the policy chooses (and the buffer stores)."""
        return self.networks.action_dim

    def init_frozen(self, rng):
        """Fresh parameters of the frozen map the acting parameters hold as ``"prior"``
        (the flow, or a decoder agent's decoder; None without one): their structure,
        for restoring a checkpoint."""
        if self.prior_flow is not None:
            return init_prior_params(self.prior_flow, rng, self.prior_image_shape)
        if self.action_decoder is not None:
            return DECODERS[self.spec.pretrained].init_params(self.action_decoder, rng)
        return None

    def prior(self, params) -> BehavioralPrior:
        return BehavioralPrior(self.prior_flow, params["prior"], self.prior_image_shape)

    def policy_distribution(self, params, obs):
        return self.networks.policy(params["actor"], params["critic"], obs)

    def act(self, params, obs, key, deterministic: bool = False):
        """(policy_actions (B, policy_dim), env_actions (B, env_action_dim))."""
        policy_key, prior_key, coin_key = jax.random.split(key, 3)
        dist = self.policy_distribution(params, obs)
        chosen = mode(dist) if deterministic else dist.sample(seed=policy_key)
        env_actions = self.env_actions(params, obs, chosen)
        if self.spec.explores_with_prior and not deterministic:
            z = jax.random.normal(prior_key, (obs.shape[0], self.prior_flow.action_dim))
            explore = jax.random.bernoulli(coin_key, self.epsilon, (obs.shape[0], 1))
            env_actions = jnp.where(explore, self.prior(params).sample(z, obs), env_actions)
            chosen = self._unscale(env_actions)
        return chosen, env_actions

    def act_by_critic(self, params, obs, key, samples: int):
        """The best of ``samples`` draws from the policy by the critic (the min over its
        heads), chosen per observation: ``argmax_i Q(s, u_i)``, ``u_i ~ pi(. | s)``
        (QT-Opt-style selection at acting time; ``params`` must hold the critic).
        (policy_actions, env_actions) as ``act``'s."""
        dist = self.policy_distribution(params, obs)
        draws = dist.sample(seed=key, sample_shape=samples)  # (samples, B, policy_dim)
        q = jax.vmap(lambda u: self.networks.q_values(params["critic"], obs, u).min(0))(draws)
        best = jnp.argmax(q, axis=0)
        chosen = jnp.take_along_axis(draws, best[None, :, None], axis=0)[0]
        return chosen, self.env_actions(params, obs, chosen)

    def env_actions(self, params, obs, chosen):
        """What the env executes for the policy's ``chosen`` (B, policy_dim): the prior's
        action for ``z`` (parrot), a decoder's, or the policy's action rescaled."""
        if self.spec.acts_through == "flow":
            return self.prior(params).sample(chosen, obs)
        if self.action_decoder is not None:
            return self.action_decoder.apply({"params": params["prior"]},
                                             self.latent_scale * chosen, obs,
                                             method="env_action")
        return self._rescale(chosen)

    def _rescale(self, actions):
        """(-1, 1) -> [low, high] (identity for the suite's Box(-1, 1))."""
        if (self.action_low, self.action_high) == (-1.0, 1.0):
            return actions
        return self.action_low + (actions + 1.0) * 0.5 * (self.action_high - self.action_low)

    def _unscale(self, actions):
        if (self.action_low, self.action_high) == (-1.0, 1.0):
            return actions
        return (actions - self.action_low) / (self.action_high - self.action_low) * 2.0 - 1.0


def learner_name(config: Mapping[str, Any]) -> str:
    """How the run's agent learns: ``config.learner``, or the agent's own (``iql`` and
    ``awac`` by their names, ``sac`` otherwise: ``AgentSpec.learner``); ValueError naming
    a bad combination (one outside ``AgentSpec.learners``)."""
    name, chosen = config["agent"], config.get("learner", "")
    parts = spec_of(name)
    if not chosen:
        return parts.learner
    if chosen not in LEARNER_NAMES:
        raise ValueError(f"config.learner={chosen!r}; expected one of {LEARNER_NAMES} or '' "
                         "(the agent's own)")
    if chosen not in parts.learners:
        allowed = " or ".join(repr(n) for n in parts.learners)
        raise ValueError(f"agent {name!r} learns by {parts.learner_note or parts.learner}; "
                         f"config.learner={chosen!r} contradicts it (use {allowed} or '')")
    return chosen


def box_bounds(action_space) -> tuple[float, float]:
    low, high = np.asarray(action_space.low), np.asarray(action_space.high)
    if not (np.all(low == low.flat[0]) and np.all(high == high.flat[0])
            and np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(f"SAC needs an action Box with the same finite bounds on every "
                         f"dimension, got low={low} high={high}")
    return float(low.flat[0]), float(high.flat[0])


def make_agent(config: Mapping[str, Any], observation_shape, observation_dtype,
               action_shape, action_bounds=(-1.0, 1.0),
               prior_model: Mapping[str, Any] | None = None,
               prior_image_shape=None, pretrained_model: Mapping[str, Any] | None = None,
               pretrained_image_shape=None) -> Agent:
    """The agent described by a run config (a ``ConfigDict`` or its JSON ``dict``).

    ``prior_model``: the prior's model config (``config.json``'s ``model``), needed by
    the agents that read one (``parrot``, ``prior_explore``); ``pretrained_model``: the
    model config of the ``experiments.pretrain`` run whose encoder an agent that sees
    features reads, or whose decoder an agent acting through one acts through. What is
    built comes from the agent's parts (``agents.spec``), never from its name.
    """
    name = config["agent"]
    parts = spec_of(name)
    if len(tuple(action_shape)) != 1:
        raise ValueError(f"SAC needs a 1-D action Box, got shape {tuple(action_shape)}")
    env_action_dim = int(action_shape[0])
    image_obs = len(tuple(observation_shape)) == 3
    if image_obs and np.dtype(observation_dtype) != np.uint8:
        raise ValueError(f"image observations must be uint8, got {observation_dtype}")
    if not image_obs and len(tuple(observation_shape)) != 1:
        raise ValueError(f"observations must be images (H, W, C) uint8 or vectors (D,), got "
                         f"shape {tuple(observation_shape)}")
    net = legacy.with_added_fields("network", config["network"])
    prior_flow = action_decoder = reference = None  # reference: SPiRL's skill prior
    policy_dim, squash = env_action_dim, True
    mean_bound, log_std_max = None, float(net["log_std_max"])
    if parts.acts_through == "decoder":
        action_decoder = _action_decoder(name, pretrained_model, pretrained_image_shape,
                                         observation_shape, env_action_dim,
                                         config.get("pretrained_action_dim"))
        policy_dim = action_decoder.latent_dim
    if parts.reads_prior:
        if prior_model is None:
            raise ValueError(f"agent {name!r} needs a behavioral prior: pass "
                             "--config.prior=PRIOR_WORKDIR (written by experiments.train_prior)")
        prior_flow = make_flow(prior_model)
        prior_image_shape = tuple(prior_image_shape)
        if parts.acts_through == "flow":
            policy_dim = prior_flow.action_dim
    if parts.latent:
        squash = bool(config["parrot"]["tanh_z"])
        if not squash:
            mean_bound = config["parrot"]["z_mean_bound"]
            log_std_max = min(log_std_max, float(config["parrot"]["z_log_std_max"]))
    channels, hidden = tuple(net["channels"]), tuple(net["hidden"])
    if parts.sees == "features":
        encoder = _feature_encoder(name, net, pretrained_model, pretrained_image_shape,
                                   observation_shape)
        net = {**net, "shared_trunk": True, "freeze_trunk": True, "vmap_trunks": False}
    else:
        encoder = _trunk_encoder(name, net, prior_flow)
    # the frozen map from the policy's choice to the env action, when it is the prior's
    # flow (parrot); what parrot.critic_input can read
    flow_map = prior_flow if parts.acts_through == "flow" else None
    critic = _critic(config, net, name, image_obs, encoder, flow_map)
    actor = Actor(policy_dim, hidden, image_obs, channels, own_trunk=not net["shared_trunk"],
                  squash=squash, log_std_min=float(net["log_std_min"]),
                  log_std_max=log_std_max,
                  mean_bound=None if mean_bound is None else float(mean_bound),
                  trunk_dtype=str(net["trunk_dtype"]))
    learns_by = learner_name(config)
    learner, hp = _learner_hyperparams(config, parts.latent, learns_by, squash)
    value = None
    if learner is iql:
        value = Value(hidden, image_obs, channels, own_trunk=not net["shared_trunk"],
                      trunk_dtype=str(net["trunk_dtype"]))
    latent_scale = 1.0
    if parts.starts_from == "skill_prior":
        actor, reference, hp, latent_scale = _skill_prior_parts(config, action_decoder, hp)
    low, high = action_bounds
    return Agent(name, sac.Networks(actor, critic, value, reference), hp, env_action_dim,
                 float(low), float(high), prior_flow, prior_image_shape, action_decoder,
                 float(config["prior_explore"]["epsilon"]) if parts.explores_with_prior else 0.0,
                 latent_scale, learns_by)


def _learner_hyperparams(config, latent: bool, learns_by: str, squash: bool):
    """``(learner module, its hyperparameters)``: the ``sac`` section, plus the learner's
    own section (AWAC, IQL); an unsquashed latent agent learning by SAC takes
    ``parrot.regularizer`` (KL to the base instead of the entropy) with its target."""
    learner, hp_class, section = LEARNERS.get(learns_by, SAC_LEARNER)
    if section is None:
        hp = hp_class(**dict(config["sac"]))
    else:  # a run written before the section existed holds its old values
        hp = hp_class.from_config(config["sac"],
                                  legacy.with_added_fields(section, config.get(section, {})))
    if latent and not squash and learner is sac:
        regularizer = config["parrot"]["regularizer"]
        if regularizer != "entropy":
            hp = dataclasses.replace(hp, regularizer=regularizer,
                                     target_entropy=-float(config["parrot"]["target_kl"]))
    return learner, hp


def _critic(config, net: Mapping[str, Any], name: str, image_obs: bool, encoder,
            flow_map) -> Critic:
    """The critic: ``net``'s heads and trunk (or ``encoder``), reading the policy's choice
    ``z`` or, with ``parrot.critic_input``, the action ``flow_map`` (the frozen prior's
    flow the policy acts through; None for agents that do not) makes of it."""
    critic_input = legacy.with_added_fields("parrot", config["parrot"])["critic_input"]
    if critic_input != "z" and flow_map is None:
        raise ValueError(f"parrot.critic_input={critic_input!r} reads the behavioral prior's "
                         f"action; agent {name!r} is not parrot (it does not act through the "
                         "prior's flow; leave it 'z')")
    return Critic(tuple(net["hidden"]), image_obs, tuple(net["channels"]), int(net["num_qs"]),
                  bool(net["shared_trunk"]), encoder, bool(net["freeze_trunk"]),
                  flow_map if critic_input != "z" else None, critic_input,
                  str(net["trunk_dtype"]), bool(net["vmap_trunks"]))


def _skill_prior_parts(config, skills, hp):
    """SPiRL's ``(policy, reference, hp, latent_scale)``: the skill prior's network as the
    frozen reference and, squashed, as the policy; KL to it toward the target divergence."""
    section = legacy.with_added_fields("spirl", config.get("spirl", {}))
    hp = dataclasses.replace(hp, regularizer="kl_reference",
                             target_entropy=-float(section["target_divergence"]))
    return (spirl_model.prior_actor(skills, squash=True), spirl_model.prior_actor(skills), hp,
            float(section["max_latent"]))


def _trunk_encoder(name: str, net: Mapping[str, Any], prior_flow) -> Any:
    """The prior's encoder module for ``network.trunk="prior_encoder"``, else None."""
    trunk = net["trunk"]
    if trunk not in TRUNKS:
        raise ValueError(f"network.trunk={trunk!r}; expected one of {TRUNKS}")
    if (trunk != "conv" or net["freeze_trunk"]) and not net["shared_trunk"]:
        raise ValueError(f"network.trunk={trunk!r} with freeze_trunk="
                         f"{net['freeze_trunk']} needs network.shared_trunk=True "
                         "(one trunk, in the critic, whose features the actor reads)")
    if trunk == "conv":
        return None
    if prior_flow is None:
        raise ValueError(f"network.trunk='prior_encoder' reads the behavioral prior's image "
                         f"encoder; agent {name!r} has no prior (agents with one: "
                         f"{', '.join(agents_where(reads_prior=True))})")
    return flow_encoder(prior_flow)


def missing_pretrained(name: str) -> ValueError:
    """The error for an agent that reads a pretrained model (``AgentSpec.pretrained``) run
    without ``--config.pretrained``."""
    kind = spec_of(name).pretrained
    return ValueError(f"agent {name!r} needs a pretrained {kind}: pass "
                      f"--config.pretrained=WORKDIR (written by experiments.pretrain "
                      f"--config=experiments/configs/pretrain.py:{kind})")


def _check_pretrained(name: str, model, image_shape, observation_shape) -> str:
    """The pretrained kind ``name`` reads; ValueError if it is missing or was trained on
    images of another shape than the env's."""
    kind = spec_of(name).pretrained
    if model is None:
        raise missing_pretrained(name)
    if tuple(image_shape) != tuple(observation_shape):
        raise ValueError(f"the pretrained {kind} was trained on images of shape "
                         f"{tuple(image_shape)}, but the env's observations have shape "
                         f"{tuple(observation_shape)}")
    return kind


def _action_decoder(name: str, model, image_shape, observation_shape, action_dim: int,
                    step_action_dim: int | None = None):
    """The frozen decoder an agent acting through one acts through; ``action_dim``: the
    env's (for an agent acting by plans, the flat plan's H x A; for closed-loop skills the latent,
    with ``step_action_dim`` the decoder's one-step action)."""
    kind = _check_pretrained(name, model, image_shape, observation_shape)
    if kind == "cvae":
        return cvae_model.make_cvae(model, image_shape, action_dim)
    if kind == "spirl" and model.get("closed_loop"):
        if step_action_dim is None:
            raise ValueError("a closed-loop skill model needs its one-step action dimension "
                             "(the run's pretrained_action_dim)")
        skills = spirl_model.make_skill_model(model, image_shape, int(step_action_dim))
        if action_dim != skills.latent_dim:
            raise ValueError(f"closed-loop skills take a latent of dimension "
                             f"{skills.latent_dim}, but the env's action has dimension "
                             f"{action_dim}")
        return skills
    horizon = int(model["horizon"])
    if action_dim % horizon:
        raise ValueError(f"the pretrained {kind} plans {horizon} steps, but the env's action "
                         f"of dimension {action_dim} is not a whole number of them")
    if kind == "spirl":
        return spirl_model.make_skill_model(model, image_shape, action_dim // horizon)
    return trajvae_model.make_trajvae(model, action_dim // horizon)


def _feature_encoder(name: str, net: Mapping[str, Any], model, image_shape,
                     observation_shape) -> Any:
    """The frozen encoder an agent that sees features reads (its parameters are copied in
    from the pretrained run by ``with_pretrained_trunk``)."""
    kind = spec_of(name).pretrained
    if net["trunk"] != "conv":
        raise ValueError(f"agent {name!r} reads a pretrained {kind}'s features; "
                         f"network.trunk={net['trunk']!r} cannot replace them (leave it 'conv')")
    _check_pretrained(name, model, image_shape, observation_shape)
    return vae_model.features_encoder(vae_model.make_vae(model, image_shape))


def with_pretrained_trunk(agent: Agent, state: sac.SACState, params: Any) -> sac.SACState:
    """``state`` with the critic's encoder trunk, and its target's, set to the trained
    encoder ``params["encoder"]`` of a pretrained model: the prior's
    (``network.trunk="prior_encoder"``) or, for an agent that sees features, its VAE; and with
    ``parrot.critic_input`` other than "z" the critic's frozen copy of the prior's flow
    (``action_map``) set to the prior's ``params``; ``state`` itself when neither applies.

    The critic's optimizer state needs no change: Adam's moments start at zero whatever the
    parameters are."""
    critic = agent.networks.critic
    parts = {}
    if critic.encoder is not None:
        parts["encoder"] = params["encoder"]
    if critic.action_map is not None:
        parts["action_map"] = params
    if not parts:
        return state
    # Copies: the update donates the state's buffers, which must be neither the prior's
    # (acting still reads them) nor shared between the critic and its target.
    critic = {**state.critic_params, **jax.tree.map(lambda x: x.copy(), parts)}
    target = jax.tree.map(lambda x: x.copy(), critic)
    return state.replace(critic_params=critic, target_critic_params=target)


def with_reference(agent: Agent, state: sac.SACState, params: Any,
                   init_policy: bool = True) -> sac.SACState:
    """``state`` with the frozen reference policy set to ``params`` (SPiRL's trained skill
    prior) and, with ``init_policy``, the policy started as a copy of it (its optimizer
    state fresh); ``state`` itself for agents without a reference."""
    if agent.networks.reference is None:
        return state
    # Copies: the update donates the state's buffers, which must be neither the decoder's
    # (acting reads them) nor shared between the policy and the reference.
    reference = jax.tree.map(lambda x: x.copy(), params)
    state = state.replace(reference_params=reference)
    if not init_policy:
        return state
    actor = jax.tree.map(lambda x: x.copy(), params)
    actor_opt = sac.optimizers(agent.hp)[0]
    return state.replace(actor_params=actor, actor_opt_state=actor_opt.init(actor))


def acting_params(state: sac.SACState, prior_params: Any = None) -> dict[str, Any]:
    """What ``Agent.act`` needs from a training state (plus the frozen prior's params)."""
    params = {"actor": state.actor_params, "critic": state.critic_params}
    if prior_params is not None:
        params["prior"] = prior_params
    return params
