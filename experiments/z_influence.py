"""How much one step's z decides the outcome under a prior (``parrot_jax.flows.z_influence``).

    python -m experiments.z_influence --prior=runs/prior --env=parrot/PickUpCan-v0 \
        --seeds=8 --steps=0,5,10,15,20 --candidates=8 --continuations=16 --workdir=runs/z_influence \
        [--critics=runs/rl/parrot,... --labels=sac,...]

From the state the prior reaches at step t of the episode from env seed ``seed + i``
(i < ``--seeds``; the same actions replayed in every branch), ``--candidates`` z are each
taken at step t and followed by ``--continuations`` episodes of the prior with fresh z.
Writes ``z_influence.json`` (every state's candidate z, outcomes and success rates, the
variance between candidates against the outcome's, the held-out rate of the candidate
chosen on half the continuations, the homogeneity test's p-value; the flags) and
``z_influence.md`` (the table per step, also printed).

``--critics``: PARROT runs of ``experiments.train_rl`` on the same prior; each run's
critic (the min over its heads, as the evaluation reads it) scores the candidates of
every state, and the tables add, per step and critic, ``P(success)`` with the candidate
of highest ``Q`` and the rank correlation of ``Q`` with the candidates' success rates.
"""

from __future__ import annotations

import os
import time

from absl import app, flags

from experiments.common import check_or_exit, warnings_only_unless_asked
from experiments.prior_rollouts import env_ids
from parrot_jax import io
from parrot_jax.agents.evaluate import load_agent, read_description
from parrot_jax.agents.programs import q_min
from parrot_jax.flows import z_influence
from parrot_jax.flows.prior import check_prior_dir, load_prior

_PRIOR = flags.DEFINE_string("prior", None, "Workdir of experiments.train_prior.", required=True)
_ENV = flags.DEFINE_string("env", "parrot/PickUpCan-v0",
                           "One env id ('module:id' imports its module).")
_SEEDS = flags.DEFINE_integer("seeds", 8, "Episodes (env seeds) to branch.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 1_000_000, "First env seed; also seeds every z.",
                             lower_bound=0)
_STEPS = flags.DEFINE_list("steps", ["0", "5", "10", "15", "20"], "Steps t to branch at.")
_CANDIDATES = flags.DEFINE_integer("candidates", 8, "Candidate z per state.", lower_bound=2)
_CONTINUATIONS = flags.DEFINE_integer("continuations", 16, "Episodes per candidate.",
                                      lower_bound=2)
_NUM_ENVS = flags.DEFINE_integer("num_envs", 32, "Envs stepped together; must divide "
                                 "candidates * continuations.", lower_bound=1)
_WORKERS = flags.DEFINE_integer("workers", 0, "Env processes (0: all cores).", lower_bound=0)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of the prior (default: latest).")
_CRITICS = flags.DEFINE_list("critics", [], "PARROT runs (experiments.train_rl) whose "
                             "critics score the candidates (latest checkpoint).")
_LABELS = flags.DEFINE_list("labels", [], "A label per critic (default: the run's path).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)


def _check_flags() -> tuple[str, list[int]]:
    ids = env_ids(_ENV.value)
    if len(ids) != 1 or _ENV.value == "all":
        raise ValueError(f"--env={_ENV.value!r}; expected one env id")
    try:
        steps = sorted({int(s) for s in _STEPS.value})
    except ValueError:
        raise ValueError(f"--steps={','.join(_STEPS.value)!r}; expected integers >= 0 "
                         "separated by commas") from None
    if not steps or steps[0] < 0:
        raise ValueError(f"--steps={','.join(_STEPS.value)!r}; expected integers >= 0")
    total = _CANDIDATES.value * _CONTINUATIONS.value
    if total % _NUM_ENVS.value:
        raise ValueError(f"--num_envs={_NUM_ENVS.value} does not divide --candidates * "
                         f"--continuations = {total}")
    check_prior_dir(_PRIOR.value)
    if _LABELS.value and len(_LABELS.value) != len(_CRITICS.value):
        raise ValueError(f"{len(_LABELS.value)} --labels for {len(_CRITICS.value)} --critics")
    for run in _CRITICS.value:
        agent = read_description(run)["agent"]
        if agent != "parrot":
            raise ValueError(f"--critics: {run} is a {agent!r} run; expected a 'parrot' run "
                             "(its critic scores z)")
    return ids[0], steps


def _score():
    """Every critic's ``critic_score``, chained."""
    scores = []
    for run, label in zip(_CRITICS.value, _LABELS.value or _CRITICS.value):
        agent, params, _ = load_agent(run)
        scores.append(z_influence.critic_score(label, lambda obs, z, a=agent, p=params: q_min(
            a.networks, p["critic"], obs, z)))
    if not scores:
        return None
    return lambda branches: {"critics": {k: v for s in scores
                                         for k, v in s(branches)["critics"].items()}}


def main(argv):
    del argv
    warnings_only_unless_asked()
    env_id, steps = check_or_exit(_check_flags)
    start = time.time()
    prior = load_prior(_PRIOR.value, _STEP.value)
    seeds = list(range(_SEED.value, _SEED.value + _SEEDS.value))
    result = z_influence.measure(prior, env_id, seeds, steps, _CANDIDATES.value,
                                 _CONTINUATIONS.value, _NUM_ENVS.value, _WORKERS.value or None,
                                 _SEED.value, score=_score())
    table = z_influence.markdown(result["by_step"], _CANDIDATES.value, _CONTINUATIONS.value)
    result["config"] = {"prior": os.path.abspath(_PRIOR.value), "prior_step": prior.step,
                        "env": env_id, "seeds": seeds, "steps": steps,
                        "candidates": _CANDIDATES.value, "continuations": _CONTINUATIONS.value,
                        "num_envs": _NUM_ENVS.value, "critics": _CRITICS.value,
                        "labels": _LABELS.value or _CRITICS.value,
                        "seconds": round(time.time() - start, 1)}
    io.write_json(os.path.join(_WORKDIR.value, "z_influence.json"), result)
    io.write_text(os.path.join(_WORKDIR.value, "z_influence.md"), table)
    print(f"\n{env_id}, prior step {prior.step}:\n\n{table}\nwrote {_WORKDIR.value}/"
          f"z_influence.json, z_influence.md ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    app.run(main)
