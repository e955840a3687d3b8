"""The conditional VAE of the HIRL baseline (paper section 5.1 and appendix B), and its
decoder as a frozen map from a latent to an action.

HIRL (Shankar & Gupta 2020, as the PARROT paper builds it with the past-conditioning
removed) is a per-step conditional VAE over actions:

    q(z | a, s) = N(mu(a, psi(s)), diag sigma(a, psi(s))^2),
    p(a | z, s):  a = tanh(g(z, psi(s)))  (the decoder mean; its variance is fixed),

with ``psi`` an image encoder of the flow prior's architecture (trained here with the cVAE,
not copied from the flow: ``../shared/BASELINES.md`` section 3). ``psi(s)`` feeds both the
encoder and the decoder. The paper's MLPs: encoder 512-256-128 and decoder 128-256-512
(it adds BatchNorm after each layer; here they are plain ReLU layers, so one image's
output does not depend on the rest of its batch). The latent has the action's dimension,
as the flow's does. RL then acts in ``z`` through the frozen decoder mean, closed-loop:
``a_t = tanh(g(z_t, psi(s_t)))`` (``hirl`` agent). Unlike the flow, ``g`` is not
invertible, so some actions may be out of the policy's reach (the paper's point).

    decoder = load_cvae("runs/cvae")          # the workdir of ``experiments.pretrain``
    actions = decoder.decode(z, images)       # (B, action_dim) in (-1, 1)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from parrot_jax.networks.encoder import ConvEncoder
from parrot_jax.networks.mlp import MLP
from parrot_jax.pretrained import saved
from parrot_jax.pretrained.losses import gaussian_kl, sample_latent

KIND = "cvae"
LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0
FIELDS = ("latent_dim", "encoder_hidden", "decoder_hidden", "image_channels", "image_hidden",
          "embedding", "image_pooled", "image_strides")


class ActionCVAE(nn.Module):
    """``encode(actions, images)``, ``decode(z, images)``; params ``psi``, ``encoder``,
    ``decoder``."""

    image_shape: tuple[int, int, int] = (48, 48, 3)
    action_dim: int = 7
    latent_dim: int = 7
    encoder_hidden: Sequence[int] = (512, 256, 128)
    decoder_hidden: Sequence[int] = (128, 256, 512)
    image_channels: Sequence[int] = (16, 16, 16)  # psi: the flow prior's image encoder
    image_hidden: Sequence[int] = (1024, 512)
    embedding: int = 256
    image_pooled: int = 2
    image_strides: Sequence[int] | None = None

    def setup(self):
        self.psi = ConvEncoder(channels=tuple(self.image_channels), pooled=self.image_pooled,
                               hidden=tuple(self.image_hidden), features=self.embedding,
                               strides=self.image_strides)
        self.encoder = MLP(tuple(self.encoder_hidden), 2 * self.latent_dim)
        self.decoder = MLP(tuple(self.decoder_hidden), self.action_dim)

    def embed(self, images):
        """psi(s): (B, embedding)."""
        return self.psi(images)

    def encode(self, actions, images):
        """``(mu, log_sigma)`` of q(z | a, s): (B, latent_dim) each."""
        x = jnp.concatenate([actions.astype(jnp.float32), self.psi(images)], axis=-1)
        mean, log_std = jnp.split(self.encoder(x), 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def decode(self, z, images):
        """The decoder mean ``tanh(g(z, psi(s)))``: (B, action_dim) in (-1, 1)."""
        return self.decode_given(z, self.psi(images))

    def env_action(self, z, images):
        """What an agent acting through the cVAE (``hirl``) executes: the decoder mean (B, A)."""
        return self.decode(z, images)

    def decode_given(self, z, embedding):
        return jnp.tanh(self.decoder(jnp.concatenate([z, embedding], axis=-1)))

    def __call__(self, actions, images, key):
        mean, log_std = self.encode(actions, images)
        z = sample_latent(mean, log_std, key)
        return self.decode(z, images), mean, log_std


def make_cvae(model_config: Mapping[str, Any], image_shape, action_dim: int) -> ActionCVAE:
    """The cVAE of a config's ``model`` section for these images and actions."""
    unknown = set(model_config) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown cVAE model config fields {sorted(unknown)}; expected a "
                         f"subset of {sorted(FIELDS)}")
    kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v
              for k, v in model_config.items()}
    if kwargs.get("latent_dim") is None:  # the action's dimension, as the flow's latent
        kwargs["latent_dim"] = int(action_dim)
    return ActionCVAE(tuple(image_shape), int(action_dim), **kwargs)


def make(description: Mapping[str, Any]) -> ActionCVAE:
    """The cVAE a run's ``config.json`` describes."""
    return make_cvae(description["model"], description["image_shape"],
                     description["action_dim"])


def dataset_fields(dataset) -> dict[str, Any]:
    return {"image_shape": list(dataset.image_shape), "action_dim": dataset.action_dim}


def check_model(model) -> None:
    """ValueError naming the first invalid ``config.model`` field."""
    from parrot_jax.run_config import check_layer_sizes

    if model.latent_dim is not None and int(model.latent_dim) < 1:
        raise ValueError(f"config.model.latent_dim={model.latent_dim}; expected a positive "
                         "integer (or None: the action's dimension)")
    for name in ("encoder_hidden", "decoder_hidden", "image_channels", "image_hidden"):
        check_layer_sizes(f"model.{name}", model[name])
    if int(model.embedding) < 1:
        raise ValueError(f"config.model.embedding={model.embedding}; expected >= 1")


def init_params(cvae: ActionCVAE, rng: jax.Array):
    images = jnp.zeros((1,) + tuple(cvae.image_shape), jnp.uint8)
    actions = jnp.zeros((1, cvae.action_dim), jnp.float32)
    return cvae.init(rng, actions, images, jax.random.key(0))["params"]


def terms(cvae: ActionCVAE, params, batch, key: jax.Array | None) -> dict[str, jax.Array]:
    """Per-step ``recon`` (summed squared action error), ``mse`` (per dimension) and ``kl``
    (to N(0, I)): (B,) each. ``key=None`` decodes at ``z = mu``."""
    actions, images = batch["actions"], batch["observations"]
    mean, log_std = cvae.apply({"params": params}, actions, images, method="encode")
    z = sample_latent(mean, log_std, key)
    decoded = cvae.apply({"params": params}, z, images, method="decode")
    error = jnp.square(actions - decoded)
    return {"recon": jnp.sum(error, axis=-1), "mse": jnp.mean(error, axis=-1),
            "kl": gaussian_kl(mean, log_std)}


@dataclasses.dataclass(frozen=True)
class ActionDecoder:
    """The trained cVAE's decoder mean as the frozen map ``a = tanh(g(z, psi(s)))`` that
    the ``hirl`` agent acts through (the counterpart of ``BehavioralPrior.sample``)."""

    cvae: ActionCVAE
    params: Any
    model_config: dict[str, Any]
    step: int | None = None

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.cvae.image_shape)

    @property
    def action_dim(self) -> int:
        return self.cvae.action_dim

    @property
    def latent_dim(self) -> int:
        return self.cvae.latent_dim

    def decode(self, z, images):
        return self.cvae.apply({"params": self.params}, z, images, method="decode")


def load_cvae(workdir: str, step: int | None = None) -> ActionDecoder:
    """The cVAE saved by ``experiments.pretrain`` in ``workdir`` (latest step by default)."""
    cvae, params, config, step = saved.load(workdir, KIND, "cVAE", make, init_params, step)
    return ActionDecoder(cvae, params, dict(config["model"]), step)


def write_initial_cvae(workdir: str, model_config: Mapping[str, Any],
                       image_shape=(48, 48, 3), action_dim: int = 7, seed: int = 0) -> str:
    """A cVAE workdir holding the cVAE at initialisation (``saved.write_initial``)."""
    return saved.write_initial_model(workdir, KIND, make, init_params, model_config,
                                     action_dim, image_shape, seed)
