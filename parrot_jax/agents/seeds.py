"""Many independent learners in one program: the states of S agents (seeds, or tasks)
stacked on a leading axis and updated together, in one dispatch, by the learner's update
(vmapped, or mapped over the agents).

For s = 1..S, in one dispatch,

    (state_s, metrics_s) <- update(state_s, batch_s)

with nothing shared between the S agents: parameters, optimizer states, target networks
and random keys are all per agent, so agent s follows exactly the updates a single run
with its key and batches would (equal up to floating-point summation order; tested). On
an accelerator, small networks leave most of the device idle at one agent's batch; S
agents fill it without S processes. The agent axis is split over the mesh's ``"data"``
axis when S is a multiple of the device count (each device trains whole agents, with no
communication), and replicated otherwise.

``over`` chooses how the S updates are batched: ``"vmap"`` (one batched program: per-agent
weights make every convolution a grouped one) or ``"map"`` (a ``lax.scan`` over the
agents, unrolled up to 8 as fused updates are: the S updates one after another inside one
dispatch, each an ordinary single-agent update). On this 2-core CPU (``:cpu`` network,
batch 64; one agent alone 6.64 updates/s) ``vmap`` gave 2.85 and 2.10 updates/s in all for
S = 2 and 4 (XLA:CPU's grouped convolutions are slow) and ``map`` 7.45 and 7.79 (one agent
already keeps both cores busy); ``map`` with S = 1 is a one-iteration loop XLA:CPU runs 5x
slower (1.37). On a GPU, ``vmap`` is what can fill the device (README "Performance").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from parrot_jax import fused, parallel
from parrot_jax.agents.agent import Agent
from parrot_jax.agents.programs import Programs
from parrot_jax.pretrained.loop import FAST_COMPILE


OVER = ("vmap", "map")


def stack(trees: list):
    """S pytrees of one structure -> one pytree with a leading axis of size S."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree, index: int):
    """Agent ``index`` of a stacked pytree."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def agent_sharding(mesh: Mesh, seeds: int) -> NamedSharding:
    """The agent axis over the mesh's ``"data"`` axis when it divides S, else replicated."""
    if seeds % mesh.size == 0:
        return NamedSharding(mesh, P(parallel.DATA_AXIS))
    return parallel.replicated(mesh)


@functools.lru_cache(maxsize=16)
def compile_seed_programs(agent: Agent, mesh: Mesh, observation_shape: tuple[int, ...],
                          observation_dtype: str, fused_updates: int, seeds: int,
                          fast_compile: bool = False, over: str = "vmap") -> Programs:
    """``agents.programs.compile_programs`` for S agents at once.

    ``init(keys)``: keys of shape (S,) -> the S stacked step-0 states;
    ``update(states, batches)``: batches with a leading agent axis, ``(S, B, ...)``, or
    ``(S, K, B, ...)`` for K fused updates -> (states, metrics with a leading S axis).
    """
    if seeds < 1:
        raise ValueError(f"seeds={seeds}; expected at least one agent")
    if over not in OVER:
        raise ValueError(f"over={over!r}; expected one of {OVER}")
    jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE if fast_compile else None)
    example = jnp.zeros(observation_shape, observation_dtype)
    learner = agent.learner

    def init(rng):
        return learner.init_state(agent.networks, agent.hp, rng, example)

    step = learner.update_steps if fused_updates > 1 else learner.update_step
    sharding = agent_sharding(mesh, seeds)
    one = functools.partial(step, networks=agent.networks, hp=agent.hp)
    if over == "vmap":
        update = jax.vmap(one)
    else:
        def update(states, batches):  # unrolled as fused updates are (``parrot_jax.fused``)
            _, out = jax.lax.scan(lambda _, pair: (None, one(*pair)), None,
                                  (states, batches), unroll=seeds <= fused.MAX_UNROLL)
            return out
    return Programs(
        init=jit(jax.vmap(init), out_shardings=sharding),
        update=jit(update, in_shardings=(sharding, sharding), out_shardings=sharding,
                   donate_argnums=0),
        batch_sharding=sharding, replicated=parallel.replicated(mesh))
