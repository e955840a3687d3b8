"""The first step's value of the prior's episodes, learned without TD (no flags:
``experiments.first_step_critic`` is the binary).

``collect`` keeps the first image, ``z`` and outcome of the prior's episodes (fresh ``z``
at every step); ``critic_input`` maps ``(images, z)`` to what a critic reads as its action
(``z``, or the frozen prior's ``f(z; s)``); ``train_critic`` regresses a SAC critic's
every head on ``1[success]`` from ``(s_0, input_0)``:

    min_theta  E_(s_0, a_0, y) sum_i (Q_theta,i(shift(s_0), a_0) - y)^2,  y = 1[success]

with random shifts of ``augment_pad`` pixels and Adam.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from parrot_jax import io
from parrot_jax.agents import sac
from parrot_jax.flows import evaluate
from parrot_jax.networks.augment import random_crop


class FirstStep:
    """``act_fn`` of the prior with fresh ``z`` that keeps each wave's first images and z."""

    def __init__(self, prior):
        self.prior, self.first, self.starts = prior, False, []

    def reset(self, key):
        del key
        self.first = True

    def __call__(self, obs, key):
        z = np.asarray(jax.random.normal(key, (len(obs), self.prior.action_dim)))
        if self.first:
            self.starts.append((obs.copy(), z))
            self.first = False
        return evaluate.prior_actions(self.prior, obs, z)


def collect(prior, env_id: str, episodes: int, seed: int, num_envs: int, path: str) -> dict:
    """``(images, z, successes)`` of the first step of ``episodes`` prior episodes from env
    seeds ``seed + i``; read from ``path`` when it holds at least as many from that seed."""
    if os.path.exists(path):
        with np.load(path) as data:
            if int(data["seed"]) == seed and len(data["successes"]) >= episodes:
                return {k: data[k][:episodes] for k in ("images", "z", "successes")}
    policy = FirstStep(prior)
    rollouts = evaluate.rollout_success(env_id, policy, episodes, seed, num_envs=num_envs)
    data = {"images": np.concatenate([o for o, _ in policy.starts])[:episodes],
            "z": np.concatenate([z for _, z in policy.starts])[:episodes].astype(np.float32),
            "successes": rollouts.successes}
    io.write_npz(path, seed=seed, **data)
    return data


def critic_input(prior, name: str):
    """``(images, z) -> what the critic reads as its action``: ``z`` itself, or the env
    action ``f(z; s)`` the frozen prior makes of it (in chunks, to bound memory)."""
    if name == "z":
        return lambda images, z: np.asarray(z, np.float32)

    def actions(images, z):
        images, z = np.asarray(images), np.asarray(z, np.float32)
        return np.concatenate([evaluate.prior_actions(prior, images[i:i + 1024], z[i:i + 1024])
                               for i in range(0, len(z), 1024)]).astype(np.float32)
    return actions


def train_critic(networks, images, z, successes, steps: int, batch_size: int,
                 learning_rate: float, augment_pad: int, key):
    """Critic parameters regressed on ``1[success]`` from ``(s_0, z_0)`` (every head)."""
    init_key, key = jax.random.split(key)
    _, params = sac.init_params(networks, init_key, jnp.asarray(images[0]))
    optimizer = optax.adam(learning_rate)
    targets = successes.astype(np.float32)

    @jax.jit
    def update(params, opt_state, obs, actions, y, key):
        def loss(p):
            q = networks.q_values(p, random_crop(key, obs, augment_pad) if augment_pad else obs,
                                  actions)
            return jnp.mean((q - y[None]) ** 2)
        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    opt_state = optimizer.init(params)
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    for i in range(steps):
        idx = rng.integers(0, len(targets), batch_size)
        params, opt_state, _ = update(params, opt_state, images[idx], z[idx], targets[idx],
                                      jax.random.fold_in(key, i))
    return params
