"""Every agent as one table entry: a choice of each part, not a branch on its name.

An agent is what its policy sees, what the policy chooses and how that reaches the env
(the action interface), how it learns, and how it starts (README, "Agents
(``--config.agent``)"). ``SPECS`` names those parts for each agent; the training loop, the agent's
``act`` and the sweep planner read the parts, never the agent's name. Plain data with no
JAX import, so that planning a sweep stays cheap.

- ``acts_through``: ``"env"`` (the policy's action, rescaled to the env's Box), ``"flow"``
  (the behavioral prior's flow maps the policy's ``z`` to the action: PARROT) or
  ``"decoder"`` (a frozen pretrained decoder maps the policy's latent to the action, or
  with ``plan`` to an open-loop plan).
- ``sees``: ``"observations"`` or ``"features"`` (a frozen pretrained encoder's, the
  observation transform).
- ``pretrained``: the ``experiments.pretrain`` kind the agent reads (``config.pretrained``):
  the encoder it sees through or the decoder it acts through.
- ``reads_prior``: the agent needs a behavioral prior (``config.prior``), to act through
  or to explore with.
- ``latent``: the policy is a Gaussian over a latent with ``parrot``'s z-space settings
  (bounded mean and std, KL to N(0, I) instead of the entropy).
- ``plan``: None for one env step per action; else one action is a plan of the pretrained
  model's horizon run by ``envs.chunks.ActionChunks``, the value saying whether the inner
  episode's end ends the agent's MDP.
- ``explores_with_prior``: each env executes a prior sample instead of the policy's action
  with probability ``prior_explore.epsilon`` (training only).
- ``starts_from``: ``"fresh"``, ``"bc"`` (the actor cloned from ``config.dataset`` first)
  or ``"skill_prior"`` (the policy is the pretrained skill prior's network, started from
  its parameters, and the learner's KL is to it).
- ``learner``: how it learns unless ``config.learner`` says otherwise; ``learners``: what
  ``config.learner`` may choose for it (``learner_note`` says why, where it is narrowed).
- ``sections``: the config sections of its own (run-defining: a resumed run must match).
"""

from __future__ import annotations

import dataclasses

LEARNER_NAMES = ("sac", "iql", "awac")  # config.learner's values ("": the agent's own)
ACTION_INTERFACES = ("env", "flow", "decoder")
OBSERVATIONS = ("observations", "features")
STARTS = ("fresh", "bc", "skill_prior")


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """One agent's parts (see the module docstring)."""

    acts_through: str = "env"
    sees: str = "observations"
    pretrained: str | None = None
    reads_prior: bool = False
    latent: bool = False
    plan: bool | None = None
    explores_with_prior: bool = False
    starts_from: str = "fresh"
    learner: str = "sac"
    learners: tuple[str, ...] = LEARNER_NAMES
    learner_note: str = ""
    sections: tuple[str, ...] = ()

    def __post_init__(self):
        for field, value, allowed in (("acts_through", self.acts_through, ACTION_INTERFACES),
                                      ("sees", self.sees, OBSERVATIONS),
                                      ("starts_from", self.starts_from, STARTS)):
            if value not in allowed:
                raise ValueError(f"AgentSpec.{field}={value!r}; expected one of {allowed}")
        if self.learner not in self.learners or not set(self.learners) <= set(LEARNER_NAMES):
            raise ValueError(f"AgentSpec.learner={self.learner!r} must be one of learners="
                             f"{self.learners}, themselves among {LEARNER_NAMES}")
        if (self.acts_through == "decoder" or self.sees == "features") != bool(self.pretrained):
            raise ValueError("AgentSpec.pretrained names the model of a decoder or feature "
                             f"agent, and only theirs (acts_through={self.acts_through!r}, "
                             f"sees={self.sees!r}, pretrained={self.pretrained!r})")
        if self.explores_with_prior and not (self.reads_prior and self.acts_through == "env"):
            raise ValueError("AgentSpec.explores_with_prior executes prior samples in place "
                             "of the policy's env actions: it needs reads_prior=True and "
                             f"acts_through='env' (got reads_prior={self.reads_prior}, "
                             f"acts_through={self.acts_through!r})")


SPECS: dict[str, AgentSpec] = {
    # PARROT (paper section 4.2): SAC over z through the frozen prior's flow
    "parrot": AgentSpec(acts_through="flow", reads_prior=True, latent=True,
                        sections=("parrot",)),
    "sac": AgentSpec(),
    "bc_sac": AgentSpec(starts_from="bc", sections=("bc",)),
    "prior_explore": AgentSpec(reads_prior=True, explores_with_prior=True,
                               sections=("prior_explore",)),
    "iql": AgentSpec(learner="iql", learners=("iql",), sections=("iql",)),
    "awac": AgentSpec(learner="awac", learners=("awac",), sections=("awac",)),
    "vae_features": AgentSpec(sees="features", pretrained="vae"),
    "hirl": AgentSpec(acts_through="decoder", pretrained="cvae", latent=True,
                      sections=("parrot",)),
    "trajrl": AgentSpec(acts_through="decoder", pretrained="trajvae", latent=True, plan=True,
                        sections=("parrot",)),
    "spirl": AgentSpec(acts_through="decoder", pretrained="spirl", plan=False,
                       starts_from="skill_prior", learners=("sac",),
                       learner_note="SAC with KL to its skill prior", sections=("spirl",)),
}
AGENTS = tuple(SPECS)


def spec_of(name: str) -> AgentSpec:
    """The agent's parts; ValueError naming the valid agents for an unknown name."""
    if name not in SPECS:
        raise ValueError(f"unknown agent {name!r}; valid agents: {', '.join(AGENTS)}")
    return SPECS[name]


def agents_where(**parts) -> tuple[str, ...]:
    """The agents whose spec has every given part, e.g. ``agents_where(reads_prior=True)``."""
    return tuple(name for name, s in SPECS.items()
                 if all(getattr(s, k) == v for k, v in parts.items()))
