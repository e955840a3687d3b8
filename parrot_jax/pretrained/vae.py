"""The beta-VAE of the VAE-features baseline (paper section 5.1 and appendix B), and its
trained form as a value loadable by one call.

    vae = load_vae("runs/vae")             # the workdir of ``experiments.pretrain``
    features = vae.features(images)        # mu(s): (B, latent_dim)

Architecture (the "standard CIFAR-10 VAE of van den Oord et al. 2017" the paper names;
sizes the paper leaves open are ``../shared/BASELINES.md``'s assumptions):
- encoder q(z | s): uint8 images scaled to [0, 1]; two 4x4 convolutions of stride 2
  (48 -> 24 -> 12, ``channels`` each, ReLU between), ``num_residual`` residual blocks
  ``x + conv1x1(relu(conv3x3(relu(x))))``, a ReLU, flatten, then one dense layer giving
  the mean ``mu`` and ``log sigma`` (clipped to [-10, 2]) of a diagonal Gaussian over
  ``latent_dim`` features;
- decoder p(s | z): the mirror image: a dense layer to a 12 x 12 x ``channels`` map, the
  residual blocks, then two 4x4 transposed convolutions of stride 2 (12 -> 24 -> 48, a
  ReLU between) to the image's mean pixel values (linear output, [0, 1] scale).

The features an RL agent reads are ``mu(s)`` (``VAEEncoder(mean_only=True)``, the same
parameters), frozen, as in DARLA (Higgins et al. 2017).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from parrot_jax.networks import conv
from parrot_jax.pretrained import saved
from parrot_jax.pretrained.losses import gaussian_kl, sample_latent

LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0
KIND = "vae"  # config.kind of a run that trained one


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))``, channels kept."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        h = conv.Conv(channels, (3, 3), padding="SAME", name="conv3x3")(nn.relu(x))
        return x + conv.Conv(channels, (1, 1), name="conv1x1")(nn.relu(h))


class VAEEncoder(nn.Module):
    """Images (B, H, W, C) uint8 -> ``(mu, log_sigma)`` (B, latent_dim) each, or ``mu``
    alone with ``mean_only`` (the RL features; same parameters)."""

    channels: int = 256
    num_residual: int = 2
    latent_dim: int = 64
    mean_only: bool = False

    @nn.compact
    def __call__(self, images: jax.Array):
        x = images.astype(jnp.float32)
        if images.dtype == jnp.uint8:
            x = x / 255.0
        x = conv.Conv(self.channels, (4, 4), strides=2, padding="SAME", name="conv0")(x)
        x = nn.relu(x)
        x = conv.Conv(self.channels, (4, 4), strides=2, padding="SAME", name="conv1")(x)
        for i in range(self.num_residual):
            x = ResidualBlock(name=f"residual{i}")(x)
        x = nn.relu(x).reshape(x.shape[0], -1)
        mean, log_std = jnp.split(nn.Dense(2 * self.latent_dim, name="out")(x), 2, axis=-1)
        if self.mean_only:
            return mean
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class VAEDecoder(nn.Module):
    """Latents (B, latent_dim) -> mean pixel values (B, H, W, C) on the [0, 1] scale."""

    image_shape: tuple[int, int, int]
    channels: int = 256
    num_residual: int = 2

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h, w, c = self.image_shape
        x = nn.Dense((h // 4) * (w // 4) * self.channels, name="in")(z)
        x = x.reshape(z.shape[0], h // 4, w // 4, self.channels)
        for i in range(self.num_residual):
            x = ResidualBlock(name=f"residual{i}")(x)
        x = nn.ConvTranspose(self.channels, (4, 4), strides=(2, 2), padding="SAME",
                             name="deconv0")(nn.relu(x))
        return nn.ConvTranspose(c, (4, 4), strides=(2, 2), padding="SAME",
                                name="deconv1")(nn.relu(x))


class ImageVAE(nn.Module):
    """``q(z | s)`` (``encode``) and ``p(s | z)`` (``decode``); params ``encoder``,
    ``decoder``. ``__call__(images, key)`` -> ``(reconstruction, mu, log_sigma)`` with
    ``z = mu + sigma * eps`` (the reparameterisation)."""

    image_shape: tuple[int, int, int] = (48, 48, 3)
    channels: int = 256
    num_residual: int = 2
    latent_dim: int = 64

    def setup(self):
        h, w, _ = self.image_shape
        if h % 4 or w % 4:
            raise ValueError(f"image shape {self.image_shape}: the VAE halves the image "
                             "twice, so height and width must be multiples of 4")
        self.encoder = VAEEncoder(self.channels, self.num_residual, self.latent_dim)
        self.decoder = VAEDecoder(tuple(self.image_shape), self.channels, self.num_residual)

    def encode(self, images):
        return self.encoder(images)

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, images, key):
        mean, log_std = self.encoder(images)
        z = sample_latent(mean, log_std, key)
        return self.decoder(z), mean, log_std


def make_vae(model_config: Mapping[str, Any], image_shape) -> ImageVAE:
    """The VAE of a config's ``model`` section, for images of ``image_shape``."""
    fields = {"channels", "num_residual", "latent_dim"}
    unknown = set(model_config) - fields
    if unknown:
        raise ValueError(f"unknown VAE model config fields {sorted(unknown)}; expected a "
                         f"subset of {sorted(fields)}")
    return ImageVAE(tuple(image_shape), **{k: int(v) for k, v in model_config.items()})


def features_encoder(vae: ImageVAE, name: str | None = None) -> VAEEncoder:
    """The VAE's encoder as a module of its own returning ``mu(s)``; its parameters are the
    VAE's ``params["encoder"]`` (an RL trunk built from them, ``network.trunk``)."""
    return VAEEncoder(vae.channels, vae.num_residual, vae.latent_dim, mean_only=True,
                      name=name)


def init_params(vae: ImageVAE, rng: jax.Array):
    images = jnp.zeros((1,) + tuple(vae.image_shape), jnp.uint8)
    return vae.init(rng, images, jax.random.key(0))["params"]


@dataclasses.dataclass(frozen=True)
class PretrainedVAE:
    vae: ImageVAE
    params: Any
    model_config: dict[str, Any]  # config.json's ``model`` section
    step: int | None = None  # training step of the checkpoint it came from

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.vae.image_shape)

    def features(self, images):
        """``mu(s)``: (B, latent_dim) float32."""
        return features_encoder(self.vae).apply({"params": self.params["encoder"]}, images)

    def reconstruct(self, images):
        """The decoder's mean at ``z = mu(s)``: (B, H, W, C) on the [0, 1] scale."""
        mean, _ = self.vae.apply({"params": self.params}, images, method="encode")
        return self.vae.apply({"params": self.params}, mean, method="decode")


def make(description: Mapping[str, Any]) -> ImageVAE:
    """The VAE a run's ``config.json`` describes."""
    return make_vae(description["model"], description["image_shape"])


def check_model(model) -> None:
    """ValueError naming the first invalid ``config.model`` field."""
    for name in ("channels", "num_residual", "latent_dim"):
        if int(model[name]) < (0 if name == "num_residual" else 1):
            raise ValueError(f"config.model.{name}={model[name]}; expected a "
                             f"{'non-negative' if name == 'num_residual' else 'positive'} "
                             "integer")


def dataset_fields(dataset) -> dict[str, Any]:
    """What the dataset decides about the model (recorded in ``config.json``)."""
    return {"image_shape": list(dataset.image_shape)}


def terms(vae: ImageVAE, params, batch, key: jax.Array | None) -> dict[str, jax.Array]:
    """Per-image ``recon`` (summed squared pixel error, [0, 1] scale), ``mse`` (per pixel)
    and ``kl`` (to N(0, I)): (B,) each. ``key=None`` decodes at ``z = mu``."""
    images = batch["observations"]
    mean, log_std = vae.apply({"params": params}, images, method="encode")
    z = sample_latent(mean, log_std, key)
    decoded = vae.apply({"params": params}, z, method="decode")
    error = jnp.square(images.astype(jnp.float32) / 255.0 - decoded)
    return {"recon": jnp.sum(error, axis=(1, 2, 3)), "mse": jnp.mean(error, axis=(1, 2, 3)),
            "kl": gaussian_kl(mean, log_std)}


def read_vae_config(workdir: str) -> dict[str, Any]:
    """``WORKDIR/config.json`` of a VAE run; FileNotFoundError/ValueError naming what is
    wrong if ``workdir`` holds none."""
    return saved.read_config(workdir, KIND, "VAE")


def load_vae(workdir: str, step: int | None = None) -> PretrainedVAE:
    """The VAE saved by ``experiments.pretrain`` in ``workdir`` (latest step by default)."""
    vae, params, config, step = saved.load(workdir, KIND, "VAE", make, init_params, step)
    return PretrainedVAE(vae, params, dict(config["model"]), step)


def write_initial_vae(workdir: str, model_config: Mapping[str, Any], image_shape=(48, 48, 3),
                      seed: int = 0) -> str:
    """A VAE workdir holding the VAE at initialisation (``saved.write_initial``)."""
    description = {"kind": KIND, "model": dict(model_config), "image_shape": list(image_shape)}
    return saved.write_initial(workdir, description,
                               init_params(make(description), jax.random.key(seed)))
