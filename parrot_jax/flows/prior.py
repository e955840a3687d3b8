"""The behavioral prior as a value: a flow module plus its parameters, loadable by one call.

    prior = load_prior("runs/prior")                 # the training workdir
    actions = prior.sample(z, images)                # a = tanh(f(z; s))
    z = prior.inverse(actions, images)               # z = f^{-1}(atanh a; s)
    logp = prior.log_prob(actions, images)           # log p(a | s), tanh Jacobian included

The methods are pure and batched (images (B, 48, 48, 3) uint8, z and actions
(B, action_dim) float32) and can be called inside ``jax.jit``. Parameters are bound to
the prior; for an explicit-parameter function use ``prior.apply`` (e.g.
``jax.jit(lambda p, z, s: prior.apply(p, z, s, method="sample"))``), and
``jax.tree.map`` over ``prior.params`` to move or shard them. Shapes and dtypes are
checked when a method is traced, so a mismatch fails with a message before any compute.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from parrot_jax import io
from parrot_jax.flows.realnvp import ConditionalRealNVP
from parrot_jax.run_config import CONFIG_FILE  # the training config, written by the trainer

IMAGE_SHAPE = (48, 48, 3)


# Model fields added after priors were first saved, with the value those priors have: a
# config.json without one was trained with it (pinned here, not read from the flow's
# defaults, which may change).
LEGACY_MODEL_FIELDS = {"encoder_pooled": 2, "encoder_strides": None, "encoder_head": "flatten",
                       "encoder_activation": "relu", "log_scale_bound": 1.0,
                       "offset_head": False}


def with_legacy_fields(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """A ``model`` section with the fields it lacks at their ``LEGACY_MODEL_FIELDS`` value."""
    return {**LEGACY_MODEL_FIELDS, **model_config}


def make_flow(model_config: Mapping[str, Any]) -> ConditionalRealNVP:
    """The flow module described by a config's ``model`` section (one saved before a field
    existed gets the value it was trained with, ``LEGACY_MODEL_FIELDS``)."""
    fields = {f.name for f in dataclasses.fields(ConditionalRealNVP)} - {"parent", "name"}
    unknown = set(model_config) - fields
    if unknown:
        raise ValueError(f"unknown model config fields {sorted(unknown)}; expected a subset "
                         f"of {sorted(fields)}")
    kwargs = {k: tuple(v) if isinstance(v, (list, tuple)) else v
              for k, v in with_legacy_fields(model_config).items()}
    return ConditionalRealNVP(**kwargs)


def init_params(flow: ConditionalRealNVP, rng: jax.Array, image_shape=IMAGE_SHAPE):
    """Fresh parameters (the flow is the identity map at init)."""
    images = jnp.zeros((1,) + tuple(image_shape), jnp.uint8)
    actions = jnp.zeros((1, flow.action_dim), jnp.float32)
    return flow.init(rng, actions, images)["params"]


@dataclasses.dataclass(frozen=True)
class BehavioralPrior:
    flow: ConditionalRealNVP
    params: Any
    image_shape: tuple[int, ...] = IMAGE_SHAPE
    step: int | None = None  # training step of the checkpoint it came from

    @property
    def action_dim(self) -> int:
        return self.flow.action_dim

    def apply(self, params, x, images, method: str = "sample"):
        """``method`` ('sample', 'inverse' or 'log_prob') with explicit ``params``."""
        if method not in ("sample", "inverse", "log_prob"):
            raise ValueError(f"method={method!r}; expected 'sample', 'inverse' or 'log_prob'")
        self._check(x, images, "z" if method == "sample" else "actions")
        return self.flow.apply({"params": params}, x, images, method=method)

    def sample(self, z, images):
        """Actions a = tanh(f(z; s)) in (-1, 1): (B, action_dim)."""
        return self.apply(self.params, z, images, "sample")

    def inverse(self, actions, images):
        """Latents z = f^{-1}(atanh(a); s): (B, action_dim). Actions must be in (-1, 1)."""
        return self.apply(self.params, actions, images, "inverse")

    def log_prob(self, actions, images):
        """log p(a | s) of squashed actions, tanh Jacobian included: (B,)."""
        return self.apply(self.params, actions, images, "log_prob")

    def _check(self, x, images, name: str) -> None:
        images_shape, x_shape = tuple(jnp.shape(images)), tuple(jnp.shape(x))
        if len(images_shape) != 4 or images_shape[1:] != tuple(self.image_shape):
            raise ValueError(f"images have shape {images_shape}; the prior expects "
                             f"(B, {', '.join(map(str, self.image_shape))})")
        if jnp.result_type(images) != jnp.uint8:
            raise ValueError(f"images have dtype {jnp.result_type(images)}; the prior expects "
                             "uint8 (0-255), as the env returns them")
        if x_shape != (images_shape[0], self.action_dim):
            raise ValueError(f"{name} has shape {x_shape}; the prior expects "
                             f"({images_shape[0]}, {self.action_dim}) for {images_shape[0]} "
                             f"images and action dimension {self.action_dim}")


def check_prior_dir(workdir: str) -> str:
    """The path of ``workdir``'s ``config.json``; FileNotFoundError if it holds no prior."""
    config_path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{workdir}: no prior here ({CONFIG_FILE} missing); pass the "
                                "workdir of experiments.train_prior")
    return config_path


def load_prior(workdir: str, step: int | None = None) -> BehavioralPrior:
    """The prior saved by ``experiments.train_prior`` in ``workdir`` (latest step by default)."""
    from parrot_jax import checkpoint  # Orbax is only needed when loading

    config_path = check_prior_dir(workdir)
    with open(config_path) as f:
        config = json.load(f)
    flow = make_flow(config["model"])
    image_shape = tuple(config.get("image_shape", IMAGE_SHAPE))
    abstract = jax.eval_shape(lambda: init_params(flow, jax.random.key(0), image_shape))
    params, step = checkpoint.load_params(os.path.join(workdir, checkpoint.DIRECTORY),
                                          abstract, step)
    return BehavioralPrior(flow, params, image_shape, step)


def write_initial_prior(workdir: str, model_config: Mapping[str, Any],
                        image_shape=IMAGE_SHAPE, step: int = 0, seed: int = 0) -> str:
    """A prior workdir as ``experiments.train_prior`` leaves it, holding the flow at
    initialisation (the identity: ``a = tanh(z)``): for benchmarks and tests that need a
    prior of a given architecture but not a trained one."""
    from parrot_jax import checkpoint

    params = init_params(make_flow(model_config), jax.random.key(seed), image_shape)
    os.makedirs(workdir, exist_ok=True)
    io.write_json(os.path.join(workdir, CONFIG_FILE),
                  {"model": dict(model_config), "image_shape": list(image_shape)})
    manager = checkpoint.Checkpoints(os.path.join(workdir, checkpoint.DIRECTORY))
    try:
        manager.save(step, {"params": params}, params)
    finally:
        manager.close()
    return workdir
