"""Actor, twin critic and value network for SAC, IQL and AWAC, from images (the paper's conv trunk) or from vectors.

Trunk: for images (uint8, scaled to [0, 1] on the device) the paper's three 3x3
convolutions of 16 channels with a 2x2 max-pool after the first two, flattened
(48x48 -> 12 * 12 * 16 = 2304 features); for vectors the observation itself. The heads
are MLPs on the trunk features (the critic's on ``[features, action]``); the paper's
heads are 1024-512-256.

Trunks are separate (the paper: one for the actor and one for each Q) or shared: one
trunk inside the critic, trained by the critic loss only, whose features the actor reads
through ``stop_gradient`` (as in SAC-AE / DrQ). The shared trunk can instead be an image
encoder of another architecture (``Critic.encoder``: the behavioral prior's, whose
trained parameters the agent copies in), and can be frozen (``freeze_trunk``: its
features under ``stop_gradient``, so no loss moves it). The critic is an ensemble of ``num_qs``
Q-networks built with ``nn.vmap`` (one batched computation, independent parameters).

The actor outputs a diagonal Gaussian ``N(mu(s), diag(sigma(s)^2))`` with
``log sigma`` clipped to ``[log_std_min, log_std_max]`` and, optionally, ``mu`` softly
bounded by ``mean_bound * tanh(mu_raw / mean_bound)``; its last layer starts at zero, so
at initialisation every state maps to ``N(0, I)``. ``squash=True`` returns the
tanh-transformed distribution (actions in (-1, 1), log-density with the tanh Jacobian).
"""

from __future__ import annotations

from typing import Any, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from parrot_jax.networks.encoder import ConvEncoder, conv_features
from parrot_jax.networks.mlp import MLP


class ConvTrunk(nn.Module):
    """uint8 (or [0, 1] float) images (..., H, W, C) -> flat features (..., F)."""

    channels: Sequence[int] = (16, 16, 16)
    pooled: int = 2  # 2x2 max-pool after this many of the first convolutions
    dtype: Any = jnp.float32  # the convolutions' compute type (features come back float32)

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        return conv_features(images, self.channels, self.pooled, dtype=self.dtype)


class Flatten(nn.Module):
    """The vector-observation trunk: the observation as float32 features."""

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return obs.astype(jnp.float32)


# ``network.trunk_dtype`` -> the conv trunk's compute type
TRUNK_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def trunk_class(image_obs: bool, channels: Sequence[int], dtype: str = "float32"):
    """(module class, its fields): the conv trunk for images, ``Flatten`` for vectors."""
    if dtype not in TRUNK_DTYPES:
        raise ValueError(f"trunk dtype {dtype!r}; expected one of {tuple(TRUNK_DTYPES)}")
    if image_obs:
        return ConvTrunk, {"channels": tuple(channels), "dtype": TRUNK_DTYPES[dtype]}
    return Flatten, {}


def make_trunk(image_obs: bool, channels: Sequence[int], name: str | None = None,
               dtype: str = "float32") -> nn.Module:
    cls, fields = trunk_class(image_obs, channels, dtype)
    return cls(**fields, name=name)


class QNetwork(nn.Module):
    """Q(s, a): own trunk (unless given features), MLP on [features, action] -> scalar."""

    hidden: Sequence[int]
    trunk: nn.Module | None  # None: the input is trunk features already

    @nn.compact
    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        features = obs if self.trunk is None else self.trunk(obs)
        x = jnp.concatenate([features, actions.astype(jnp.float32)], axis=-1)
        return MLP(tuple(self.hidden), 1, name="head")(x)[..., 0]


class FrozenSample(nn.Module):
    """``a = flow.sample(z, s)`` of a frozen flow: its parameters (under this module's
    ``flow``) are read through ``stop_gradient``, so a loss's gradient reaches ``z`` but
    never the flow (Adam leaves parameters with zero gradients where they are)."""

    flow: nn.Module

    @nn.compact
    def __call__(self, z: jax.Array, images: jax.Array) -> jax.Array:
        return self.flow.sample(z, images)


CRITIC_INPUTS = ("z", "action", "both")


class Critic(nn.Module):
    """``num_qs`` independent Q-networks: (B, ...), (B, A) -> (num_qs, B).

    The heads are one ``nn.vmap`` ensemble (parameters stacked on a leading axis of size
    ``num_qs``, under ``qs``). ``shared_trunk``: one trunk (``trunk``, see ``encode``) feeds
    every head; otherwise each head has its own (``trunk_0``, ``trunk_1``, ...), run one
    after the other: vmapped convolutions become one grouped convolution, whose kernel
    gradient XLA:CPU computes slowly (a paper-size SAC update took 2.9x as long; README
    "Performance"). ``vmap_trunks`` makes them one ``nn.vmap`` anyway (parameters stacked
    under ``trunks``), which a GPU runs faster (the paper pair's forward + backward 0.78 ms
    against 1.21 on an H200; README "Measured on an H200").
    """

    hidden: Sequence[int]
    image_obs: bool
    channels: Sequence[int] = (16, 16, 16)
    num_qs: int = 2
    shared_trunk: bool = False
    encoder: ConvEncoder | None = None  # the shared trunk, if not the conv trunk (params
    # under "encoder")
    freeze_trunk: bool = False  # the shared trunk's features under stop_gradient
    # PARROT's critic input (``parrot.critic_input``): with ``action_map`` (the frozen
    # prior's flow, its parameters under ``action_map``, copied in from the prior by
    # ``agent.with_pretrained_trunk``) the heads read the env action ``a = f(z; s)``
    # ("action") or ``[z, a]`` ("both") instead of ``z``: ``Q(s, f(z; s))`` is a function
    # of ``(s, z)`` with the flow's state-dependent map given rather than learnt.
    action_map: nn.Module | None = None
    action_input: str = "z"
    trunk_dtype: str = "float32"  # the conv trunks' compute type (TRUNK_DTYPES)
    vmap_trunks: bool = False  # the heads' own trunks as one vmapped module (a GPU's layout)

    def setup(self):
        if self.action_input not in CRITIC_INPUTS:
            raise ValueError(f"critic input {self.action_input!r}; expected one of "
                             f"{CRITIC_INPUTS}")
        if (self.action_input != "z") != (self.action_map is not None):
            raise ValueError(f"critic input {self.action_input!r} needs an action map (the "
                             "prior's flow) exactly when it is not 'z'")
        if self.action_map is not None:
            self.frozen_map = nn.map_variables(
                FrozenSample, "params", trans_in_fn=jax.lax.stop_gradient, init=True)(
                    self.action_map)
        per_q_features = 0 if not self.shared_trunk else None
        self.qs = nn.vmap(QNetwork, variable_axes={"params": 0}, split_rngs={"params": True},
                          in_axes=(per_q_features, None), out_axes=0,
                          axis_size=self.num_qs)(tuple(self.hidden), None)
        if (self.encoder is not None or self.freeze_trunk) and not self.shared_trunk:
            raise ValueError("an encoder trunk or a frozen trunk needs shared_trunk=True")
        if self.vmap_trunks and self.shared_trunk:
            raise ValueError("vmap_trunks stacks each head's own trunk: it needs "
                             "shared_trunk=False")
        if self.shared_trunk and self.encoder is None:
            self.trunk = make_trunk(self.image_obs, self.channels, dtype=self.trunk_dtype)
        elif self.vmap_trunks:  # one module, its parameters stacked: (num_qs, B, F) features
            cls, fields = trunk_class(self.image_obs, self.channels, self.trunk_dtype)
            self.trunks = nn.vmap(cls, variable_axes={"params": 0},
                                  split_rngs={"params": True}, in_axes=None, out_axes=0,
                                  axis_size=self.num_qs)(**fields)
        else:
            self.trunks = [make_trunk(self.image_obs, self.channels, f"trunk_{i}",
                                      self.trunk_dtype)
                           for i in range(self.num_qs)]

    def encode(self, obs: jax.Array) -> jax.Array:
        """The shared trunk's features (only with ``shared_trunk``)."""
        features = (self.trunk if self.encoder is None else self.encoder)(obs)
        return jax.lax.stop_gradient(features) if self.freeze_trunk else features

    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        if self.action_map is not None:
            env_actions = self.frozen_map(actions, obs)
            actions = (env_actions if self.action_input == "action"
                       else jnp.concatenate([actions, env_actions], axis=-1))
        if self.shared_trunk:
            return self.qs(self.encode(obs), actions)
        if self.vmap_trunks:
            return self.qs(self.trunks(obs), actions)
        return self.qs(jnp.stack([trunk(obs) for trunk in self.trunks]), actions)


class Value(nn.Module):
    """V(s) -> (B,): own trunk (unless given features), MLP -> scalar (IQL's value)."""

    hidden: Sequence[int]
    image_obs: bool
    channels: Sequence[int] = (16, 16, 16)
    own_trunk: bool = True  # False: the input is the critic's shared trunk features
    trunk_dtype: str = "float32"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        features = (make_trunk(self.image_obs, self.channels, "trunk", self.trunk_dtype)(obs)
                    if self.own_trunk
                    else obs)
        return MLP(tuple(self.hidden), 1, name="head")(features)[..., 0]


class Actor(nn.Module):
    """pi(. | s): a diagonal Gaussian, optionally tanh-squashed (module docstring)."""

    action_dim: int
    hidden: Sequence[int]
    image_obs: bool
    channels: Sequence[int] = (16, 16, 16)
    own_trunk: bool = True  # False: the input is the critic's shared trunk features
    squash: bool = True
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    mean_bound: float | None = None  # soft bound b: mean = b * tanh(raw / b) (0 at init)
    trunk_dtype: str = "float32"

    @nn.compact
    def __call__(self, obs: jax.Array) -> distrax.Distribution:
        features = (make_trunk(self.image_obs, self.channels, "trunk", self.trunk_dtype)(obs)
                    if self.own_trunk
                    else obs)
        out = MLP(tuple(self.hidden), 2 * self.action_dim, zero_init_output=True,
                  name="head")(features)
        mean, log_std = jnp.split(out, 2, axis=-1)
        if self.mean_bound is not None:
            mean = self.mean_bound * jnp.tanh(mean / self.mean_bound)
        log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
        base = distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))
        if self.squash:
            return distrax.Transformed(base, distrax.Block(distrax.Tanh(), 1))
        return base


def gaussian(distribution: distrax.Distribution) -> distrax.Distribution:
    """The policy's Gaussian (before the tanh when squashed). ``MultivariateNormalDiag`` is
    itself a ``Transformed`` (of a standard normal), so it is tested for first."""
    if isinstance(distribution, distrax.MultivariateNormalDiag):
        return distribution
    return distribution.distribution


def mode(distribution: distrax.Distribution) -> jax.Array:
    """The deterministic action: the Gaussian mean (through tanh when squashed)."""
    base = gaussian(distribution)
    if base is distribution:
        return base.mean()
    return distribution.bijector.forward(base.mean())
