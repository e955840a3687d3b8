"""The behavioral prior: conditional real NVP, its public API, training and rollouts.

``load_prior(workdir)`` returns a ``BehavioralPrior`` with pure ``sample``, ``inverse`` and
``log_prob``; training (``train``) and rollout evaluation (``evaluate``) import JAX-heavy
pieces and are imported on demand.
"""

from parrot_jax.flows.prior import BehavioralPrior, load_prior

__all__ = ["BehavioralPrior", "load_prior"]
