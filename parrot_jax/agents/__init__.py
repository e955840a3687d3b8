"""SAC from pixels or vectors, PARROT (SAC over z through a frozen prior) and baselines."""

from parrot_jax.agents.agent import AGENTS, Agent, make_agent

__all__ = ["AGENTS", "Agent", "make_agent"]
