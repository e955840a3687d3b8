"""The jitted programs of a training run, with their shardings, and the batches they take.

Parameters and optimizer state are replicated over the mesh; a batch is split over its
``"data"`` axis on its leading (batch) axis, or on its second axis when
``steps_per_dispatch = K > 1`` stacks K batches for one ``lax.scan`` dispatch.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from parrot_jax import parallel
from parrot_jax.flows import train_state
from parrot_jax.flows.realnvp import ConditionalRealNVP


FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@dataclasses.dataclass(frozen=True)
class Programs:
    init: Callable  # rng -> TrainState at step 0, replicated
    update: Callable  # (state, batch) -> (state, metrics); donates the state
    evaluate: Callable  # (params, batch) -> summed NLLs and the count
    all_finite: Callable  # pytree -> bool scalar
    batch_sharding: NamedSharding  # of update's batch
    eval_sharding: NamedSharding  # of evaluate's batch


# Cached so that runs repeated in one process (tests, sweeps) reuse compiled programs;
# every argument is hashable and fixes the compiled code.
@functools.lru_cache(maxsize=16)
def compile_programs(flow: ConditionalRealNVP, mesh: Mesh, image_shape: tuple[int, ...],
                     learning_rate: float, grad_clip_norm: float | None,
                     steps_per_dispatch: int, max_abs_action: float,
                     fast_compile: bool = False, augment_pad: int = 0,
                     decay_steps: int = 0, final_lr_fraction: float = 0.1) -> Programs:
    """Jits ``train_state``'s pure functions for this flow, optimizer and mesh.

    ``fast_compile`` turns XLA's backend (LLVM) optimisations off: compiling takes about
    a third of the time and steps about 1.5x longer on CPU, right for tests.
    """
    optimizer = train_state.make_optimizer(learning_rate, grad_clip_norm, decay_steps,
                                           final_lr_fraction)
    jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE if fast_compile else None)
    replicated = parallel.replicated(mesh)
    kwargs = dict(flow=flow, max_abs_action=max_abs_action)
    fused = steps_per_dispatch > 1
    step = train_state.train_steps if fused else train_state.train_step
    data = NamedSharding(mesh, P(None, parallel.DATA_AXIS)) if fused else \
        parallel.batch_sharding(mesh)
    return Programs(
        init=jit(functools.partial(train_state.create_train_state, flow, optimizer,
                                       image_shape=image_shape), out_shardings=replicated),
        update=jit(functools.partial(step, optimizer=optimizer, augment_pad=augment_pad,
                                     **kwargs),
                       in_shardings=(replicated, data), out_shardings=replicated,
                       donate_argnums=0),
        evaluate=jit(functools.partial(train_state.eval_step, **kwargs),
                         in_shardings=(replicated, parallel.batch_sharding(mesh)),
                         out_shardings=replicated),
        all_finite=jit(train_state.all_finite, out_shardings=replicated),
        batch_sharding=data, eval_sharding=parallel.batch_sharding(mesh))


class StackedSampler:
    """``batch(j)``: batches ``jK .. jK + K - 1`` of ``sampler`` stacked on a new leading
    axis, the input of ``K`` updates fused into one dispatch."""

    def __init__(self, sampler, steps: int):
        self.sampler, self.steps, self.batch_size = sampler, steps, sampler.batch_size

    def batch(self, j: int) -> dict[str, np.ndarray]:
        batches = [self.sampler.batch(j * self.steps + i) for i in range(self.steps)]
        return {k: np.stack([b[k] for b in batches]) for k in batches[0]}
