"""Implicit Q-learning (Kostrikov, Nair and Levine 2022) as pure functions of a state and
a batch: offline RL that never queries Q at actions outside the data.

One update on a batch ``(s, a, r, s', d)``, in the public code's order:

    value:   u = min_i Qbar_i(s, a) - V(s);   L_V = mean |tau - 1(u < 0)| u^2
             (the expectile ``tau`` of Q over the data's actions: tau = 0.5 is the mean,
             tau -> 1 the maximum over actions the data holds)
    actor:   w = min(exp(beta * (min_i Qbar_i(s, a) - V(s))), max_weight)   (the new V)
             L_pi = -mean w log pi(a | s)       (``parrot_jax.agents.awr``)
    critic:  y = c r + gamma (1 - d) V(s');  L_Q = sum_i mean (Q_i(s, a) - y)^2  (the new V)
    target:  Qbar <- tau_p Q + (1 - tau_p) Qbar (Polyak; or a hard copy every period)

``beta`` (``inverse_temperature``; the public code's ``temperature``) is 3 for MuJoCo, 10
for AntMaze and 0.5 for Kitchen/Adroit in the paper. With a shared trunk, V and the actor
read the critic's trunk features under ``stop_gradient`` (the critic trains the trunk).
Images are randomly shifted (``augment_pad``) independently for ``s`` and ``s'``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from parrot_jax import fused
from parrot_jax.agents import awr, sac


@dataclasses.dataclass(frozen=True)
class Hyperparams(awr.Hyperparams):
    """IQL's settings (the paper's MuJoCo values by default)."""

    value_lr: float = 3e-4
    expectile: float = 0.7  # tau (0.9 on AntMaze)
    inverse_temperature: float = 3.0  # beta: w = exp(beta * advantage)
    max_weight: float = 100.0  # exp-advantage weights are clipped here

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"expectile={self.expectile}; expected a number in (0, 1)")
        for name in ("value_lr", "max_weight"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)}; expected a positive number")
        if not self.inverse_temperature >= 0:
            raise ValueError(f"inverse_temperature={self.inverse_temperature}; expected a "
                             "number >= 0 (0: behaviour cloning)")


def init_state(networks: sac.Networks, hp: Hyperparams, rng: jax.Array, observation,
               actor_params=None) -> awr.State:
    if networks.value is None:
        raise ValueError("IQL needs networks with a value network (sac.Networks(value=...))")
    return awr.init_state(networks, hp, rng, observation, actor_params, hp.value_lr)


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """mean |tau - 1(u < 0)| u^2: minimised over a constant v by the tau-expectile of
    ``q`` when ``diff = q - v``."""
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return jnp.mean(weight * jnp.square(diff))


def advantage_weights(advantages: jax.Array, hp: Hyperparams) -> jax.Array:
    """min(exp(beta * A), max_weight)."""
    return jnp.minimum(jnp.exp(hp.inverse_temperature * advantages), hp.max_weight)


def update_step(state: awr.State, batch: sac.Batch, *, networks: sac.Networks,
                hp: Hyperparams) -> tuple[awr.State, sac.Metrics]:
    """One value, actor, critic and target update (module docstring)."""
    rng, obs_key, next_key = jax.random.split(state.rng, 3)
    obs = sac.augment(obs_key, batch["observations"], networks, hp)
    next_obs = sac.augment(next_key, batch["next_observations"], networks, hp)
    actions = batch["actions"]
    target_q = networks.q_values(state.target_critic_params, obs, actions).min(0)

    def value_loss(value_params):
        v = networks.values(value_params, state.critic_params, obs)
        return expectile_loss(target_q - v, hp.expectile), v

    (v_loss, v), grads = jax.value_and_grad(value_loss, has_aux=True)(state.value_params)
    value_params, value_opt_state = awr.apply(optax.adam(hp.value_lr), grads,
                                              state.value_opt_state, state.value_params)

    new_v = networks.values(value_params, state.critic_params, obs)
    advantages = target_q - new_v
    weights = advantage_weights(advantages, hp)
    (a_loss, actor_metrics), grads = jax.value_and_grad(
        awr.weighted_log_likelihood_loss, has_aux=True)(
        state.actor_params, state.critic_params, obs, actions, weights, networks)
    actor_params, actor_opt_state = awr.apply(optax.adam(hp.actor_lr), grads,
                                              state.actor_opt_state, state.actor_params)

    next_v = networks.values(value_params, state.critic_params, next_obs)
    targets = awr.bootstrap(batch, next_v, hp)
    grads, metrics = jax.grad(awr.td_loss, has_aux=True)(state.critic_params, obs, actions,
                                                         targets, batch["rewards"], networks)
    critic_params, critic_opt_state = awr.apply(optax.adam(hp.critic_lr), grads,
                                                state.critic_opt_state, state.critic_params)
    step = state.step + 1
    target = sac.update_target(step, critic_params, state.target_critic_params, hp)
    metrics.update(value_loss=v_loss, value=jnp.mean(v), actor_loss=a_loss,
                   advantage=jnp.mean(advantages), weight=jnp.mean(weights),
                   weight_max=jnp.max(weights), reward=jnp.mean(batch["rewards"]),
                   critic_grad_norm=optax.tree.norm(grads), **actor_metrics)
    return state.replace(step=step, actor_params=actor_params, critic_params=critic_params,
                         target_critic_params=target, value_params=value_params,
                         actor_opt_state=actor_opt_state, critic_opt_state=critic_opt_state,
                         value_opt_state=value_opt_state, rng=rng), metrics


def update_steps(state: awr.State, batches: sac.Batch, **kwargs):
    """``update_step`` over K stacked batches in one ``lax.scan`` (``parrot_jax.fused``)."""
    return fused.scan_steps(lambda s, b: update_step(s, b, **kwargs), state, batches)
