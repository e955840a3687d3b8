"""PyTorch reference of our SAC update (``parrot_jax.agents.sac``), from images or vectors.

Written as a competent PyTorch user would (eager mode, NCHW convolutions, ``torch.nn``
modules, ``torch.optim.Adam``, ``no_grad`` targets, gradients set to ``None``, no host
syncs inside ``update``) with the architecture and the math of ``parrot_jax.agents``, so
that benchmarks compare the same work. One update on ``(s, a, r, s', d)``, in our order:

    augment:     s, s' shifted independently (edge pad, random crop; ``augment_pad``)
    critic:      y = c r + gamma (1 - d) (min_i Qbar_i(s', a') - alpha log pi(a' | s')),
                 a' ~ pi(. | s');  L_Q = sum_i mean (Q_i(s, a) - y)^2
    actor:       L_pi = mean(alpha log pi(a~ | s) - min_i Q_i(s, a~)), a~ ~ pi(. | s),
                 reparameterised, with the critic just updated
    temperature: L_alpha = -mean(log alpha (log pi(a~ | s) + H_target)), with the log alpha
                 of before this update in the two losses above
    target:      hard copy every ``target_update_period`` updates, or Polyak with ``tau``

``regularizer="kl_standard_normal"`` uses ``log pi(a | s) - log N(a; 0, I)`` for ``log pi``.
With a shared trunk the critic owns the one conv trunk and the actor reads its features
detached. Only ``benchmarks/`` and the tests import this module.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from benchmarks.torch_ref.flow import (HALF_LOG_2PI, IMAGE_SHAPE, MLP, ConvTrunk, adam,
                                       conv_output_shape, conv_state, images_to_nchw,
                                       load_state, mlp_state, tanh_log_det)

REGULARIZERS = ("entropy", "kl_standard_normal")
TARGET_UPDATES = ("hard", "polyak")
Batch = Mapping[str, torch.Tensor]  # observations, actions, rewards, next_observations,
# terminated: as our replay buffer's batches, as torch tensors


# --------------------------------------------------------------------------------------
# Augmentation (mirroring parrot_jax.networks.augment)
# --------------------------------------------------------------------------------------

def random_crop(images: torch.Tensor, pad: int = 4, offsets: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirrors ``augment.random_crop``: pad (B, H, W, C) images by ``pad`` pixels with edge
    replication and crop an H x W window at per-image offsets (B, 2) = (row, column) in
    ``[0, 2 pad]`` (drawn uniformly when not given), i.e. shift each image by
    ``offset - pad``. The padded image is never built: the window's pixel (r, c) is the
    input's pixel (clip(r + row - pad), clip(c + column - pad)), one gather on uint8."""
    if pad == 0:
        return images
    batch, height, width, _ = images.shape
    device = images.device
    if offsets is None:
        offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator,
                                device=device)
    rows = (torch.arange(height, device=device) + offsets[:, :1] - pad).clamp_(0, height - 1)
    cols = (torch.arange(width, device=device) + offsets[:, 1:] - pad).clamp_(0, width - 1)
    index = torch.arange(batch, device=device)[:, None, None]
    return images[index, rows[:, :, None], cols[:, None, :]]


# --------------------------------------------------------------------------------------
# Networks (mirroring parrot_jax.agents.networks)
# --------------------------------------------------------------------------------------

def preprocess(obs: torch.Tensor, image_obs: bool) -> torch.Tensor:
    """What the trunks read: images (B, H, W, C) uint8 -> float NCHW in [0, 1]; vectors ->
    float32 (our ``Flatten``). Done once per batch, as XLA does it once for all trunks."""
    return images_to_nchw(obs) if image_obs else obs.to(torch.float32)


def make_trunk(image_obs: bool, channels: Sequence[int], observation_shape: Sequence[int],
               channels_last: bool = True) -> tuple[nn.Module, Any]:
    """(trunk, feature shape): ``ConvTrunk`` for images (feature shape (C, H, W)), the
    identity for vectors (feature shape (D,)). ``channels_last``: see ``ConvTrunk``."""
    if image_obs:
        if len(observation_shape) != 3:
            raise ValueError(f"observation_shape={tuple(observation_shape)}; image "
                             "observations are (H, W, C)")
        return (ConvTrunk(channels, 2, int(observation_shape[-1]), channels_last),
                conv_output_shape(observation_shape, channels, 2))
    if len(observation_shape) != 1:
        raise ValueError(f"observation_shape={tuple(observation_shape)}; vector "
                         "observations are (D,)")
    return nn.Identity(), (int(observation_shape[0]),)


class QNetwork(nn.Module):
    """Mirrors ``QNetwork``: own trunk (or none: the input is features), MLP on
    ``[features, action]`` -> (B,)."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: Sequence[int],
                 trunk: nn.Module | None):
        super().__init__()
        self.trunk = trunk
        self.head = MLP(feature_dim + action_dim, hidden, 1)

    def forward(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        features = x if self.trunk is None else self.trunk(x)
        return self.head(torch.cat([features, actions], dim=-1)).squeeze(-1)


class Critic(nn.Module):
    """Mirrors ``Critic``: ``num_qs`` independent Q-networks -> (num_qs, B). Ours batches
    them with ``nn.vmap``; here they are a ``ModuleList`` run one after the other, as
    PyTorch SAC implementations do. ``shared_trunk``: one trunk (``encode``) feeds every
    head; otherwise each Q has its own."""

    def __init__(self, hidden: Sequence[int], action_dim: int, image_obs: bool = True,
                 channels: Sequence[int] = (16, 16, 16), num_qs: int = 2,
                 shared_trunk: bool = False, observation_shape: Sequence[int] = IMAGE_SHAPE,
                 channels_last: bool = True):
        super().__init__()
        if num_qs < 1:
            raise ValueError(f"num_qs={num_qs}; expected at least 1")
        self.shared_trunk = bool(shared_trunk)
        trunk_args = (image_obs, channels, observation_shape, channels_last)
        if shared_trunk:
            self.trunk, self.feature_shape = make_trunk(*trunk_args)
            trunks = [None] * num_qs
        else:
            made = [make_trunk(*trunk_args) for _ in range(num_qs)]
            self.trunk, self.feature_shape = None, made[0][1]
            trunks = [t for t, _ in made]
        feature_dim = math.prod(self.feature_shape)
        self.qs = nn.ModuleList(QNetwork(feature_dim, action_dim, hidden, t) for t in trunks)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The shared trunk's features (only with ``shared_trunk``)."""
        if not self.shared_trunk:
            raise ValueError("encode needs shared_trunk=True; each Q has its own trunk")
        return self.trunk(x)

    def heads(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(num_qs, B) from shared-trunk features."""
        return torch.stack([q(features, actions) for q in self.qs])

    def forward(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(num_qs, B) from preprocessed observations."""
        return self.heads(self.encode(x) if self.shared_trunk else x, actions)


class Actor(nn.Module):
    """Mirrors ``Actor``: a diagonal Gaussian ``N(mu(s), diag(sigma(s)^2))`` from an MLP head
    (last layer zero-initialised: ``N(0, I)`` at init), ``log sigma`` clipped to
    ``[log_std_min, log_std_max]``, optionally ``mu = b tanh(mu_raw / b)``, tanh-squashed
    with ``squash``. ``own_trunk=False``: the input is the critic's shared-trunk features,
    of size ``feature_dim``."""

    def __init__(self, action_dim: int, hidden: Sequence[int], image_obs: bool = True,
                 channels: Sequence[int] = (16, 16, 16), own_trunk: bool = True,
                 squash: bool = True, log_std_min: float = -10.0, log_std_max: float = 2.0,
                 mean_bound: float | None = None,
                 observation_shape: Sequence[int] = IMAGE_SHAPE,
                 feature_dim: int | None = None, channels_last: bool = True):
        super().__init__()
        if own_trunk:
            self.trunk, self.feature_shape = make_trunk(image_obs, channels, observation_shape,
                                                        channels_last)
            feature_dim = math.prod(self.feature_shape)
        else:
            if feature_dim is None:
                raise ValueError("own_trunk=False needs feature_dim, the size of the "
                                 "critic's shared-trunk features")
            self.trunk, self.feature_shape = None, None
        if mean_bound is not None and not mean_bound > 0:
            raise ValueError(f"mean_bound={mean_bound}; expected a positive number or None")
        self.action_dim, self.squash = int(action_dim), bool(squash)
        self.log_std_min, self.log_std_max = float(log_std_min), float(log_std_max)
        self.mean_bound = mean_bound
        self.head = MLP(feature_dim, hidden, 2 * action_dim, zero_init_output=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std), each (B, A), of the Gaussian before any squashing."""
        features = x if self.trunk is None else self.trunk(x)
        mean, log_std = self.head(features).chunk(2, dim=-1)
        if self.mean_bound is not None:
            mean = self.mean_bound * torch.tanh(mean / self.mean_bound)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def sample(self, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(actions, log pi(actions | s)) of the reparameterised sample with standard normal
        ``noise`` (B, A): ``u = mean + std * noise``, ``a = tanh(u)`` with ``squash``.

        The log-density is distrax's ``sample_and_log_prob``: the base's from the noise,
        ``sum(-noise^2 / 2 - log(2 pi) / 2) - sum(log std)``, minus the tanh Jacobian
        ``sum 2 (log 2 - u - softplus(-2 u))`` when squashed.
        """
        mean, log_std = self(x)
        u = mean + torch.exp(log_std) * noise
        log_prob = (-0.5 * noise.square() - HALF_LOG_2PI).sum(-1) - log_std.sum(-1)
        if not self.squash:
            return u, log_prob
        return torch.tanh(u), log_prob - tanh_log_det(u).sum(-1)


# --------------------------------------------------------------------------------------
# The agent (mirroring parrot_jax.agents.sac)
# --------------------------------------------------------------------------------------

class UpdateNoise(NamedTuple):
    """The randomness of one update, to replay ours exactly (``SAC.update``'s ``noise``).

    ``obs_offsets`` / ``next_obs_offsets``: (B, 2) integer crop offsets in ``[0, 2 pad]``
    (ignored without augmentation); ``next_noise``: (B, A) standard normal draws of the
    critic target's next actions; ``noise``: (B, A) draws of the actor loss's actions.
    """

    obs_offsets: torch.Tensor | None
    next_obs_offsets: torch.Tensor | None
    next_noise: torch.Tensor
    noise: torch.Tensor


@contextlib.contextmanager
def frozen(module: nn.Module):
    """No weight gradients for ``module`` inside (as ``stop_gradient`` on the critic in our
    actor loss): autograd then skips its weight-gradient kernels (gradients still flow
    through it to its inputs)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def global_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """sqrt(sum of squares) over all tensors (``optax.tree.norm``), without a host sync."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


class SAC:
    """Actor, critic, target critic, ``log_alpha`` and their Adam optimizers; ``update``
    applies one SAC update in our order. Build it with ``from_networks`` and copy our
    parameters in with ``load_jax_state``.

    ``hp``: a ``parrot_jax.agents.sac.Hyperparams`` (or anything with its fields).
    Batches hold torch tensors already on ``device``.
    """

    def __init__(self, actor: Actor, critic: Critic, hp: Any, *, image_obs: bool,
                 device: str | torch.device = "cpu", seed: int | None = None):
        if hp.regularizer not in REGULARIZERS:
            raise ValueError(f"regularizer={hp.regularizer!r}; expected one of {REGULARIZERS}")
        if hp.target_update not in TARGET_UPDATES:
            raise ValueError(f"target_update={hp.target_update!r}; expected one of "
                             f"{TARGET_UPDATES}")
        if hp.target_update_period < 1:
            raise ValueError(f"target_update_period={hp.target_update_period}; expected >= 1")
        if critic.shared_trunk == (actor.trunk is not None):
            raise ValueError("the actor must have its own trunk exactly when the critic's "
                             f"trunk is not shared (shared_trunk={critic.shared_trunk})")
        self.hp, self.image_obs = hp, bool(image_obs)
        self.device = torch.device(device)
        self.actor, self.critic = actor.to(self.device), critic.to(self.device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.log(torch.tensor(hp.init_alpha, dtype=torch.float32,
                                                device=self.device)).requires_grad_(True)
        self.target_entropy = (-float(actor.action_dim) if hp.target_entropy is None
                               else float(hp.target_entropy))
        # optax.adam's math (see flow.adam), built after the move to the device
        self.actor_opt = adam(self.actor.parameters(), hp.actor_lr)
        self.critic_opt = adam(self.critic.parameters(), hp.critic_lr)
        self.alpha_opt = adam([self.log_alpha], hp.alpha_lr)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.target_critic.parameters())
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator(self.device).manual_seed(seed)
        self.step = 0  # updates applied (a Python int: the hard-copy test needs no sync)

    @classmethod
    def from_networks(cls, networks: Any, hp: Any,
                      observation_shape: Sequence[int] | None = None,
                      device: str | torch.device = "cpu", seed: int | None = None,
                      channels_last: bool = True) -> "SAC":
        """The torch agent with the fields of our ``sac.Networks`` (``networks.actor``,
        ``networks.critic``) and ``hp``, fresh parameters. ``observation_shape``: (H, W, C)
        images (default 48x48x3) or, required for vector observations, (D,).
        ``seed``: the initial parameters' seed (drawn without touching torch's global RNG)
        and that of the agent's own ``torch.Generator`` for the updates' noise (default:
        torch's global RNG for both). ``channels_last``: the conv trunks' memory layout
        (see ``ConvTrunk``)."""
        actor, critic = networks.actor, networks.critic
        image_obs = bool(critic.image_obs)
        if observation_shape is None:
            if not image_obs:
                raise ValueError("observation_shape=None; vector observations need (D,)")
            observation_shape = IMAGE_SHAPE
        if bool(actor.image_obs) != image_obs:
            raise ValueError(f"actor.image_obs={actor.image_obs} but critic.image_obs="
                             f"{critic.image_obs}; expected the same")
        if bool(actor.own_trunk) == bool(critic.shared_trunk):
            raise ValueError(f"actor.own_trunk={actor.own_trunk} with critic.shared_trunk="
                             f"{critic.shared_trunk}; expected own_trunk = not shared_trunk")
        with torch.random.fork_rng(devices=[]):  # restores the global CPU RNG afterwards
            if seed is not None:
                torch.manual_seed(seed)
            torch_critic = Critic(tuple(critic.hidden), actor.action_dim, image_obs,
                                  tuple(critic.channels), int(critic.num_qs),
                                  bool(critic.shared_trunk), tuple(observation_shape),
                                  channels_last)
            torch_actor = Actor(actor.action_dim, tuple(actor.hidden), image_obs,
                                tuple(actor.channels), bool(actor.own_trunk),
                                bool(actor.squash), actor.log_std_min, actor.log_std_max,
                                actor.mean_bound, tuple(observation_shape),
                                feature_dim=math.prod(torch_critic.feature_shape),
                                channels_last=channels_last)
        return cls(torch_actor, torch_critic, hp, image_obs=image_obs, device=device, seed=seed)

    # -- the pieces of an update -------------------------------------------------------

    def preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        return preprocess(obs, self.image_obs)

    def policy_sample(self, x: torch.Tensor, noise: torch.Tensor):
        """(actions, log pi) for preprocessed observations: mirrors ``Networks.policy`` (with
        a shared trunk, the critic's features, detached)."""
        if self.critic.shared_trunk:
            x = self.critic.encode(x).detach()
        return self.actor.sample(x, noise)

    def regularized_log_prob(self, actions: torch.Tensor,
                             log_prob: torch.Tensor) -> torch.Tensor:
        """``log pi``, minus ``log N(a; 0, I)`` with the KL regularizer."""
        if self.hp.regularizer == "entropy":
            return log_prob
        return log_prob + 0.5 * (actions.square() + math.log(2 * math.pi)).sum(-1)

    def critic_loss(self, batch: Batch, obs: torch.Tensor, next_obs: torch.Tensor,
                    next_noise: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_Q and its diagnostics: mirrors ``sac.critic_loss``. ``obs``, ``next_obs``: the
        (already augmented) observations as the batch holds them (uint8 images);
        ``next_noise`` (B, A): the standard normal draws of the next actions."""
        x = self.preprocess(obs)
        next_x = self.preprocess(next_obs)
        with torch.no_grad():  # the target is a constant (stop_gradient in ours)
            alpha = self.log_alpha.exp()
            next_actions, next_log_prob = self.policy_sample(next_x, next_noise)
            next_log_prob = self.regularized_log_prob(next_actions, next_log_prob)
            next_q = self.target_critic(next_x, next_actions).min(dim=0).values
            not_done = 1.0 - batch["terminated"].to(torch.float32)
            target = (self.hp.reward_scale * batch["rewards"]
                      + self.hp.discount * not_done * (next_q - alpha * next_log_prob))
        q = self.critic(x, batch["actions"])
        loss = (q - target).square().mean(dim=-1).sum()
        return loss, {"critic_loss": loss.detach(), "q": q.detach().mean(),
                      "target_q": target.mean()}

    def actor_loss(self, obs: torch.Tensor, noise: torch.Tensor):
        """(L_pi, (regularized log pi, log pi) per sample): mirrors ``sac.actor_loss`` with
        the critic as it is now (``update`` calls it after the critic step). ``noise``
        (B, A): the standard normal draws of the reparameterised actions."""
        x = self.preprocess(obs)
        if self.critic.shared_trunk:
            # one pass of the shared trunk serves both: the actor reads its features
            # detached, and Q's gradient reaches the actor only through the actions
            with torch.no_grad():
                features = self.critic.encode(x)
            actions, log_prob = self.actor.sample(features, noise)
            q = self.critic.heads(features, actions)
        else:
            actions, log_prob = self.actor.sample(x, noise)
            q = self.critic(x, actions)
        regularized = self.regularized_log_prob(actions, log_prob)
        loss = (self.log_alpha.detach().exp() * regularized - q.min(dim=0).values).mean()
        return loss, (regularized, log_prob)

    def draw_noise(self, batch: Batch) -> UpdateNoise:
        """One update's randomness from torch's RNG (``self.generator`` if seeded)."""
        observations = batch["observations"]
        size, action_dim = observations.shape[0], self.actor.action_dim
        offsets = [None, None]
        if self.image_obs and self.hp.augment_pad:
            offsets = [torch.randint(0, 2 * self.hp.augment_pad + 1, (size, 2),
                                     generator=self.generator, device=self.device)
                       for _ in range(2)]
        next_noise, noise = (torch.randn(size, action_dim, generator=self.generator,
                                         device=self.device) for _ in range(2))
        return UpdateNoise(offsets[0], offsets[1], next_noise, noise)

    def augment(self, obs: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        if self.image_obs and self.hp.augment_pad:
            return random_crop(obs, self.hp.augment_pad, offsets, self.generator)
        return obs

    # -- the update -------------------------------------------------------------------

    def update(self, batch: Batch, noise: UpdateNoise | None = None) -> dict[str, torch.Tensor]:
        """One critic, actor, temperature and target update: mirrors ``sac.update_step``.

        ``noise``: this update's randomness (default: drawn from torch's RNG). Returns
        our metrics as 0-d tensors (no host sync; call ``.item()`` when logging).
        """
        if noise is None:
            noise = self.draw_noise(batch)
        obs = self.augment(batch["observations"], noise.obs_offsets)
        next_obs = self.augment(batch["next_observations"], noise.next_obs_offsets)

        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss, metrics = self.critic_loss(batch, obs, next_obs, noise.next_noise)
        critic_loss.backward()
        metrics["critic_grad_norm"] = global_norm([p.grad for p in self._critic_params
                                                   if p.grad is not None])
        self.critic_opt.step()

        alpha = self.log_alpha.detach().exp()  # the log alpha of before this update
        self.actor_opt.zero_grad(set_to_none=True)
        with frozen(self.critic):
            actor_loss, (regularized, log_prob) = self.actor_loss(obs, noise.noise)
        actor_loss.backward()
        self.actor_opt.step()

        self.alpha_opt.zero_grad(set_to_none=True)
        entropy_gap = regularized.detach() + self.target_entropy
        alpha_loss = -(self.log_alpha * entropy_gap).mean()
        alpha_loss.backward()
        self.alpha_opt.step()

        self.step += 1
        with torch.no_grad():
            if self.hp.target_update == "hard":
                if self.step % self.hp.target_update_period == 0:
                    torch._foreach_copy_(self._target_params, self._critic_params)
            else:  # Qbar <- tau Q + (1 - tau) Qbar
                torch._foreach_lerp_(self._target_params, self._critic_params, self.hp.tau)

        metrics.update(actor_loss=actor_loss.detach(), alpha_loss=alpha_loss.detach(),
                       alpha=alpha, entropy=-log_prob.detach().mean(),
                       reward=batch["rewards"].mean())
        if self.hp.regularizer != "entropy":
            metrics["kl"] = regularized.detach().mean()
        return metrics


# --------------------------------------------------------------------------------------
# Our parameters -> torch
# --------------------------------------------------------------------------------------

def _index(tree: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Member ``i`` of a params pytree stacked by ``nn.vmap`` (leading axis num_qs)."""
    return {k: _index(v, i) if isinstance(v, Mapping) else np.asarray(v)[i]
            for k, v in tree.items()}


def _mlp_names(mlp: MLP) -> list[str]:
    return [f"hidden{i}" for i in range(len(mlp.hidden))] + ["out"]


def _conv_features(feature_shape) -> Any:
    """The shape to permute a first dense layer's rows by: conv features only."""
    return feature_shape if feature_shape is not None and len(feature_shape) == 3 else None


def jax_critic_state(critic: Critic, params: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Our ``Critic`` params as the torch critic's parameters: the heads stacked over
    num_qs under ``qs``; the trunk under ``trunk`` when shared, else one per Q under
    ``trunk_0``, ``trunk_1``, ... (or, as an earlier version of ours kept them, stacked
    under ``qs/trunk``)."""
    features = _conv_features(critic.feature_shape)
    state = {}
    if critic.shared_trunk and isinstance(critic.trunk, ConvTrunk):
        state.update(conv_state(params["trunk"], "trunk.", len(critic.trunk.convs)))
    for i, q in enumerate(critic.qs):
        member = _index(params["qs"], i)
        if isinstance(q.trunk, ConvTrunk):
            trunk = params[f"trunk_{i}"] if f"trunk_{i}" in params else member["trunk"]
            state.update(conv_state(trunk, f"qs.{i}.trunk.", len(q.trunk.convs)))
        state.update(mlp_state(member["head"], f"qs.{i}.head.", _mlp_names(q.head), features))
    return state


def jax_actor_state(actor: Actor, params: Mapping[str, Any],
                    critic: Critic) -> dict[str, torch.Tensor]:
    """Our ``Actor`` params as the torch actor's (its head reads the critic's shared-trunk
    features when it has no trunk of its own)."""
    state = {}
    if isinstance(actor.trunk, ConvTrunk):
        state.update(conv_state(params["trunk"], "trunk.", len(actor.trunk.convs)))
    shape = actor.feature_shape if actor.trunk is not None else critic.feature_shape
    state.update(mlp_state(params["head"], "head.", _mlp_names(actor.head),
                           _conv_features(shape)))
    return state


def load_jax_state(sac: SAC, state: Any) -> None:
    """Copies a ``SACState``'s actor, critic and target critic params and ``log_alpha`` into
    ``sac`` (in place; the optimizers keep their, possibly fresh, moments and the update
    counter stays). Conv kernels HWIO -> OIHW, Dense kernels transposed, the first dense
    layer after a conv trunk permuted from NHWC- to NCHW-flatten order."""
    load_state(sac.actor, jax_actor_state(sac.actor, state.actor_params, sac.critic))
    load_state(sac.critic, jax_critic_state(sac.critic, state.critic_params))
    load_state(sac.target_critic, jax_critic_state(sac.target_critic,
                                                   state.target_critic_params))
    with torch.no_grad():
        sac.log_alpha.copy_(torch.from_numpy(np.array(state.log_alpha, np.float32)))
