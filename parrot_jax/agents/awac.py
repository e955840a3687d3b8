"""Advantage-weighted actor-critic (Nair et al. 2020) as pure functions of a state and a
batch: offline pretraining and online fine-tuning with the same update.

One update on a batch ``(s, a, r, s', d)``:

    critic:  y = c r + gamma (1 - d) min(min_i Qbar_i(s', a'), q_max),  a' ~ pi(. | s')
             (no entropy; ``q_max`` optional)
             L_Q = sum_i mean (Q_i(s, a) - y)^2
    actor:   A(s, a) = min_i Q_i(s, a) - min_i Q_i(s, a~),  a~ ~ pi(. | s)  (one sample
             estimates V(s) = E_pi Q; the critic just updated)
             w = B softmax_batch(min(A, A_max) / lambda)    (sums to B over the batch;
                                                             ``A_max`` optional)
             L_pi = -mean w log pi(a | s)                   (``parrot_jax.agents.awr``)
    target:  Qbar <- tau Q + (1 - tau) Qbar (Polyak; or a hard copy every period)

``lambda`` (``temperature``) is 2 in jaxrl's config "from the official implementation"
and 1 (swept to 0.5) in rlkit's; smaller lambda trusts the critic more.

Two optional stabilisers from rlkit's AWAC, both off by default (jaxrl has neither):
``max_advantage`` (rlkit's ``clip_score``, 0.5 in its hand tasks) caps how far one
transition can outweigh the rest, and ``q_max`` bounds the bootstrapped value (rlkit clamps
its critic at 0 where rewards are <= 0; the bound is ``max_r c / (1 - gamma)``). Without
them, on Pendulum-v1 the weights concentrated on a few transitions of each batch (the
largest weight reached 100 of B = 256 by 7,000 offline updates), the actor's likelihood
of the data collapsed, and the critic, bootstrapping from actions the data does not hold,
diverged upward (``docs/offline_rl.md``).

Images are randomly shifted (``augment_pad``) independently for ``s`` and ``s'``; with a
shared trunk the actor reads the critic's trunk features under ``stop_gradient``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from parrot_jax import fused
from parrot_jax.agents import awr, sac


@dataclasses.dataclass(frozen=True)
class Hyperparams(awr.Hyperparams):
    """AWAC's settings (jaxrl's defaults)."""

    temperature: float = 2.0  # lambda: w = B softmax(A / lambda)
    max_advantage: float | None = None  # A_max: A clipped here before the softmax
    q_max: float | None = None  # bootstrapped values clipped here (in scaled reward units)

    def __post_init__(self):
        super().__post_init__()
        if not self.temperature > 0:
            raise ValueError(f"temperature={self.temperature}; expected a positive number")
        for name in ("max_advantage", "q_max"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name}={value}; expected a finite number or None (off)")


def init_state(networks: sac.Networks, hp: Hyperparams, rng: jax.Array, observation,
               actor_params=None) -> awr.State:
    return awr.init_state(networks, hp, rng, observation, actor_params)


def advantage_weights(advantages: jax.Array, hp: Hyperparams) -> jax.Array:
    """B softmax(min(A, A_max) / lambda) over the batch: mean 1, so lambda -> inf is
    behaviour cloning; with A_max a transition outweighs one of advantage A by at most
    exp((A_max - A) / lambda)."""
    if hp.max_advantage is not None:
        advantages = jnp.minimum(advantages, hp.max_advantage)
    return advantages.shape[0] * jax.nn.softmax(advantages / hp.temperature)


def update_step(state: awr.State, batch: sac.Batch, *, networks: sac.Networks,
                hp: Hyperparams) -> tuple[awr.State, sac.Metrics]:
    """One critic, actor and target update (module docstring)."""
    rng, obs_key, next_key, next_action_key, value_key = jax.random.split(state.rng, 5)
    obs = sac.augment(obs_key, batch["observations"], networks, hp)
    next_obs = sac.augment(next_key, batch["next_observations"], networks, hp)
    actions = batch["actions"]

    next_actions = networks.policy(state.actor_params, state.critic_params,
                                   next_obs).sample(seed=next_action_key)
    next_q = networks.q_values(state.target_critic_params, next_obs, next_actions).min(0)
    if hp.q_max is not None:
        next_q = jnp.minimum(next_q, hp.q_max)
    targets = awr.bootstrap(batch, next_q, hp)
    grads, metrics = jax.grad(awr.td_loss, has_aux=True)(state.critic_params, obs, actions,
                                                         targets, batch["rewards"], networks)
    critic_params, critic_opt_state = awr.apply(optax.adam(hp.critic_lr), grads,
                                                state.critic_opt_state, state.critic_params)
    metrics["critic_grad_norm"] = optax.tree.norm(grads)

    policy_actions = networks.policy(state.actor_params, critic_params,
                                     obs).sample(seed=value_key)
    q = networks.q_values(critic_params, obs, actions).min(0)
    v = networks.q_values(critic_params, obs, policy_actions).min(0)
    advantages = q - v
    weights = advantage_weights(advantages, hp)
    (a_loss, actor_metrics), grads = jax.value_and_grad(
        awr.weighted_log_likelihood_loss, has_aux=True)(
        state.actor_params, critic_params, obs, actions, weights, networks)
    actor_params, actor_opt_state = awr.apply(optax.adam(hp.actor_lr), grads,
                                              state.actor_opt_state, state.actor_params)
    step = state.step + 1
    target = sac.update_target(step, critic_params, state.target_critic_params, hp)
    metrics.update(actor_loss=a_loss, advantage=jnp.mean(advantages),
                   weight_max=jnp.max(weights), reward=jnp.mean(batch["rewards"]),
                   **actor_metrics)
    return state.replace(step=step, actor_params=actor_params, critic_params=critic_params,
                         target_critic_params=target, actor_opt_state=actor_opt_state,
                         critic_opt_state=critic_opt_state, rng=rng), metrics


def update_steps(state: awr.State, batches: sac.Batch, **kwargs):
    """``update_step`` over K stacked batches in one ``lax.scan`` (``parrot_jax.fused``)."""
    return fused.scan_steps(lambda s, b: update_step(s, b, **kwargs), state, batches)
