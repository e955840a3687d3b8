"""Behaviour cloning of SAC's actor on the prior dataset (the BC-SAC baseline's first stage).

The policy maximises the likelihood of the dataset's actions with an entropy bonus:

    L(theta) = -1/B sum_i [ log pi_theta(a_i | s_i) + beta * H(pi_theta(. | s_i)) ],

where ``H`` is estimated by ``-log pi(a~ | s)`` at a reparameterised sample ``a~`` (the
tanh-Gaussian has no closed-form entropy). Data actions are clipped to
``[-max_abs_action, max_abs_action]``, where ``atanh`` is finite. With a shared trunk the
critic's trunk is trained with the actor here (its features are what the actor reads)
and handed to the critic; SAC fine-tuning then continues from both.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import jax
import jax.numpy as jnp
import optax
import tqdm

from parrot_jax.agents import sac
from parrot_jax.networks.augment import random_crop


def bc_loss(params, batch, key, networks: sac.Networks, entropy_weight: float,
            max_abs_action: float, augment_pad: int) -> tuple[jax.Array, dict]:
    crop_key, sample_key = jax.random.split(key)
    obs = batch["observations"]
    if networks.image_obs and augment_pad:
        obs = random_crop(crop_key, obs, augment_pad)
    if networks.critic.shared_trunk:
        obs = networks.critic.apply({"params": params["critic"]}, obs, method="encode")
    dist = networks.actor.apply({"params": params["actor"]}, obs)
    actions = jnp.clip(batch["actions"], -max_abs_action, max_abs_action)
    nll = -jnp.mean(dist.log_prob(actions))
    _, sample_log_prob = dist.sample_and_log_prob(seed=sample_key)
    entropy = -jnp.mean(sample_log_prob)
    loss = nll - entropy_weight * entropy
    return loss, {"bc/loss": loss, "bc/nll": nll, "bc/entropy": entropy}


@functools.partial(jax.jit, static_argnames=("networks", "learning_rate", "entropy_weight",
                                             "max_abs_action", "augment_pad"),
                   donate_argnums=(0, 1))
def _bc_step(params, opt_state, batch, key, *, networks, learning_rate, entropy_weight,
             max_abs_action, augment_pad):
    optimizer = optax.adam(learning_rate)
    grads, metrics = jax.grad(bc_loss, has_aux=True)(params, batch, key, networks,
                                                     entropy_weight, max_abs_action, augment_pad)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics


def pretrain(networks: sac.Networks, actor_params: Any, critic_params: Any, sampler, *,
             steps: int, learning_rate: float, entropy_weight: float, seed: int,
             augment_pad: int = 4, max_abs_action: float = 0.999,
             log_every: int = 100, progress: bool = True) -> tuple[Any, Any, list[dict]]:
    """Fits the actor (and, with a shared trunk, the critic's trunk) by behaviour cloning.

    ``sampler.batch(k)`` gives batch ``k`` (``parrot_jax.data.sampling.BatchSampler``).
    Returns ``(actor_params, critic_params, metrics every log_every steps)``.
    """
    if steps < 1:
        raise ValueError(f"behaviour cloning needs steps >= 1, got {steps}")
    optimizer = optax.adam(learning_rate)
    params = {"actor": actor_params}
    if networks.critic.shared_trunk:
        params["critic"] = critic_params
    opt_state = optimizer.init(params)
    key = jax.random.key(seed)
    history = []
    for k in tqdm.trange(steps, desc="behaviour cloning", disable=not progress,
                         dynamic_ncols=True):
        batch = sampler.batch(k)
        batch = {"observations": batch["observations"], "actions": batch["actions"]}
        params, opt_state, metrics = _bc_step(
            params, opt_state, batch, jax.random.fold_in(key, k), networks=networks,
            learning_rate=learning_rate, entropy_weight=entropy_weight, max_abs_action=max_abs_action,
            augment_pad=augment_pad)
        if (k + 1) % log_every == 0 or k + 1 == steps:
            row = {"step": k + 1, **{name: float(v) for name, v in metrics.items()}}
            history.append(row)
            logging.info("behaviour cloning step %d: nll %.3f entropy %.3f", k + 1,
                         row["bc/nll"], row["bc/entropy"])
    return params["actor"], params.get("critic", critic_params), history
