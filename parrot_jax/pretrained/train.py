"""Training a latent-variable model on the prior dataset (``config.kind``: the ``vae`` of
VAE-features, the ``cvae`` of HIRL, the ``trajvae`` of TrajRL, the ``spirl`` skill model
of SPiRL): loss, pure updates, and
``train_and_evaluate(config, workdir)``, the call ``experiments.pretrain`` and the
sweep's ``pretrain`` jobs make.

The loss is the negative evidence lower bound with a weight on its KL term (beta-VAE):

    L = 1/B sum_i [ recon_i(z_i) + beta(t) KL(q(z | x_i) || N(0, I)) ],
    z_i = mu(x_i) + sigma(x_i) * eps,  eps ~ N(0, I),

where ``recon`` is the model's summed squared error (``MODELS[kind].terms``: pixels on the
[0, 1] scale for the VAE, action dimensions for the cVAE, the whole trajectory's
actions for the TrajVAE and SPiRL's skill model): a Gaussian decoder's negative
log-likelihood with its variance fixed at 1/2, up to a constant. ``beta(t)`` follows
``losses.beta_schedule`` (``config.beta``). A model with a learned prior (SPiRL's
``spirl``) adds its prior's loss ``prior_i`` unweighted (``spirl`` docstring). Reported: ``loss``, ``recon``, ``mse`` (per
pixel or action dimension), ``kl`` (nats per sample), ``beta``; validation
(``eval/...``) decodes at ``z = mu`` (no sampling), so its numbers are deterministic.

Writes ``WORKDIR/config.json`` (with ``kind``; read by ``vae.load_vae`` /
``cvae.load_cvae``), Orbax checkpoints and metrics through the loop every pretrained
model shares (``parrot_jax.pretrained.loop``: sharded batches, exact resume).
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
from parrot_jax.pretrained import cvae, loop, spirl, trajvae, vae
from parrot_jax.pretrained.losses import beta_schedule

# config.kind -> the model's module: make(description), init_params(model, rng),
# terms(model, params, batch, key), check_model(config.model), dataset_fields(dataset),
# and optionally sampling(config) (``BatchSampler``'s window and images; default frames).
MODELS = {vae.KIND: vae, cvae.KIND: cvae, trajvae.KIND: trajvae, spirl.KIND: spirl}
RUN_DEFINING = ("kind", "model", "data", "validation_fraction", "seed", "beta")
# {"observations": (B, H, W, C) uint8, "actions": (B, A)}; a windowed model's actions
# (B, T, A), without observations when its sampling reads no image.
Batch = dict[str, jax.Array]


def model_module(kind: str):
    if kind not in MODELS:
        raise ValueError(f"config.kind={kind!r}; expected one of {tuple(MODELS)}")
    return MODELS[kind]


def loss_fn(params, model, terms, batch: Batch, key: jax.Array,
            beta: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    values = terms(model, params, batch, key)
    loss = jnp.mean(values["recon"] + beta * values["kl"] + values.get("prior", 0.0))
    return loss, {"loss": loss, "beta": beta, **{k: jnp.mean(v) for k, v in values.items()}}


def train_step(state: TrainState, batch: Batch, *, model, terms,
               optimizer: optax.GradientTransformation,
               beta: tuple[float, float, float]) -> tuple[TrainState, dict[str, jax.Array]]:
    """One Adam step on ``loss_fn`` with ``beta = (beta*, midpoint, width)``; the noise key
    is ``fold_in(state.rng, state.step)``, so a resumed run draws the same noise."""
    key = jax.random.fold_in(state.rng, state.step)
    weight = beta_schedule(state.step, *beta)
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, model, terms, batch, key,
                                                     weight)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    metrics["grad_norm"] = optax.tree.norm(grads)
    return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                         opt_state=opt_state), metrics


def train_steps(state: TrainState, batches: Batch, **kwargs):
    """``train_step`` over K stacked batches in one ``lax.scan`` dispatch."""
    return fused.scan_steps(lambda s, b: train_step(s, b, **kwargs), state, batches)


def eval_step(params, batch: Batch, *, model, terms) -> dict[str, jax.Array]:
    """Summed per-sample terms at ``z = mu`` and the sample count."""
    values = terms(model, params, batch, None)
    return {**{k: jnp.sum(v) for k, v in values.items()},
            "count": jnp.asarray(batch["actions"].shape[0], jnp.float32)}


def create_train_state(model, init_params, optimizer, rng: jax.Array) -> TrainState:
    init_rng, rng = jax.random.split(rng)
    params = init_params(model, init_rng)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), rng=rng)


@functools.lru_cache(maxsize=8)
def compile_programs(kind: str, model, mesh, learning_rate: float,
                     grad_clip_norm: float | None, beta: tuple[float, float, float],
                     steps_per_dispatch: int, fast_compile: bool = False) -> loop.Programs:
    module = model_module(kind)
    optimizer = make_optimizer(learning_rate, grad_clip_norm)
    kwargs = dict(model=model, terms=module.terms, optimizer=optimizer, beta=beta)
    return loop.jit_programs(
        mesh, init=functools.partial(create_train_state, model, module.init_params, optimizer),
        step=functools.partial(train_step, **kwargs),
        fused_step=functools.partial(train_steps, **kwargs),
        eval_step=functools.partial(eval_step, model=model, terms=module.terms),
        all_finite=all_finite, steps_per_dispatch=steps_per_dispatch,
        fast_compile=fast_compile)


def check_config(config: ml_collections.ConfigDict) -> None:
    """ValueError naming the first invalid setting."""
    module = model_module(config.kind)
    loop.check_loop_config(config)
    module.check_model(config.model)
    if not config.beta.value >= 0 or not config.beta.width >= 0:
        raise ValueError(f"config.beta.value={config.beta.value}, config.beta.width="
                         f"{config.beta.width}; expected a KL weight >= 0 and a width >= 0 "
                         "updates (0: constant)")


def check_inputs(config) -> None:
    """``check_config``, and that every ``config.dataset`` directory holds a dataset."""
    check_config(config)
    shared.check_datasets(config.dataset)


class LatentModel:
    """A pretrained latent-variable model as a ``loop.Model``."""

    check_inputs = staticmethod(check_inputs)

    @staticmethod
    def describe(config, dataset) -> dict[str, Any]:
        description = shared.to_json(config.to_dict())
        module = model_module(config.kind)
        description.update(module.dataset_fields(dataset))
        module.make(description)  # the dataset's shapes are ones the model can take
        description["data"] = {"paths": shared.dataset_paths(config.dataset),
                               "num_episodes": dataset.num_episodes,
                               "num_steps": dataset.num_steps}
        return description

    @staticmethod
    def check_and_write(workdir: str, description: dict[str, Any]) -> None:
        shared.check_and_write(workdir, description, RUN_DEFINING)

    @staticmethod
    def sampling(config) -> dict[str, Any]:
        return getattr(model_module(config.kind), "sampling", lambda config: {})(config)

    @staticmethod
    def programs(description, mesh, config) -> loop.Programs:
        beta = (float(config.beta.value), float(config.beta.midpoint), float(config.beta.width))
        return compile_programs(config.kind, model_module(config.kind).make(description), mesh,
                                float(config.learning_rate), config.grad_clip_norm, beta,
                                int(config.steps_per_dispatch), bool(config.fast_compile))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
    """Trains (or resumes, or finds finished) the run in ``workdir``; its final state."""
    return loop.fit(config, workdir, LatentModel)
