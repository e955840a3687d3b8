"""The agents' table of parts (agents/spec.py): what it says, what it rejects, and that a
new agent is a new entry, not a new branch."""

import dataclasses
import subprocess
import sys

import jax
import numpy as np
import pytest

from parrot_jax.agents import spec
from parrot_jax.agents.programs import act
from tests.agents.test_agent import ACTIONS, OBS, _agent, _images, _params


def test_the_table_names_each_agents_parts():
    assert spec.agents_where(reads_prior=True) == ("parrot", "prior_explore")
    assert spec.agents_where(acts_through="flow") == ("parrot",)
    assert spec.agents_where(acts_through="decoder") == ("hirl", "trajrl", "spirl")
    assert spec.agents_where(acts_through="env") == (
        "sac", "bc_sac", "prior_explore", "iql", "awac", "vae_features")
    assert spec.agents_where(latent=True) == ("parrot", "hirl", "trajrl")
    assert {n: spec.SPECS[n].plan for n in spec.AGENTS if spec.SPECS[n].plan is not None} == {
        "trajrl": True, "spirl": False}
    assert {n: s.pretrained for n, s in spec.SPECS.items() if s.pretrained} == {
        "vae_features": "vae", "hirl": "cvae", "trajrl": "trajvae", "spirl": "spirl"}
    assert spec.agents_where(starts_from="bc") == ("bc_sac",)
    assert spec.spec_of("spirl").learners == ("sac",)
    assert spec.spec_of("iql").learner == "iql"


def test_unknown_agent_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown agent 'ppo'; valid agents: parrot, sac"):
        spec.spec_of("ppo")


@pytest.mark.parametrize("fields, message", [
    ({"acts_through": "teleport"}, r"acts_through='teleport'; expected one of \('env'"),
    ({"sees": "depth"}, r"sees='depth'; expected one of \('observations', 'features'\)"),
    ({"starts_from": "rl"}, r"starts_from='rl'; expected one of"),
    ({"learner": "awac", "learners": ("sac",)}, r"learner='awac' must be one of learners"),
    ({"learners": ("sac", "ppo")}, r"themselves among \('sac', 'iql', 'awac'\)"),
    ({"acts_through": "decoder"}, r"pretrained names the model of a decoder or feature agent"),
    ({"pretrained": "vae"}, r"acts_through='env', sees='observations', pretrained='vae'"),
    ({"explores_with_prior": True}, r"needs reads_prior=True and acts_through='env' "
                                    r"\(got reads_prior=False"),
    ({"explores_with_prior": True, "reads_prior": True, "acts_through": "flow"},
     r"acts_through='flow'\)"),
])
def test_bad_parts_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        spec.AgentSpec(**fields)


def test_reading_the_table_does_not_load_jax():
    code = ("import sys; from parrot_jax.agents.spec import SPECS; import experiments.paper; "
            "print('jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_new_agent_is_a_table_entry(monkeypatch):
    """PARROT that can learn only by AWAC: parts recombined, no code beyond the entry."""
    entry = dataclasses.replace(spec.SPECS["parrot"], learner="awac", learners=("awac",))
    monkeypatch.setitem(spec.SPECS, "parrot_awac", entry)
    agent = _agent("parrot_awac")
    assert agent.learner_name == "awac" and agent.policy_dim == ACTIONS[0]
    assert agent.prior_flow is not None and agent.epsilon == 0.0
    images = _images(6)
    assert images.shape[1:] == OBS
    params = _params(agent)
    # the policy's choice reaches the env through the prior's flow, as parrot's does
    z, actions = act(agent, params, images, jax.random.key(1))
    np.testing.assert_allclose(np.asarray(actions),
                               np.asarray(agent.prior(params).sample(z, images)), atol=1e-5)
    with pytest.raises(ValueError, match="agent 'parrot_awac' learns by awac; "
                                         "config.learner='sac' contradicts it"):
        _agent("parrot_awac", learner="sac")
