"""SAC from pixels or vectors, PARROT (SAC over z through a frozen prior) and baselines.

``AGENTS``, ``Agent`` and ``make_agent`` load ``agents.agent`` (and JAX) on first use, so
that reading the agents' table (``agents.spec``) stays cheap.
"""

import importlib

__all__ = ["AGENTS", "Agent", "make_agent"]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module("parrot_jax.agents.agent"), name)
    raise AttributeError(f"module 'parrot_jax.agents' has no attribute {name!r}")
