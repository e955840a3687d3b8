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

``closed_loop=True`` is the public code's closed-loop variant (``closed_loop_spirl_mdl``):
each step's image is encoded (a conv encoder to ``state_features`` = 32), the posterior's
LSTM reads ``[a_t, e(s_t)]``, and the decoder is an MLP per step,
``a_t = tanh(g(e(s_t), z))``, so a skill reacts to what it sees. Its batches hold every
image of the window. In RL the skill then runs through ``envs.chunks.LatentSkills``,
which decodes each step's action from that step's observation (``StepDecoder``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from parrot_jax.networks.encoder import ConvEncoder
from parrot_jax.networks.mlp import MLP
from parrot_jax.pretrained import saved
from parrot_jax.pretrained.losses import gaussian_kl, sample_latent
from parrot_jax.pretrained.trajvae import TrajectoryDecoder

KIND = "spirl"
LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0
FIELDS = ("horizon", "latent_dim", "lstm_size", "prior_hidden", "prior_channels",
          "closed_loop", "state_features", "decoder_hidden")


class SkillModel(nn.Module):
    """``encode(actions (B, H, A)[, images (B, H, h, w, c)])`` -> ``(mu, log_sigma)``;
    ``decode(z[, images])`` -> (B, H, A) in (-1, 1) (closed-loop: given each step's image);
    ``skill_prior(images (B, h, w, c))`` -> the prior's Gaussian. Params ``encoder``,
    ``encoder_out``, ``decoder``, ``decoder_out`` (open-loop) or ``state_encoder`` and
    ``step_decoder`` (closed-loop), and ``prior``."""

    image_shape: tuple[int, int, int] = (48, 48, 3)
    horizon: int = 5
    action_dim: int = 7
    latent_dim: int = 10
    lstm_size: int = 128
    prior_hidden: Sequence[int] = (128,) * 6
    prior_channels: Sequence[int] = (8, 16, 32)
    closed_loop: bool = False
    state_features: int = 32  # closed-loop: e(s_t), each step's image encoded
    decoder_hidden: Sequence[int] = (128, 128, 128)  # closed-loop: the per-step decoder

    def setup(self):
        self.encoder = nn.RNN(nn.OptimizedLSTMCell(self.lstm_size))
        self.encoder_out = nn.Dense(2 * self.latent_dim)
        if self.closed_loop:
            self.state_encoder = ConvEncoder(channels=tuple(self.prior_channels), pooled=2,
                                             hidden=(), features=self.state_features)
            self.step_decoder = MLP(tuple(self.decoder_hidden), self.action_dim)
        else:
            self.decoder = nn.RNN(nn.OptimizedLSTMCell(self.lstm_size))
            self.decoder_out = nn.Dense(self.action_dim)
        self.prior = prior_actor(self)

    def encode(self, actions, images=None):
        inputs = actions.astype(jnp.float32)
        if self.closed_loop:
            inputs = jnp.concatenate([inputs, self.state_encoder(images)], axis=-1)
        outputs = self.encoder(inputs)
        mean, log_std = jnp.split(self.encoder_out(outputs[:, -1]), 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def decode(self, z, images=None):
        if self.closed_loop:  # every step of the window from its own image
            steps = jnp.broadcast_to(z[:, None, :], images.shape[:2] + z.shape[-1:])
            return self.decode_step(steps, images)
        inputs = jnp.broadcast_to(z[:, None, :], (z.shape[0], self.horizon, z.shape[-1]))
        return jnp.tanh(self.decoder_out(self.decoder(inputs)))

    def decode_step(self, z, images):
        """Closed-loop: one step's action ``tanh(g(e(s), z))`` (..., A) from its image."""
        features = self.state_encoder(images)
        return jnp.tanh(self.step_decoder(jnp.concatenate([features, z], axis=-1)))

    def skill_prior(self, images):
        """p_a(z | s): a ``distrax.MultivariateNormalDiag``."""
        return self.prior(images)

    def env_action(self, z, images=None):
        """What the env executes: open-loop, the skill as one flat action of
        ``ActionChunks`` (B, H * A), ``images`` unused; closed-loop, ``z`` itself, which
        ``envs.chunks.LatentSkills`` decodes step by step."""
        if self.closed_loop:
            return z
        return self.decode(z).reshape(z.shape[0], self.horizon * self.action_dim)

    def __call__(self, actions, images, key):
        """``images``: the window's (closed-loop) or its first (open-loop)."""
        window = images if self.closed_loop else None
        z = sample_latent(*self.encode(actions, window), key)
        first = images[:, 0] if self.closed_loop else images
        return self.decode(z, window), self.skill_prior(first)


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
    """Batches of ``horizon``-step windows of actions with the first image of each
    (closed-loop: with every image)."""
    closed = bool(config.model.get("closed_loop", False))
    return {"window": int(config.model.horizon), "images": True if closed else "first"}


def check_model(model) -> None:
    """ValueError naming the first invalid ``config.model`` field."""
    from parrot_jax.run_config import check_layer_sizes

    if int(model.horizon) < 1:
        raise ValueError(f"config.model.horizon={model.horizon}; expected >= 1 steps")
    for name in ("latent_dim", "lstm_size", "state_features"):
        if name in model and int(model[name]) < 1:
            raise ValueError(f"config.model.{name}={model[name]}; expected a positive integer")
    for name in ("prior_hidden", "prior_channels", "decoder_hidden"):
        if name in model:
            check_layer_sizes(f"model.{name}", model[name])


def init_params(model: SkillModel, rng: jax.Array):
    actions = jnp.zeros((1, model.horizon, model.action_dim), jnp.float32)
    window = (1, model.horizon) if model.closed_loop else (1,)
    images = jnp.zeros((*window, *model.image_shape), jnp.uint8)
    return model.init(rng, actions, images, jax.random.key(0))["params"]


def terms(model: SkillModel, params, batch, key: jax.Array | None) -> dict[str, jax.Array]:
    """Per-window ``recon`` (squared action error summed over the H x A values), ``mse``
    (per value), ``kl`` (q to N(0, I)), ``prior`` (KL of the stopped q to the skill prior;
    ``pretrained.train`` adds it to the loss unweighted) and ``prior_nll``: (B,) each.
    ``key=None``: ``z = mu``."""
    actions, images = batch["actions"], batch["observations"]
    window = images if model.closed_loop else None  # (B, H, ...) closed-loop, else (B, ...)
    mean, log_std = model.apply({"params": params}, actions, window, method="encode")
    z = sample_latent(mean, log_std, key)
    error = jnp.square(actions - model.apply({"params": params}, z, window, method="decode"))
    first = images[:, 0] if model.closed_loop else images
    prior = model.apply({"params": params}, first, method="skill_prior")
    prior_log_std = jnp.log(prior.stddev())
    stopped_mean, stopped_log_std = jax.lax.stop_gradient((mean, log_std))
    return {"recon": jnp.sum(error, axis=(1, 2)), "mse": jnp.mean(error, axis=(1, 2)),
            "kl": gaussian_kl(mean, log_std),
            "prior": gaussian_kl(stopped_mean, stopped_log_std, prior.mean(), prior_log_std),
            "prior_nll": -prior.log_prob(stopped_mean)}


class SkillDecoder(TrajectoryDecoder):
    """The trained skill model: its decoder (``decode(z[, images])`` -> (B, H, A)) and,
    for the ``spirl`` agent, its skill prior's parameters (``prior_params``)."""

    @property
    def prior_params(self):
        return self.params["prior"]

    @property
    def action_dim(self) -> int:
        """The dimension of the env action a skill is: the flat plan (H x A) open-loop,
        the latent closed-loop (``LatentSkills`` decodes it)."""
        return self.latent_dim if self.model.closed_loop else super().action_dim

    def decode(self, z, images=None):
        return self.model.apply({"params": self.params}, z, images, method="decode")


@dataclasses.dataclass(frozen=True)
class StepDecoder:
    """A closed-loop skill model's per-step decoder as a plain callable for
    ``envs.chunks.LatentSkills``: ``(z (latent_dim,), observation) -> action (A,)``.

    Picklable (the model's config and numpy parameters), so env workers receive it; each
    builds and jits the decoder on its own CPU at its first call (the learner keeps the
    accelerator; one image per call is a CPU's work)."""

    model_config: dict
    image_shape: tuple
    action_dim: int
    params: Any  # numpy arrays

    def __call__(self, z, observation):
        if not hasattr(self, "_decode"):
            object.__setattr__(self, "_decode", self._build())
        return np.asarray(self._decode(np.asarray(z, np.float32)[None],
                                       np.asarray(observation)[None]))[0]

    def _build(self):
        if not _backends_started():  # an env worker: keep JAX off the accelerator
            jax.config.update("jax_platforms", "cpu")
        cpu = jax.devices("cpu")[0]
        model = make_skill_model(self.model_config, self.image_shape, self.action_dim)
        params = jax.device_put(self.params, cpu)
        step = jax.jit(lambda p, z, obs: model.apply({"params": p}, z, obs,
                                                     method="decode_step"))
        return lambda z, obs: step(params, jax.device_put(z, cpu), jax.device_put(obs, cpu))

    def __getstate__(self):  # the jitted function stays behind
        return {k: v for k, v in self.__dict__.items() if k != "_decode"}


def _backends_started() -> bool:
    """Whether this process has started JAX's backends (then its platforms are fixed)."""
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except (ImportError, AttributeError):  # a JAX without this internal: assume started
        return True


def step_decoder(skills: "SkillDecoder") -> StepDecoder:
    """``skills``' per-step decoder for ``LatentSkills`` (closed-loop models only)."""
    if not skills.model.closed_loop:
        raise ValueError("an open-loop skill model has no per-step decoder; its skills run "
                         "as plans through envs.chunks.ActionChunks")
    return StepDecoder(dict(skills.model_config), tuple(skills.image_shape),
                       skills.step_action_dim, jax.tree.map(np.asarray, skills.params))


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
    return saved.write_initial_model(workdir, KIND, make, init_params, model_config,
                                     action_dim, image_shape, seed)
