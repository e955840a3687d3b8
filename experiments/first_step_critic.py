"""How many episodes a critic needs to choose the first z: the first step's value learned
with the TD noise taken out.

    python -m experiments.first_step_critic --prior=runs/prior --branches=runs/z_influence \
        --episodes=1600,10000 --workdir=runs/first_step_critic

``experiments.z_influence`` measures that the first ``z`` decides much of an episode under
the prior. A critic must learn ``Q(s_0, z_0)`` in unseen scenes to exploit it. This
trains exactly that, supervised: the prior's episodes on ``--env`` (env seeds ``--seed``
+ i, fresh ``z`` at every step; collected once into ``WORKDIR/episodes.npz``, reused by
a rerun) give ``(s_0, z_0, success)``; for each size N in ``--episodes`` the critic of
``rl.py:cpu``'s PARROT (the same networks and random shifts) is regressed on the success
of the first N (``Q -> 1[success]``, each head, Adam) and scored on:

- the last ``--held_out`` episodes: how well ``Q`` ranks their successes above failures
  (AUC);
- the branched first steps of ``--branches`` (a ``z_influence`` run on the same prior and
  env, seeds and candidates from its JSON): ``P(success)`` with the candidate of highest
  ``Q`` and the rank correlation, as ``z_influence --critics`` reports them.

``--inputs`` chooses what the critic's action input is: ``z`` (what PARROT's critic reads:
``Q(s, z)``, so it must learn the flow's state-dependent map from ``z`` to the arm's
motion) and/or ``action``, the env action the frozen prior makes of it,
``a_0 = f(z_0; s_0)``: ``Q(s, f(z; s))`` is the same function of ``(s, z)`` with the map
given. Each input gets its own critics, rows and candidates' scores.

Writes ``first_step_critic.json`` and ``.md`` (a row per input and N, also printed).
"""

from __future__ import annotations

import json
import os
import time

import gymnasium as gym
import jax
import numpy as np
from absl import app, flags

from experiments import first_step
from experiments.common import check_or_exit, warnings_only_unless_asked
from experiments.configs import rl
from parrot_jax import io
from parrot_jax.agents.agent import make_agent
from parrot_jax.agents.programs import q_min
from parrot_jax.envs import check_env_id
from parrot_jax.flows import z_influence
from parrot_jax.flows.prior import CONFIG_FILE, check_prior_dir, load_prior
from parrot_jax.stats import rank_auc

_PRIOR = flags.DEFINE_string("prior", None, "Workdir of experiments.train_prior.", required=True)
_BRANCHES = flags.DEFINE_string("branches", None, "Workdir of experiments.z_influence (same "
                                "prior and env) whose step-0 states score the critics.",
                                required=True)
_ENV = flags.DEFINE_string("env", "parrot/PickUpCan-v0", "Env id ('module:id' imports it).")
_EPISODES = flags.DEFINE_list("episodes", ["1600", "10000"], "Training set sizes N.")
_HELD_OUT = flags.DEFINE_integer("held_out", 1000, "Episodes held out (collected after the "
                                 "largest N).", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "First env seed of the collected episodes; also "
                             "seeds z and the critics.", lower_bound=0)
INPUTS = ("z", "action")
_INPUTS = flags.DEFINE_list("inputs", ["z"], "The critic's action input: any of "
                            f"{', '.join(INPUTS)} (module docstring).")
_STEPS = flags.DEFINE_integer("steps", 4000, "Updates per critic.", lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 64, "Episodes per update.", lower_bound=1)
_LR = flags.DEFINE_float("learning_rate", 3e-4, "Adam's learning rate.", lower_bound=0)
_NUM_ENVS = flags.DEFINE_integer("num_envs", 16, "Envs stepped together.", lower_bound=1)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)

EPISODES_FILE = "episodes.npz"


def _check_flags() -> list[int]:
    unknown = [i for i in _INPUTS.value if i not in INPUTS]
    if unknown or not _INPUTS.value:
        raise ValueError(f"--inputs={','.join(_INPUTS.value)!r}; expected some of "
                         f"{', '.join(INPUTS)} separated by commas")
    check_prior_dir(_PRIOR.value)
    check_env_id(_ENV.value)
    path = os.path.join(_BRANCHES.value, "z_influence.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"--branches={_BRANCHES.value}: no z_influence.json; pass the "
                                "workdir of experiments.z_influence")
    with open(path) as f:
        branched = json.load(f)["config"]["env"]
    if branched != _ENV.value:
        raise ValueError(f"--branches={_BRANCHES.value} branched {branched!r}, not --env="
                         f"{_ENV.value!r}")
    try:
        sizes = sorted({int(n) for n in _EPISODES.value})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 2:
        raise ValueError(f"--episodes={','.join(_EPISODES.value)!r}; expected integers >= 2 "
                         "separated by commas")
    return sizes


def main(argv):
    del argv
    warnings_only_unless_asked()
    sizes = check_or_exit(_check_flags)
    start = time.time()
    prior = load_prior(_PRIOR.value)
    with open(os.path.join(_PRIOR.value, CONFIG_FILE)) as f:
        prior_model = json.load(f)["model"]
    total = sizes[-1] + _HELD_OUT.value
    data = first_step.collect(prior, _ENV.value, total, _SEED.value, _NUM_ENVS.value,
                              os.path.join(_WORKDIR.value, EPISODES_FILE))
    print(f"{total} episodes of the prior: {data['successes'].mean():.3f} succeeded "
          f"({time.time() - start:.0f} s)", flush=True)
    config = rl.get_config("cpu")
    agent = make_agent(config, prior.image_shape, "uint8", (prior.action_dim,), (-1.0, 1.0),
                       prior_model, prior.image_shape)
    with open(os.path.join(_BRANCHES.value, "z_influence.json")) as f:
        branches = [s for s in json.load(f)["states"] if s["step"] == 0]
    env = gym.make(_ENV.value)
    scenes = {s["seed"]: env.reset(seed=s["seed"])[0] for s in branches}
    env.close()
    held = slice(sizes[-1], total)
    rows = []
    for n, name in ((n, name) for name in _INPUTS.value for n in sizes):
        t0 = time.time()
        to_input = first_step.critic_input(prior, name)
        params = first_step.train_critic(
            agent.networks, data["images"][:n], to_input(data["images"][:n], data["z"][:n]),
            data["successes"][:n], _STEPS.value, _BATCH.value, _LR.value,
            config.sac.augment_pad, jax.random.key(_SEED.value + n))
        q_held = np.asarray(q_min(agent.networks, params, data["images"][held],
                                  to_input(data["images"][held], data["z"][held])))
        ok = data["successes"][held]
        score = z_influence.critic_score(
            str(n), lambda obs, z: q_min(agent.networks, params, obs, to_input(obs, z)))
        scored = []
        for s in branches:
            result = z_influence.Branches(s["seed"], 0, np.asarray(s["candidates"], np.float32),
                                          np.asarray(s["successes"], bool), scenes[s["seed"]])
            scored.append(score(result)["critics"][str(n)])
        summary = z_influence.critic_summary(scored)
        rows.append({"input": name, "episodes": n,
                     "successes": int(data["successes"][:n].sum()),
                     "held_out_auc": rank_auc(q_held[ok], q_held[~ok]),
                     "choice_rate": summary["choice_rate"], "rank_corr": summary["rank_corr"],
                     "scenes": len(branches),
                     "scene_mean": float(np.mean([s["success_rate"] for s in branches])),
                     "held_out_best": float(np.mean([s["chosen_rate"] for s in branches])),
                     "seconds": round(time.time() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    lines = ["| critic input | episodes N (successes) | held-out AUC of Q(s_0, z_0) | P(success) with the "
             "highest-Q of the branched z_0 (scene mean; best held out) | rank correlation "
             "with their success rates |", "|---|---|---|---|---|"]
    for r in rows:
        corr = "-" if r["rank_corr"] is None else f"{r['rank_corr']:.2f}"
        auc = "-" if r["held_out_auc"] is None else f"{r['held_out_auc']:.2f}"
        lines.append(f"| {r['input']} | {r['episodes']} ({r['successes']}) | {auc} | {r['choice_rate']:.3f} "
                     f"({r['scene_mean']:.3f}; {r['held_out_best']:.3f}) | {corr} |")
    table = "\n".join(lines) + "\n"
    io.write_json(os.path.join(_WORKDIR.value, "first_step_critic.json"),
                  {"rows": rows, "config": {"prior": os.path.abspath(_PRIOR.value),
                                            "branches": os.path.abspath(_BRANCHES.value),
                                            "env": _ENV.value, "episodes": sizes,
                                            "inputs": _INPUTS.value,
                                            "held_out": _HELD_OUT.value, "seed": _SEED.value,
                                            "steps": _STEPS.value,
                                            "batch_size": _BATCH.value,
                                            "learning_rate": _LR.value}})
    io.write_text(os.path.join(_WORKDIR.value, "first_step_critic.md"), table)
    print(f"\n{table}\nwrote {_WORKDIR.value}/first_step_critic.json, first_step_critic.md "
          f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    app.run(main)
