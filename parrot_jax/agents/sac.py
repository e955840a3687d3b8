"""Soft actor-critic (Haarnoja et al. 2018) as pure functions of a state and a batch.

One update on a batch ``(s, a, r, s', d)`` (``d``: terminated, not truncated):

    critic:      y = c * r + gamma * (1 - d) * (min_i Qbar_i(s', a') - alpha * log pi(a' | s')),
                 a' ~ pi(. | s');  L_Q = sum_i mean (Q_i(s, a) - y)^2
                 (``n_step > 1``: r is the replay's discounted sum of up to n rewards, s' the
                 frame after them and gamma^m in place of gamma, m <= n the steps taken; the
                 regulariser's bonus of the intermediate steps is left out)
    actor:       L_pi = mean (alpha * log pi(a~ | s) - min_i Q_i(s, a~)),  a~ ~ pi(. | s)
                 (reparameterised, with the critic just updated)
    temperature: L_alpha = -mean log(alpha) * (log pi(a~ | s) + H_target)  (stop-gradient on
                 log pi), so alpha falls while the policy's entropy is above H_target and
                 rises below it
    target:      Qbar <- Q every ``target_update_period`` updates (hard copy, the paper), or
                 Qbar <- tau Q + (1 - tau) Qbar every update (``target_update="polyak"``)

``regularizer="kl_reference"`` (SPiRL, Pertsch et al. 2020) uses ``KL(pi(. | s) || p(. | s))``
instead, ``p`` a frozen reference policy (``Networks.reference``, parameters
``SACState.reference_params``: SPiRL's learned skill prior), in closed form between the
two Gaussians (the policy's before its tanh, as SPiRL's code does), the same for every
sample from one state; ``H_target = -target divergence``.

``regularizer="kl_standard_normal"`` replaces ``log pi`` by ``log pi(a | s) - log N(a; 0, I)``
in all three losses, i.e. the entropy bonus by ``-KL(pi || N(0, I))``, with ``H_target =
-target KL``. PARROT's policy over ``z`` uses it by default: the entropy of a Gaussian does
not depend on its mean, so plain SAC leaves the mean of ``z`` free to follow the critic's
noise to wherever it extrapolates (measured on PickUpCan: every dimension at the +-3 bound
within 2,500 updates, and the prior's grasping gone), while ``KL(pi || N(0, I))`` in
``z`` equals the KL between the policy's and the prior's action distributions (``f`` is a
bijection), so the policy stays near the prior unless the critic pays for leaving it.

Images are randomly shifted (``augment_pad``) independently for ``s`` and ``s'``. With a
shared trunk the actor reads the critic's trunk features through ``stop_gradient``.
``update_steps`` fuses K updates over K stacked batches with ``lax.scan`` (update-to-data
ratios above 1, or one dispatch per pool step). ``jax.jit`` is applied by the caller, with
shardings and donation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import distrax
import flax.struct
import jax
import jax.numpy as jnp
import optax

from parrot_jax import fused
from parrot_jax.networks.augment import random_crop
from parrot_jax.agents.networks import Actor, Critic, Value, gaussian

REGULARIZERS = ("entropy", "kl_standard_normal", "kl_reference")
Batch = dict[str, jax.Array]  # observations, actions, rewards, next_observations, terminated
Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Hyperparams:
    """SAC's settings (paper Table 1 by default); hashable, a static argument of jit."""

    discount: float = 0.99
    reward_scale: float = 1.0
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 1.0
    target_entropy: float | None = None  # None: -action_dim (with "kl_...": -target KL)
    regularizer: str = "entropy"  # "entropy" (SAC), "kl_standard_normal", "kl_reference"
    target_update: str = "hard"  # "hard" (copy every period) or "polyak"
    target_update_period: int = 1000
    tau: float = 0.005  # Polyak rate
    augment_pad: int = 4  # random shift of images by up to this many pixels (0: off)
    n_step: int = 1  # rewards summed per critic target (the replay samples n-step batches)

    def __post_init__(self):
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer={self.regularizer!r}; expected one of {REGULARIZERS}")
        if self.target_update not in ("hard", "polyak"):
            raise ValueError(f"target_update={self.target_update!r}; expected 'hard' or 'polyak'")
        if isinstance(self.n_step, bool) or not isinstance(self.n_step, int) or self.n_step < 1:
            raise ValueError(f"n_step={self.n_step!r}; expected a positive int")
        if self.target_update_period < 1:
            raise ValueError(f"target_update_period={self.target_update_period}; expected >= 1")
        if self.augment_pad < 0:
            raise ValueError(f"augment_pad={self.augment_pad}; expected >= 0 pixels")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"discount={self.discount}; expected a number in [0, 1]")
        for name in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)}; expected a positive number")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau={self.tau}; expected a number in (0, 1]")


@dataclasses.dataclass(frozen=True)
class Networks:
    """The actor and critic modules, IQL's value network and SPiRL's frozen reference
    policy (hashable: a static argument of jit)."""

    actor: Actor
    critic: Critic
    value: Value | None = None
    reference: Actor | None = None  # regularizer "kl_reference": p(. | s), own trunk

    @property
    def action_dim(self) -> int:
        return self.actor.action_dim

    @property
    def image_obs(self) -> bool:
        return self.critic.image_obs

    def policy(self, actor_params, critic_params, obs) -> distrax.Distribution:
        """pi(. | obs); an actor without a trunk of its own reads the critic's shared trunk
        features, gradient stopped."""
        inputs = obs if self.actor.own_trunk else self.features(critic_params, obs)
        return self.actor.apply({"params": actor_params}, inputs)

    def reference_policy(self, reference_params, obs) -> distrax.Distribution:
        """p(. | obs), the frozen reference's Gaussian (gradient stopped)."""
        return self.reference.apply({"params": jax.lax.stop_gradient(reference_params)}, obs)

    def q_values(self, critic_params, obs, actions) -> jax.Array:
        """(num_qs, B)."""
        return self.critic.apply({"params": critic_params}, obs, actions)

    def features(self, critic_params, obs) -> jax.Array:
        """What the actor and the value network read: the critic's shared trunk features
        (gradient stopped), or the observation itself when each has its own trunk."""
        if not self.critic.shared_trunk:
            return obs
        return jax.lax.stop_gradient(
            self.critic.apply({"params": critic_params}, obs, method="encode"))

    def values(self, value_params, critic_params, obs) -> jax.Array:
        """V(obs), (B,) (networks with a value network)."""
        return self.value.apply({"params": value_params}, self.features(critic_params, obs))


class SACState(flax.struct.PyTreeNode):
    """Everything a resumed run needs (saved whole in each checkpoint)."""

    step: jax.Array  # int32: gradient updates applied
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: jax.Array  # float32 scalar
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    rng: jax.Array  # typed key for sampling and augmentation
    reference_params: Any = None  # the frozen reference policy's (``Networks.reference``)


def optimizers(hp: Hyperparams) -> tuple[optax.GradientTransformation, ...]:
    """Adam for the actor, the critic and log(alpha)."""
    return optax.adam(hp.actor_lr), optax.adam(hp.critic_lr), optax.adam(hp.alpha_lr)


def init_params(networks: Networks, rng: jax.Array, observation: jax.Array) -> tuple[Any, Any]:
    """Fresh (actor, critic) parameters for observations shaped like ``observation`` (one)."""
    actor_rng, critic_rng = jax.random.split(rng)
    obs = jnp.asarray(observation)[None]
    actions = jnp.zeros((1, networks.action_dim), jnp.float32)
    critic_params = networks.critic.init(critic_rng, obs, actions)["params"]
    actor_input = obs
    if not networks.actor.own_trunk:  # it reads the critic's shared trunk features
        actor_input = networks.critic.apply({"params": critic_params}, obs, method="encode")
    actor_params = networks.actor.init(actor_rng, actor_input)["params"]
    return actor_params, critic_params


def init_state(networks: Networks, hp: Hyperparams, rng: jax.Array, observation: jax.Array,
               actor_params: Any = None) -> SACState:
    """Step 0 (``actor_params``: start the actor from these, e.g. behaviour cloning's)."""
    init_rng, rng = jax.random.split(rng)
    fresh_actor, critic_params = init_params(networks, init_rng, observation)
    actor_params = fresh_actor if actor_params is None else actor_params
    log_alpha = jnp.log(jnp.asarray(hp.init_alpha, jnp.float32))
    actor_opt, critic_opt, alpha_opt = optimizers(hp)
    reference_params = None
    if networks.reference is not None:  # set from the pretrained model by the caller
        reference_params = networks.reference.init(
            jax.random.fold_in(init_rng, 1), jnp.asarray(observation)[None])["params"]
    return SACState(step=jnp.zeros((), jnp.int32), actor_params=actor_params,
                    critic_params=critic_params, target_critic_params=critic_params,
                    log_alpha=log_alpha, actor_opt_state=actor_opt.init(actor_params),
                    critic_opt_state=critic_opt.init(critic_params),
                    alpha_opt_state=alpha_opt.init(log_alpha), rng=rng,
                    reference_params=reference_params)


def target_entropy(networks: Networks, hp: Hyperparams) -> float:
    return -float(networks.action_dim) if hp.target_entropy is None else hp.target_entropy


def regularized_log_prob(actions, log_prob, hp: Hyperparams) -> jax.Array:
    """``log pi(a | s)``, minus ``log N(a; 0, I)`` with the KL regularizer (docstring)."""
    if hp.regularizer == "entropy":
        return log_prob
    base = -0.5 * jnp.sum(jnp.square(actions) + jnp.log(2 * jnp.pi), axis=-1)
    return log_prob - base


def regularizer(dist, actions, log_prob, obs, reference_params, networks: Networks,
                hp: Hyperparams) -> jax.Array:
    """What ``alpha`` multiplies, per sample (B,): ``regularized_log_prob``, or with
    ``kl_reference`` the closed-form ``KL(pi(. | s) || p(. | s))`` (module docstring)."""
    if hp.regularizer != "kl_reference":
        return regularized_log_prob(actions, log_prob, hp)
    return gaussian(dist).kl_divergence(networks.reference_policy(reference_params, obs))


def augment(key, obs, networks: Networks, hp) -> jax.Array:
    """Images randomly shifted by up to ``hp.augment_pad`` pixels (others unchanged)."""
    if networks.image_obs and hp.augment_pad:
        return random_crop(key, obs, hp.augment_pad)
    return obs


def critic_loss(critic_params, state: SACState, batch: Batch, obs, next_obs, key,
                networks: Networks, hp: Hyperparams) -> tuple[jax.Array, Metrics]:
    """L_Q (module docstring) and its diagnostics."""
    alpha = jnp.exp(state.log_alpha)
    next_dist = networks.policy(state.actor_params, state.critic_params, next_obs)
    next_actions, next_log_prob = next_dist.sample_and_log_prob(seed=key)
    next_log_prob = regularizer(next_dist, next_actions, next_log_prob, next_obs,
                                state.reference_params, networks, hp)
    next_q = networks.q_values(state.target_critic_params, next_obs, next_actions).min(0)
    not_done = 1.0 - batch["terminated"].astype(jnp.float32)
    discount = batch.get("discounts", hp.discount)  # n-step batches carry gamma^m
    target = (hp.reward_scale * batch["rewards"]
              + discount * not_done * (next_q - alpha * next_log_prob))
    target = jax.lax.stop_gradient(target)
    q = networks.q_values(critic_params, obs, batch["actions"])
    loss = jnp.mean(jnp.square(q - target), axis=-1).sum()
    metrics = {"critic_loss": loss, "q": q.mean(), "target_q": target.mean(),
               "td_error": jnp.mean(jnp.abs(q - target))}
    return loss, {**metrics, **rewarded_q(q.min(0), batch["rewards"])}


def rewarded_q(q, rewards) -> Metrics:
    """Does the critic tell rewarded transitions from the rest? Mean Q of each; NaN when
    the batch holds none (the training loop averages with nanmean)."""
    rewarded = rewards > 0
    return {"q_rewarded": _masked_mean(q, rewarded), "q_unrewarded": _masked_mean(q, ~rewarded)}


def _masked_mean(x, mask) -> jax.Array:
    count = jnp.sum(mask)
    return jnp.where(count > 0, jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(count, 1), jnp.nan)


def actor_loss(actor_params, critic_params, log_alpha, obs, key, networks: Networks,
               hp: Hyperparams, reference_params=None
               ) -> tuple[jax.Array, tuple[jax.Array, jax.Array, Metrics]]:
    """L_pi; per sample the regularized and the plain log pi(a~ | s); how far the policy's
    Gaussian has moved (mean |mu| and mean sigma over dimensions: 0 and 1 at PARROT's init)."""
    dist = networks.policy(actor_params, critic_params, obs)
    actions, log_prob = dist.sample_and_log_prob(seed=key)
    regularized = regularizer(dist, actions, log_prob, obs, reference_params, networks, hp)
    q = networks.q_values(critic_params, obs, actions).min(0)
    loss = jnp.mean(jnp.exp(log_alpha) * regularized - q)
    return loss, (regularized, log_prob, policy_movement(dist))


def policy_movement(dist) -> Metrics:
    """How far the policy's Gaussian has moved from N(0, I) (PARROT's init): mean |mu| and
    mean sigma over dimensions, and KL(N(mu, sigma^2) || N(0, I)) = 1/2 sum (mu^2 + sigma^2
    - 1 - 2 log sigma), averaged over the batch (gradient stopped)."""
    base = gaussian(dist)
    mean, std = base.mean(), base.stddev()
    kl = 0.5 * jnp.sum(jnp.square(mean) + jnp.square(std) - 1.0 - 2.0 * jnp.log(std), -1)
    return jax.lax.stop_gradient({"policy_abs_mean": jnp.mean(jnp.abs(mean)),
                                  "policy_std": jnp.mean(std), "policy_kl": jnp.mean(kl)})


def update_step(state: SACState, batch: Batch, *, networks: Networks,
                hp: Hyperparams) -> tuple[SACState, Metrics]:
    """One critic, actor, temperature and target update (module docstring)."""
    actor_opt, critic_opt, alpha_opt = optimizers(hp)
    rng, obs_key, next_key, critic_key, actor_key = jax.random.split(state.rng, 5)
    obs = augment(obs_key, batch["observations"], networks, hp)
    next_obs = augment(next_key, batch["next_observations"], networks, hp)

    grads, metrics = jax.grad(critic_loss, has_aux=True)(
        state.critic_params, state, batch, obs, next_obs, critic_key, networks, hp)
    updates, critic_opt_state = critic_opt.update(grads, state.critic_opt_state,
                                                  state.critic_params)
    critic_params = optax.apply_updates(state.critic_params, updates)
    metrics["critic_grad_norm"] = optax.tree.norm(grads)

    frozen_critic = jax.lax.stop_gradient(critic_params)
    (loss, (regularized, log_prob, moved)), grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor_params, frozen_critic, state.log_alpha, obs, actor_key, networks, hp,
        state.reference_params)
    updates, actor_opt_state = actor_opt.update(grads, state.actor_opt_state, state.actor_params)
    actor_params = optax.apply_updates(state.actor_params, updates)

    entropy_gap = jax.lax.stop_gradient(regularized + target_entropy(networks, hp))
    alpha_loss, alpha_grad = jax.value_and_grad(
        lambda log_alpha: -jnp.mean(log_alpha * entropy_gap))(state.log_alpha)
    updates, alpha_opt_state = alpha_opt.update(alpha_grad, state.alpha_opt_state,
                                                state.log_alpha)
    log_alpha = optax.apply_updates(state.log_alpha, updates)

    step = state.step + 1
    target = update_target(step, critic_params, state.target_critic_params, hp)
    metrics.update(actor_loss=loss, alpha_loss=alpha_loss, alpha=jnp.exp(state.log_alpha),
                   entropy=-jnp.mean(log_prob), reward=jnp.mean(batch["rewards"]),
                   regularizer_gap=jnp.mean(entropy_gap), **moved)
    if hp.regularizer != "entropy":
        metrics["kl"] = jnp.mean(regularized)
    new_state = state.replace(step=step, actor_params=actor_params, critic_params=critic_params,
                              target_critic_params=target, log_alpha=log_alpha,
                              actor_opt_state=actor_opt_state, critic_opt_state=critic_opt_state,
                              alpha_opt_state=alpha_opt_state, rng=rng)
    return new_state, metrics


def update_target(step: jax.Array, critic_params: Any, target_params: Any, hp) -> Any:
    """Qbar after update ``step``: a hard copy every ``target_update_period`` updates, or
    Polyak averaging at rate ``tau`` (``hp.target_update``)."""
    if hp.target_update == "hard":
        copy = step % hp.target_update_period == 0
        return jax.tree.map(lambda new, old: jnp.where(copy, new, old), critic_params,
                            target_params)
    return optax.incremental_update(critic_params, target_params, hp.tau)


def update_steps(state: SACState, batches: Batch, **kwargs) -> tuple[SACState, Metrics]:
    """``update_step`` over K stacked batches (leading axis K) in one ``lax.scan``
    (``parrot_jax.fused``); metrics come back stacked, shape (K,)."""
    return fused.scan_steps(lambda s, b: update_step(s, b, **kwargs), state, batches)
