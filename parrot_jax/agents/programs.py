"""The jitted programs of an RL run: init, (fused) updates of the agent's learner (SAC,
IQL or AWAC) and acting, with shardings;
acting functions for ``flows.evaluate.rollout_success`` (``act_fn``, and ``StartRecorder``,
which also reads the critic at each episode's first step).

Parameters, optimizer states and the temperature are replicated over the mesh; a batch
of transitions is split over its ``"data"`` axis (on the second axis when ``K > 1``
updates are fused into one ``lax.scan`` dispatch over K stacked batches).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from parrot_jax import parallel
from parrot_jax.agents.agent import Agent
from parrot_jax.pretrained.loop import FAST_COMPILE


@dataclasses.dataclass(frozen=True)
class Programs:
    init: Callable  # rng -> the learner's state at step 0, replicated
    update: Callable  # (state, batch) -> (state, metrics); donates the state
    batch_sharding: NamedSharding
    replicated: NamedSharding


@functools.lru_cache(maxsize=16)
def compile_programs(agent: Agent, mesh: Mesh, observation_shape: tuple[int, ...],
                     observation_dtype: str, fused_updates: int,
                     fast_compile: bool = False) -> Programs:
    jit = functools.partial(jax.jit, compiler_options=FAST_COMPILE if fast_compile else None)
    replicated = parallel.replicated(mesh)
    example = jnp.zeros(observation_shape, observation_dtype)

    learner = agent.learner  # sac, iql or awac: the same functions, the same shardings

    def init(rng):
        return learner.init_state(agent.networks, agent.hp, rng, example)

    fused = fused_updates > 1
    step = learner.update_steps if fused else learner.update_step
    data = (NamedSharding(mesh, P(None, parallel.DATA_AXIS)) if fused
            else parallel.batch_sharding(mesh))
    return Programs(
        init=jit(init, out_shardings=replicated),
        update=jit(functools.partial(step, networks=agent.networks, hp=agent.hp),
                   in_shardings=(replicated, data), out_shardings=replicated,
                   donate_argnums=0),
        batch_sharding=data, replicated=replicated)


@functools.partial(jax.jit, static_argnames=("agent", "deterministic"))
def act(agent: Agent, params, obs, key, deterministic: bool = False):
    """``agent.act`` compiled once per agent and mode: (policy_actions, env_actions)."""
    return agent.act(params, obs, key, deterministic)


@functools.partial(jax.jit, static_argnames=("agent", "samples"))
def act_by_critic(agent: Agent, params, obs, key, samples: int):
    """``agent.act_by_critic`` compiled once per agent and sample count."""
    return agent.act_by_critic(params, obs, key, samples)


def act_fn(agent: Agent, params, deterministic: bool):
    """``(obs, key) -> env actions`` as NumPy, for ``flows.evaluate.rollout_success``."""
    return lambda obs, key: np.asarray(act(agent, params, obs, key, deterministic)[1])


class StartRecorder:
    """``act_fn`` for ``rollout_success`` that keeps each episode's first observation and
    policy action, so the critic's ``Q(s_0, a_0)`` can be read against the return.
    ``critic_samples > 1``: acts by ``Agent.act_by_critic`` (the best of that many policy
    samples by the critic) instead of the mode or one sample."""

    def __init__(self, agent: Agent, params, deterministic: bool, critic_samples: int = 1):
        if critic_samples < 1 or (critic_samples > 1 and deterministic):
            raise ValueError(f"critic_samples={critic_samples} with deterministic="
                             f"{deterministic}; expected 1, or more with sampled actions")
        self.agent, self.params, self.deterministic = agent, params, deterministic
        self.critic_samples = critic_samples
        self._first, self._starts = False, []

    def reset(self, key):
        del key
        self._first = True

    def __call__(self, obs, key):
        if self.critic_samples > 1:
            policy_actions, env_actions = act_by_critic(self.agent, self.params, obs, key,
                                                        self.critic_samples)
        else:
            policy_actions, env_actions = act(self.agent, self.params, obs, key,
                                              self.deterministic)
        if self._first:
            self._starts.append((obs, policy_actions))
            self._first = False
        return np.asarray(env_actions)

    def q_start(self, episodes: int) -> np.ndarray:
        """(episodes,) min over the critic's heads of Q(s_0, a_0), in episode order."""
        values = [q_min(self.agent.networks, self.params["critic"], obs, actions)
                  for obs, actions in self._starts]
        return np.concatenate([np.asarray(v) for v in values])[:episodes]


@functools.partial(jax.jit, static_argnames="networks")
def q_min(networks, critic_params, obs, actions):
    return networks.q_values(critic_params, obs, actions).min(0)
