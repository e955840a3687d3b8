"""The trajectory VAE of the TrajRL baseline (Ghadirzadeh et al. 2020, as the PARROT paper
builds it in appendix B): a VAE over whole open-loop action trajectories.

    q(z | a_{0:H}) = N(mu(a), diag sigma(a)^2)       (the flattened H x A actions in)
    p(a_{0:H} | z): mean tanh(g(z)) reshaped to (H, A), variance fixed

No image enters the VAE: a trajectory is a plan made before the episode starts. The
paper's MLPs: encoder 512-256-128, decoder 128-256-512 (BatchNorm left out, as in
``cvae``); beta 0.001 annealed logistically (half at 25K updates), Adam 1e-4, 500K
updates. The latent's size is not given; it is the action's dimension here, as for the
flow and the cVAE. Its batches are whole ``horizon``-step windows of the prior dataset's
actions (``sampling``: no image is read). RL then picks one ``z`` per episode from the
first image and the decoded trajectory runs open-loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from parrot_jax.networks.mlp import MLP
from parrot_jax.pretrained import saved
from parrot_jax.pretrained.losses import gaussian_kl, sample_latent

KIND = "trajvae"
LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0
FIELDS = ("horizon", "latent_dim", "encoder_hidden", "decoder_hidden")


class TrajectoryVAE(nn.Module):
    """``encode(actions (B, H, A))`` -> ``(mu, log_sigma)`` (B, latent_dim) each;
    ``decode(z)`` -> the trajectory's mean (B, H, A) in (-1, 1)."""

    horizon: int = 25
    action_dim: int = 7
    latent_dim: int = 7
    encoder_hidden: Sequence[int] = (512, 256, 128)
    decoder_hidden: Sequence[int] = (128, 256, 512)

    def setup(self):
        self.encoder = MLP(tuple(self.encoder_hidden), 2 * self.latent_dim)
        self.decoder = MLP(tuple(self.decoder_hidden), self.horizon * self.action_dim)

    def encode(self, actions):
        flat = actions.reshape(actions.shape[0], -1).astype(jnp.float32)
        mean, log_std = jnp.split(self.encoder(flat), 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def decode(self, z):
        return jnp.tanh(self.decoder(z)).reshape(z.shape[0], self.horizon, self.action_dim)

    def env_action(self, z, images=None):
        """The plan as one flat action of ``ActionChunks`` (B, H * A); ``images`` unused
        (an open-loop plan does not look)."""
        return self.decode(z).reshape(z.shape[0], self.horizon * self.action_dim)

    def __call__(self, actions, key):
        return self.decode(sample_latent(*self.encode(actions), key))


def make_trajvae(model_config: Mapping[str, Any], action_dim: int) -> TrajectoryVAE:
    """The TrajVAE of ``config.model`` for actions of ``action_dim`` dimensions."""
    unknown = set(model_config) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown TrajVAE model config fields {sorted(unknown)}; expected "
                         f"a subset of {sorted(FIELDS)}")
    kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v
              for k, v in model_config.items()}
    if kwargs.get("latent_dim") is None:
        kwargs["latent_dim"] = int(action_dim)
    return TrajectoryVAE(action_dim=int(action_dim), **kwargs)


def make(description: Mapping[str, Any]) -> TrajectoryVAE:
    """The TrajVAE a run's ``config.json`` describes."""
    return make_trajvae(description["model"], description["action_dim"])


def dataset_fields(dataset) -> dict[str, Any]:
    return {"image_shape": list(dataset.image_shape), "action_dim": dataset.action_dim}


def sampling(config) -> dict[str, Any]:
    """Batches of ``horizon``-step windows of actions, without their images."""
    return {"window": int(config.model.horizon), "images": False}


def check_model(model) -> None:
    """ValueError naming the first invalid ``config.model`` field."""
    from parrot_jax.run_config import check_layer_sizes

    if int(model.horizon) < 1:
        raise ValueError(f"config.model.horizon={model.horizon}; expected >= 1 steps")
    if model.latent_dim is not None and int(model.latent_dim) < 1:
        raise ValueError(f"config.model.latent_dim={model.latent_dim}; expected a positive "
                         "integer (or None: the action's dimension)")
    for name in ("encoder_hidden", "decoder_hidden"):
        check_layer_sizes(f"model.{name}", model[name])


def init_params(model: TrajectoryVAE, rng: jax.Array):
    actions = jnp.zeros((1, model.horizon, model.action_dim), jnp.float32)
    return model.init(rng, actions, jax.random.key(0))["params"]


def terms(model: TrajectoryVAE, params, batch, key: jax.Array | None) -> dict[str, jax.Array]:
    """Per-trajectory ``recon`` (squared action error summed over the H x A values),
    ``mse`` (per value) and ``kl`` (to N(0, I)): (B,) each. ``key=None``: ``z = mu``."""
    actions = batch["actions"]
    mean, log_std = model.apply({"params": params}, actions, method="encode")
    z = sample_latent(mean, log_std, key)
    error = jnp.square(actions - model.apply({"params": params}, z, method="decode"))
    return {"recon": jnp.sum(error, axis=(1, 2)), "mse": jnp.mean(error, axis=(1, 2)),
            "kl": gaussian_kl(mean, log_std)}


@dataclasses.dataclass(frozen=True)
class TrajectoryDecoder:
    """The trained TrajVAE's decoder mean: ``z`` (B, latent_dim) -> an open-loop
    trajectory (B, H, A)."""

    model: TrajectoryVAE
    params: Any
    model_config: dict[str, Any]
    image_shape: tuple[int, ...]  # of the dataset it was trained beside (no image is read)
    step: int | None = None

    @property
    def horizon(self) -> int:
        return self.model.horizon

    @property
    def step_action_dim(self) -> int:
        """The dimension of one step's action."""
        return self.model.action_dim

    @property
    def action_dim(self) -> int:
        """The dimension of the flat plan ``ActionChunks`` takes: H x A."""
        return self.model.horizon * self.model.action_dim

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    def decode(self, z):
        return self.model.apply({"params": self.params}, z, method="decode")


def load_trajvae(workdir: str, step: int | None = None) -> TrajectoryDecoder:
    """The TrajVAE saved by ``experiments.pretrain`` in ``workdir`` (latest by default)."""
    model, params, config, step = saved.load(workdir, KIND, "TrajVAE", make, init_params, step)
    return TrajectoryDecoder(model, params, dict(config["model"]), tuple(config["image_shape"]),
                             step)


def write_initial_trajvae(workdir: str, model_config: Mapping[str, Any], action_dim: int = 7,
                          image_shape=(48, 48, 3), seed: int = 0) -> str:
    """A TrajVAE workdir holding the model at initialisation (``saved.write_initial``)."""
    return saved.write_initial_model(workdir, KIND, make, init_params, model_config,
                                     action_dim, image_shape, seed)
