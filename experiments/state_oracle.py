"""The prior with perfect perception: the same flow conditioned on the simulator's state
instead of the image. Separates "the encoder cannot see it" from "imitating the scripted
data this way fails" (``docs/prior_diagnosis.md``, "A flow that sees the state").

    python -m experiments.state_oracle --workdir=runs/oracle              # ~6 min on 2 cores
    python -m experiments.state_oracle --perturb=0.3 --workdir=runs/oracle_dart

Collects ``--episodes`` scripted episodes of ``--env`` (env seeds 10,000+, successes kept,
as the prior's data), optionally DART-style (``--perturb``: that share of steps executes a
random translation while the scripted action is recorded, ``rollout.scripted_episode``'s
rule), trains the recipe's flow (8 couplings, log-scale bound 2, Adam 1e-3 with a cosine
decay, clipping at 10) with an MLP on the state features in place of the image encoder,
and rolls it out on env seeds 0..``--rollouts``-1 with a fresh ``z`` every step and with
``z = 0``. Writes ``oracle.json`` (the rates, the held-out NLL, and where the gripper first
closed) to the workdir.

The features (``prior_oracle.features``): end-effector position, gripper state, each object's grasp
point relative to the end effector and its height, objects ordered by y so that the
scripted policy's target is not given away (the image does not show it either).
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

from experiments.prior_oracle import collect, rollouts, train
from parrot_jax import io

_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
_ENV = flags.DEFINE_string("env", "parrot/GraspTrain-v0", "Env id of the data and rollouts.")
_EPISODES = flags.DEFINE_integer("episodes", 3000, "Scripted episodes collected.")
_PERTURB = flags.DEFINE_float("perturb", 0.0, "Share of collection steps perturbed (DART).")
_POLICY = flags.DEFINE_string("policy_kwargs", "{}", "Scripted policy fields, as JSON.")
_STEPS = flags.DEFINE_integer("steps", 6000, "Flow training steps of batch 256.")
_ROLLOUTS = flags.DEFINE_integer("rollouts", 100, "Rollout episodes per z mode.")
_PROCESSES = flags.DEFINE_integer("processes", 2, "Collection worker processes.")


def main(argv):
    del argv
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required")
    try:
        policy_kwargs = json.loads(_POLICY.value)
    except json.JSONDecodeError as e:
        raise app.UsageError(f"--policy_kwargs={_POLICY.value!r} is not JSON: {e}") from e
    start = time.perf_counter()
    episodes = collect(_ENV.value, _EPISODES.value, _PERTURB.value, policy_kwargs,
                       _PROCESSES.value)
    if len(episodes) < 2:
        raise RuntimeError(f"{len(episodes)} successful episodes of {_EPISODES.value}; "
                           "need at least 2 to train and hold one out")
    flow, params, normalise, curve = train(episodes, _STEPS.value)
    result = {"env": _ENV.value, "episodes": _EPISODES.value, "kept": len(episodes),
              "perturb": _PERTURB.value, "policy_kwargs": policy_kwargs, "steps": _STEPS.value,
              "curve": curve,
              "rollouts": [rollouts(flow, params, normalise, _ENV.value, _ROLLOUTS.value, m)
                           for m in ("fresh", "zero")],
              "seconds": time.perf_counter() - start}
    os.makedirs(_WORKDIR.value, exist_ok=True)
    io.write_json(os.path.join(_WORKDIR.value, "oracle.json"), result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    app.run(main)
