"""PyTorch figures for the suite: the references in ``benchmarks/torch_ref`` timed on the
same architectures, updates and batches as ``benchmarks.learner`` times ours.

PyTorch on CPU runs synchronously, so wall time around the calls is the compute; on a
GPU the timings synchronise the device before reading the clock. Each figure is the median
over ``repeats`` of ``steps`` calls, after one warm-up call.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Mapping

import numpy as np
import torch

from benchmarks import common, learner
from benchmarks.torch_ref import flow as torch_flow, sac as torch_sac
from parrot_jax.flows.prior import make_flow


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure(threads: int) -> None:
    """What a competent PyTorch user sets: all cores; on a GPU, cuDNN autotuning and
    TF32 matmuls (JAX's default float32 matmul precision on GPUs is TF32-like too)."""
    torch.set_num_threads(threads)
    if device().type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")


def _time(call: Callable[[], Any], steps: int, repeats: int) -> learner.Timing:
    dev = device()

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            call()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run(1)  # warm-up
    steps = common.calibrate(run, steps)
    per_call = [run(steps) / steps for _ in range(repeats)]
    return learner.Timing(statistics.median(per_call), per_call, None)


def _tensors(batch: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device()) for k, v in batch.items()}


def time_flow(model: Mapping[str, Any], batch_size: int, steps: int,
              repeats: int) -> learner.Timing:
    """Seconds per maximum-likelihood Adam step of the torch flow (``Trainer.step``)."""
    flow = torch_flow.Flow.from_module(make_flow(model)).to(device())
    trainer = torch_flow.Trainer(flow, learning_rate=1e-4,
                                 max_abs_action=learner.MAX_ABS_ACTION)
    batch = _tensors(learner.flow_batch(batch_size))
    return _time(lambda: trainer.step(batch["observations"], batch["actions"]), steps,
                 repeats)


def time_sac(config, batch_size: int, steps: int, repeats: int) -> learner.Timing:
    """Seconds per update of the torch SAC (``SAC.update``) for the ``sac`` agent that
    ``config`` describes."""
    agent = learner.make_agent(config)
    sac = torch_sac.SAC.from_networks(agent.networks, agent.hp, device=device(), seed=0)
    batch = _tensors(learner.sac_batch(batch_size, agent.policy_dim))
    return _time(lambda: sac.update(batch), steps, repeats)


def time_acting(config, prior_model: Mapping[str, Any], batch_size: int, steps: int,
                repeats: int) -> learner.Timing:
    """Seconds per PARROT acting call in torch, host to host: uint8 images in, the
    policy's z ~ pi(. | s) through the prior's ``sample(z, s)``, NumPy actions out."""
    agent = learner.make_agent(config, prior_model)
    sac = torch_sac.SAC.from_networks(agent.networks, agent.hp, device=device(), seed=0)
    flow = torch_flow.Flow.from_module(make_flow(prior_model)).to(device())
    obs = learner.random_images(np.random.default_rng(0), (batch_size,))
    generator = torch.Generator(device()).manual_seed(0)

    @torch.no_grad()
    def act():
        images = torch.from_numpy(obs).to(device())
        noise = torch.randn(batch_size, agent.policy_dim, generator=generator,
                            device=device())
        z, _ = sac.policy_sample(sac.preprocess(images), noise)
        return flow.sample(z, images).cpu().numpy()

    return _time(act, steps, repeats)
