"""SPiRL's skill model (Pertsch et al. 2020, ``../shared/seeds/004``; clvrai/spirl): a VAE
over ``H``-step action windows (skills) and a learned, image-conditioned prior over them.

    q(z | a_{0:H}):  an LSTM over the window's actions; its last output -> (mu, log sigma)
    p(a_{0:H} | z):  an LSTM unrolled H steps with z as its input at every step; each
                     output -> tanh(Linear) (the action's mean, variance fixed)
    p_a(z | s_0):    the skill prior, a diagonal Gaussian from the window's first image:
                     the RL actor's architecture (conv trunk + MLP, ``agents.networks.Actor``
                     with ``squash=False``), so SPiRL's policy starts as a copy of it

    L = 1/B sum_i [ ||a_i - a^_i(z_i)||^2 + beta KL(q(z | a_i) || N(0, I))
                    + KL(stop_grad q(z | a_i) || p_a(z | s_i)) ]

The last term is the paper's (S eq. 3): it trains the prior to match the posterior without
moving the posterior (the stop-gradient). The public code defaults instead to the negative
log-likelihood of one posterior sample under the prior; the closed-form KL is its
expectation up to the posterior's entropy (constant for the prior), with no sampling
noise. ``prior_nll`` (``-log p_a(mu_q | s)`` per window, not in the loss) is reported
beside it.

The sizes of the paper's image configs (S App. B.1; ``../shared/BASELINES.md`` 4a): latent
10, LSTM 128, prior MLP of 6 layers of 128, image convolutions (8, 16, 32); here the
prior's convolutions are the RL trunk's 3x3 ones with the 2x2 pools (48x48 -> 12x12), and
BatchNorm is left out (as in ``cvae``: one image's output does not depend on its batch).
The skill length ``H`` is 5: the suite's 25-step episodes hold 5 whole skills (the
paper's 10 would leave a partial last one). Its batches are ``H``-step windows within one
episode, with only their first image (``sampling``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from parrot_jax.networks.mlp import MLP
from parrot_jax.pretrained import saved
from parrot_jax.pretrained.losses import gaussian_kl, sample_latent
from parrot_jax.pretrained.trajvae import TrajectoryDecoder

KIND = "spirl"
LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0
FIELDS = ("horizon", "latent_dim", "lstm_size", "prior_hidden", "prior_channels")


class SkillModel(nn.Module):
    """``encode(actions (B, H, A))`` -> ``(mu, log_sigma)``; ``decode(z)`` -> (B, H, A) in
    (-1, 1); ``skill_prior(images (B, h, w, c))`` -> the prior's Gaussian. Params
    ``encoder``, ``encoder_out``, ``decoder``, ``decoder_out``, ``prior``."""

    image_shape: tuple[int, int, int] = (48, 48, 3)
    horizon: int = 5
    action_dim: int = 7
    latent_dim: int = 10
    lstm_size: int = 128
    prior_hidden: Sequence[int] = (128,) * 6
    prior_channels: Sequence[int] = (8, 16, 32)

    def setup(self):
        self.encoder = nn.RNN(nn.OptimizedLSTMCell(self.lstm_size))
        self.encoder_out = nn.Dense(2 * self.latent_dim)
        self.decoder = nn.RNN(nn.OptimizedLSTMCell(self.lstm_size))
        self.decoder_out = nn.Dense(self.action_dim)
        self.prior = prior_actor(self)

    def encode(self, actions):
        outputs = self.encoder(actions.astype(jnp.float32))
        mean, log_std = jnp.split(self.encoder_out(outputs[:, -1]), 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def decode(self, z):
        inputs = jnp.broadcast_to(z[:, None, :], (z.shape[0], self.horizon, z.shape[-1]))
        return jnp.tanh(self.decoder_out(self.decoder(inputs)))

    def skill_prior(self, images):
        """p_a(z | s): a ``distrax.MultivariateNormalDiag``."""
        return self.prior(images)

    def env_action(self, z, images=None):
        """The skill as one flat action of ``ActionChunks`` (B, H * A); ``images`` unused
        (the skill runs open-loop)."""
        return self.decode(z).reshape(z.shape[0], self.horizon * self.action_dim)

    def __call__(self, actions, images, key):
        return self.decode(sample_latent(*self.encode(actions), key)), self.skill_prior(images)


def prior_actor(model: SkillModel, squash: bool = False, name: str | None = None):
    """The skill prior's network as an ``agents.networks.Actor`` (``squash=True``: SPiRL's
    policy, same parameters, its Gaussian tanh-squashed)."""
    from parrot_jax.agents.networks import Actor  # here: the agents import this module

    return Actor(model.latent_dim, tuple(model.prior_hidden), image_obs=True,
                 channels=tuple(model.prior_channels), own_trunk=True, squash=squash,
                 log_std_min=LOG_STD_MIN, log_std_max=LOG_STD_MAX, name=name)


def make_skill_model(model_config: Mapping[str, Any], image_shape,
                     action_dim: int) -> SkillModel:
    """The skill model of ``config.model`` for images ``image_shape`` and actions of
    ``action_dim`` dimensions."""
    unknown = set(model_config) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown SPiRL model config fields {sorted(unknown)}; expected a "
                         f"subset of {sorted(FIELDS)}")
    kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v
              for k, v in model_config.items()}
    return SkillModel(image_shape=tuple(image_shape), action_dim=int(action_dim), **kwargs)


def make(description: Mapping[str, Any]) -> SkillModel:
    """The skill model a run's ``config.json`` describes."""
    return make_skill_model(description["model"], description["image_shape"],
                            description["action_dim"])


def dataset_fields(dataset) -> dict[str, Any]:
    return {"image_shape": list(dataset.image_shape), "action_dim": dataset.action_dim}


def sampling(config) -> dict[str, Any]:
    """Batches of ``horizon``-step windows of actions with the first image of each."""
    return {"window": int(config.model.horizon), "images": "first"}


def check_model(model) -> None:
    """ValueError naming the first invalid ``config.model`` field."""
    from parrot_jax.run_config import check_layer_sizes

    if int(model.horizon) < 1:
        raise ValueError(f"config.model.horizon={model.horizon}; expected >= 1 steps")
    for name in ("latent_dim", "lstm_size"):
        if int(model[name]) < 1:
            raise ValueError(f"config.model.{name}={model[name]}; expected a positive integer")
    for name in ("prior_hidden", "prior_channels"):
        check_layer_sizes(f"model.{name}", model[name])


def init_params(model: SkillModel, rng: jax.Array):
    actions = jnp.zeros((1, model.horizon, model.action_dim), jnp.float32)
    images = jnp.zeros((1, *model.image_shape), jnp.uint8)
    return model.init(rng, actions, images, jax.random.key(0))["params"]


def terms(model: SkillModel, params, batch, key: jax.Array | None) -> dict[str, jax.Array]:
    """Per-window ``recon`` (squared action error summed over the H x A values), ``mse``
    (per value), ``kl`` (q to N(0, I)), ``prior`` (KL of the stopped q to the skill prior;
    ``pretrained.train`` adds it to the loss unweighted) and ``prior_nll``: (B,) each.
    ``key=None``: ``z = mu``."""
    actions, images = batch["actions"], batch["observations"]
    mean, log_std = model.apply({"params": params}, actions, method="encode")
    z = sample_latent(mean, log_std, key)
    error = jnp.square(actions - model.apply({"params": params}, z, method="decode"))
    prior = model.apply({"params": params}, images, method="skill_prior")
    prior_log_std = jnp.log(prior.stddev())
    stopped_mean, stopped_log_std = jax.lax.stop_gradient((mean, log_std))
    return {"recon": jnp.sum(error, axis=(1, 2)), "mse": jnp.mean(error, axis=(1, 2)),
            "kl": gaussian_kl(mean, log_std),
            "prior": gaussian_kl(stopped_mean, stopped_log_std, prior.mean(), prior_log_std),
            "prior_nll": -prior.log_prob(stopped_mean)}


class SkillDecoder(TrajectoryDecoder):
    """The trained skill model: its decoder (``decode(z)`` -> (B, H, A)) and, for the
    ``spirl`` agent, its skill prior's parameters (``prior_params``)."""

    @property
    def prior_params(self):
        return self.params["prior"]


def load_skills(workdir: str, step: int | None = None) -> SkillDecoder:
    """The skill model saved by ``experiments.pretrain`` in ``workdir`` (latest by
    default)."""
    model, params, config, step = saved.load(workdir, KIND, "SPiRL skill model", make,
                                             init_params, step)
    return SkillDecoder(model, params, dict(config["model"]), tuple(config["image_shape"]),
                        step)


def write_initial_skills(workdir: str, model_config: Mapping[str, Any], action_dim: int = 7,
                         image_shape=(48, 48, 3), seed: int = 0) -> str:
    """A skill-model workdir holding the model at initialisation (``saved.write_initial``)."""
    description = {"kind": KIND, "model": dict(model_config), "image_shape": list(image_shape),
                   "action_dim": action_dim}
    return saved.write_initial(workdir, description,
                               init_params(make(description), jax.random.key(seed)))
