"""Training the VAE of VAE-features on the prior dataset's images: loss, pure updates,
and ``train_and_evaluate(config, workdir)``.

The loss is the negative evidence lower bound with a weight on its KL term (beta-VAE):

    L = 1/B sum_i [ sum_pixels (x_i - x_hat(z_i))^2 + beta(t) KL(q(z | x_i) || N(0, I)) ],
    z_i = mu(x_i) + sigma(x_i) * eps,  eps ~ N(0, I),

pixels on the [0, 1] scale. The squared error is a Gaussian decoder's negative
log-likelihood with its variance fixed at 1/2 (up to a constant); ``beta(t)``
follows ``losses.beta_schedule`` (constant by default). Reported: ``loss``, ``recon``
(the summed squared error per image), ``mse`` (per pixel), ``kl`` (nats per image),
``beta``; validation (``eval/...``) decodes at ``z = mu`` (no sampling), so its numbers
are deterministic.

Writes ``WORKDIR/config.json`` (``kind: "vae"``, read by ``vae.load_vae``), Orbax
checkpoints and metrics through the loop every pretrained model shares
(``parrot_jax.pretrained.loop``: sharded batches, exact resume).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from parrot_jax import fused
from parrot_jax import run_config as shared
from parrot_jax.flows.train_state import TrainState, all_finite, make_optimizer
from parrot_jax.pretrained import loop
from parrot_jax.pretrained.losses import beta_schedule, gaussian_kl
from parrot_jax.pretrained.vae import KIND, ImageVAE, init_params, make_vae

RUN_DEFINING = ("kind", "model", "data", "validation_fraction", "seed", "beta")
Batch = dict[str, jax.Array]  # {"observations": (B, H, W, C) uint8, ...}


def reconstruction_terms(params, vae: ImageVAE, images: jax.Array,
                         key: jax.Array | None) -> dict[str, jax.Array]:
    """Per-image ``recon`` (summed squared error), ``mse`` and ``kl``: (B,) each.
    ``key=None`` decodes at ``z = mu``."""
    mean, log_std = vae.apply({"params": params}, images, method="encode")
    z = mean if key is None else mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    decoded = vae.apply({"params": params}, z, method="decode")
    error = jnp.square(images.astype(jnp.float32) / 255.0 - decoded)
    recon = jnp.sum(error, axis=(1, 2, 3))
    return {"recon": recon, "mse": jnp.mean(error, axis=(1, 2, 3)),
            "kl": gaussian_kl(mean, log_std)}


def loss_fn(params, vae: ImageVAE, batch: Batch, key: jax.Array,
            beta: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    terms = reconstruction_terms(params, vae, batch["observations"], key)
    loss = jnp.mean(terms["recon"] + beta * terms["kl"])
    return loss, {"loss": loss, "beta": beta, **{k: jnp.mean(v) for k, v in terms.items()}}


def train_step(state: TrainState, batch: Batch, *, vae: ImageVAE,
               optimizer: optax.GradientTransformation,
               beta: tuple[float, float, float]) -> tuple[TrainState, dict[str, jax.Array]]:
    """One Adam step on ``loss_fn`` with ``beta = (beta*, midpoint, width)``; the noise key
    is ``fold_in(state.rng, state.step)``, so a resumed run draws the same noise."""
    key = jax.random.fold_in(state.rng, state.step)
    weight = beta_schedule(state.step, *beta)
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, vae, batch, key, weight)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                         opt_state=opt_state), metrics


def train_steps(state: TrainState, batches: Batch, **kwargs):
    """``train_step`` over K stacked batches in one ``lax.scan`` dispatch."""
    return fused.scan_steps(lambda s, b: train_step(s, b, **kwargs), state, batches)


def eval_step(params, batch: Batch, *, vae: ImageVAE) -> dict[str, jax.Array]:
    """Summed per-image terms at ``z = mu`` and the image count."""
    terms = reconstruction_terms(params, vae, batch["observations"], None)
    return {**{k: jnp.sum(v) for k, v in terms.items()},
            "count": jnp.asarray(batch["observations"].shape[0], jnp.float32)}


def create_train_state(vae: ImageVAE, optimizer, rng: jax.Array) -> TrainState:
    init_rng, rng = jax.random.split(rng)
    params = init_params(vae, init_rng)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=rng)


@functools.lru_cache(maxsize=8)
def compile_programs(vae: ImageVAE, mesh, learning_rate: float, grad_clip_norm: float | None,
                     beta: tuple[float, float, float], steps_per_dispatch: int,
                     fast_compile: bool = False) -> loop.Programs:
    optimizer = make_optimizer(learning_rate, grad_clip_norm)
    kwargs = dict(vae=vae, optimizer=optimizer, beta=beta)
    return loop.jit_programs(
        mesh, init=functools.partial(create_train_state, vae, optimizer),
        step=functools.partial(train_step, **kwargs),
        fused_step=functools.partial(train_steps, **kwargs),
        eval_step=functools.partial(eval_step, vae=vae), all_finite=all_finite,
        steps_per_dispatch=steps_per_dispatch, fast_compile=fast_compile)


def check_config(config: ml_collections.ConfigDict) -> None:
    """ValueError naming the first invalid setting."""
    if config.kind != KIND:
        raise ValueError(f"config.kind={config.kind!r}; this trainer fits {KIND!r}")
    loop.check_loop_config(config)
    for name in ("channels", "num_residual", "latent_dim"):
        if int(config.model[name]) < (0 if name == "num_residual" else 1):
            raise ValueError(f"config.model.{name}={config.model[name]}; expected a "
                             f"{'non-negative' if name == 'num_residual' else 'positive'} "
                             "integer")
    if not config.beta.value >= 0 or not config.beta.width >= 0:
        raise ValueError(f"config.beta.value={config.beta.value}, config.beta.width="
                         f"{config.beta.width}; expected a KL weight >= 0 and a width >= 0 "
                         "updates (0: constant)")


class VAE:
    """The VAE as a ``loop.Model``."""

    @staticmethod
    def check_inputs(config) -> None:
        check_config(config)
        shared.check_datasets(config.dataset)

    @staticmethod
    def describe(config, dataset) -> dict[str, Any]:
        description = shared.to_json(config.to_dict())
        make_vae(description["model"], dataset.image_shape)  # the shape is one it can take
        description.update(
            image_shape=list(dataset.image_shape),
            data={"paths": shared.dataset_paths(config.dataset),
                  "num_episodes": dataset.num_episodes, "num_steps": dataset.num_steps})
        return description

    @staticmethod
    def check_and_write(workdir: str, description: dict[str, Any]) -> None:
        shared.check_and_write(workdir, description, RUN_DEFINING)

    @staticmethod
    def programs(description, mesh, config) -> loop.Programs:
        beta = (float(config.beta.value), float(config.beta.midpoint), float(config.beta.width))
        return compile_programs(make_vae(description["model"], description["image_shape"]),
                                mesh, float(config.learning_rate), config.grad_clip_norm,
                                beta, int(config.steps_per_dispatch), bool(config.fast_compile))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains (or resumes, or finds finished) the VAE run in ``workdir``."""
    return loop.fit(config, workdir, VAE)
