"""JAX learner figures: flow training steps, SAC updates and acting, timed on the device.

Every figure times the jitted program that training itself runs (``flows.programs`` and
``agents.programs``: replicated parameters, the batch split over the mesh's ``"data"``
axis, the state donated), on one device-resident batch, so it measures the learner and
not the loader (the suite's data section measures that). A figure is the median over
``repeats`` of ``steps`` back-to-back calls, after one compile call and one warm-up
call, ended by ``block_until_ready``. FLOPs per step come from XLA's cost analysis of
the compiled (unfused, one-update) program.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from benchmarks import common
from experiments.configs import rl as rl_config
from parrot_jax.agents import agent as agent_lib
from parrot_jax.agents import programs as agent_programs
from parrot_jax.flows import programs as flow_programs
from parrot_jax.flows.prior import IMAGE_SHAPE, init_params, make_flow

ACTION_DIM = 7
MAX_ABS_ACTION = 0.999999


@dataclasses.dataclass(frozen=True)
class Timing:
    seconds_per_call: float  # median
    repeats: list[float]  # seconds per call of every repeat
    flops_per_call: float | None  # XLA's count for one call (None: unavailable)


def time_calls(call: Callable[[Any], Any], carry: Any, steps: int, repeats: int) -> Timing:
    """``carry = call(carry)`` ``steps`` times per repeat (more if that is shorter than
    ``common.MIN_REPEAT_SECONDS``), after a warm-up; the compile happens before, in the
    caller's first call. Ends every repeat with ``block_until_ready``."""
    state = [jax.block_until_ready(call(carry))]

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            state[0] = call(state[0])
        jax.block_until_ready(state[0])
        return time.perf_counter() - start

    steps = common.calibrate(run, steps)
    per_call = [run(steps) / steps for _ in range(repeats)]
    return Timing(statistics.median(per_call), per_call, None)


def cost_analysis(compiled) -> dict:
    """XLA's cost analysis of a compiled program as one dict (empty if absent): "flops",
    "bytes accessed", ..."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return dict(cost or {})


def compiled_flops(jitted, *args) -> float | None:
    """FLOPs of one call of ``jitted(*args)`` by XLA's cost analysis (None if absent)."""
    flops = cost_analysis(jitted.lower(*args).compile()).get("flops")
    return float(flops) if flops and flops > 0 else None


def random_images(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(0, 256, tuple(shape) + IMAGE_SHAPE, dtype=np.uint8)


def flow_batch(batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"observations": random_images(rng, (batch_size,)),
            "actions": rng.uniform(-0.95, 0.95, (batch_size, ACTION_DIM)).astype(np.float32)}


def stack(batch: Mapping[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    return {name: np.stack([v] * k) for name, v in batch.items()}


def matmul_flops_per_s(size: int, steps: int, repeats: int) -> Timing:
    """A float32 ``size x size`` matmul: the practical peak the learner figures are read
    against (XLA's dot kernels; on a GPU, its default matmul precision)."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    matmul = jax.jit(lambda x: (x @ a) * (1.0 / size))  # rescaled: values stay finite
    matmul(a)  # compile
    timing = time_calls(matmul, a, steps, repeats)
    return Timing(timing.seconds_per_call, timing.repeats, 2.0 * size ** 3)


# Flow prior training.

def time_flow(model: Mapping[str, Any], batch_size: int, mesh: Mesh, steps: int,
              repeats: int, steps_per_dispatch: int = 1, learning_rate: float = 1e-4,
              fast_compile: bool = False) -> Timing:
    """Seconds per maximum-likelihood Adam step (one update, also when K are fused)."""
    flow = make_flow(model)
    programs = flow_programs.compile_programs(
        flow, mesh, IMAGE_SHAPE, learning_rate, None, steps_per_dispatch, MAX_ABS_ACTION,
        fast_compile)
    return time_update(programs, flow_batch(batch_size), steps, repeats, steps_per_dispatch)


def time_update(programs, batch: Mapping[str, np.ndarray], steps: int, repeats: int,
                fused: int) -> Timing:
    """Seconds per update of ``programs.update`` (flow or SAC programs) from a fresh state on
    ``batch`` (stacked K times when ``fused = K > 1``); FLOPs from the unfused program."""
    state = programs.init(jax.random.key(0))
    flops = None
    if fused == 1:
        flops = compiled_flops(programs.update, state,
                               jax.device_put(batch, programs.batch_sharding))
    else:
        batch = stack(batch, fused)
    batch = jax.device_put(batch, programs.batch_sharding)
    state, _ = programs.update(state, batch)  # compile
    timing = time_calls(lambda s: programs.update(s, batch)[0], state,
                        max(1, steps // fused), repeats)
    return Timing(timing.seconds_per_call / fused, [r / fused for r in timing.repeats], flops)


# SAC.

def rl_config_for(agent: str, network: Mapping[str, Any] | None = None,
                  sac: Mapping[str, Any] | None = None):
    """The RL config (``experiments/configs/rl.py``, paper defaults) with overrides."""
    config = rl_config.get_config()
    config.agent = agent
    config.network.update(dict(network or {}))
    config.sac.update(dict(sac or {}))
    return config


def make_agent(config, prior_model: Mapping[str, Any] | None = None) -> agent_lib.Agent:
    return agent_lib.make_agent(config, IMAGE_SHAPE, "uint8", (ACTION_DIM,), (-1.0, 1.0),
                                prior_model, IMAGE_SHAPE if prior_model else None)


def sac_batch(batch_size: int, action_dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"observations": random_images(rng, (batch_size,)),
            "actions": rng.uniform(-0.95, 0.95, (batch_size, action_dim)).astype(np.float32),
            "rewards": rng.uniform(0, 1, batch_size).astype(np.float32),
            "next_observations": random_images(rng, (batch_size,)),
            "terminated": rng.uniform(size=batch_size) < 0.05}


def time_sac(config, batch_size: int, mesh: Mesh, steps: int, repeats: int,
             fused_updates: int = 1, fast_compile: bool = False) -> Timing:
    """Seconds per SAC update (critic, actor, temperature, target) of the ``sac`` agent."""
    agent = make_agent(config)
    programs = agent_programs.compile_programs(agent, mesh, IMAGE_SHAPE, "uint8",
                                               fused_updates, fast_compile)
    return time_update(programs, sac_batch(batch_size, agent.policy_dim), steps, repeats,
                       fused_updates)


def time_sac_seeds(config, batch_size: int, mesh: Mesh, seeds: int, steps: int, repeats: int,
                   fast_compile: bool = False, over: str = "vmap") -> Timing:
    """Seconds per update of S independent SAC agents in one program (``agents.seeds``,
    ``over="vmap"`` or ``"map"``), each on its own batch of ``batch_size``: one call
    updates all S."""
    from parrot_jax.agents import seeds as seeds_lib

    agent = make_agent(config)
    programs = seeds_lib.compile_seed_programs(agent, mesh, IMAGE_SHAPE, "uint8", 1, seeds,
                                               fast_compile, over)
    state = programs.init(jax.random.split(jax.random.key(0), seeds))
    batch = seeds_lib.stack([sac_batch(batch_size, agent.policy_dim, s) for s in range(seeds)])
    batch = jax.device_put(batch, programs.batch_sharding)
    state, _ = programs.update(state, batch)  # compile
    return time_calls(lambda s: programs.update(s, batch)[0], state, steps, repeats)


# Acting.

def parrot_acting(config, prior_model: Mapping[str, Any]):
    """(agent, params) of a PARROT agent at initialisation with a prior at init."""
    agent = make_agent(config, prior_model)
    programs = agent_programs.compile_programs(agent, _single_device_mesh(), IMAGE_SHAPE,
                                               "uint8", 1)
    state = programs.init(jax.random.key(0))
    prior_params = init_params(make_flow(prior_model), jax.random.key(1))
    return agent, agent_lib.acting_params(state, prior_params)


def time_acting(agent: agent_lib.Agent, params, batch_size: int, steps: int,
                repeats: int) -> Timing:
    """Seconds per ``act`` call on ``batch_size`` observations, host to host: uint8
    images in, NumPy env actions out (what the training loop does every pool step)."""
    obs = random_images(np.random.default_rng(0), (batch_size,))
    key = jax.random.key(0)

    def call(i):
        np.asarray(agent_programs.act(agent, params, obs, jax.random.fold_in(key, i))[1])
        return i + 1

    call(0)  # compile
    timing = time_calls(call, 1, steps, repeats)  # np.asarray in call: synchronous
    flops = compiled_flops(agent_programs.act, agent, params, jnp.asarray(obs), key)
    return Timing(timing.seconds_per_call, timing.repeats, flops)


def _single_device_mesh() -> Mesh:
    from parrot_jax import parallel

    return parallel.make_mesh(1)
