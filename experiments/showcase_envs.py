"""Shows the manipulation suite: first frames, scripted rollouts, scripted success rates.

    python -m experiments.showcase_envs --workdir=runs/showcase [--episodes=20]

Writes to the workdir:
- ``contact_sheet.png``: the first frame of every task, upscaled 4x;
- ``gifs/<Task>.gif``: one scripted rollout per task;
- ``scripted_success.json`` and ``scripted_success.md``: the scripted policies' success
  rate per task with a 95% Wilson interval (also printed).
"""

from __future__ import annotations

import os
import time

from absl import app, flags

from parrot_jax import io
from parrot_jax.envs import ENV_IDS, rollout
from parrot_jax.envs.manipulation import ManipulationEnv

_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)
_EPISODES = flags.DEFINE_integer("episodes", 20, "Episodes per task for the success table.")
_SEED = flags.DEFINE_integer("seed", 0, "First env seed.")
_HORIZON = flags.DEFINE_integer("horizon", 25, "Steps per episode.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Processes for the success table (0: all cores).")


def success_markdown(rates: list[rollout.SuccessRate]) -> str:
    lines = ["| task | success | 95% CI | episodes |", "|---|---|---|---|"]
    for r in rates:
        lo, hi = r.ci95
        lines.append(f"| {r.env_id} | {r.rate:.2f} | [{lo:.2f}, {hi:.2f}] | {r.episodes} |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    workdir = _WORKDIR.value
    os.makedirs(os.path.join(workdir, "gifs"), exist_ok=True)
    firsts, labels = [], []
    for env_id in ENV_IDS:
        env = ManipulationEnv(env_id, horizon=_HORIZON.value)
        episode = rollout.scripted_episode(env, seed=_SEED.value)
        env.close()
        name = env_id.split("/")[1].removesuffix("-v0")
        io.write_gif(os.path.join(workdir, "gifs", f"{name}.gif"), episode.frames)
        firsts.append(episode.frames[0])
        labels.append(name)
        print(f"{env_id}: scripted rollout success={episode.success} -> gifs/{name}.gif")
    io.write_png(os.path.join(workdir, "contact_sheet.png"), io.contact_sheet(firsts, labels))

    start = time.time()
    rates = rollout.scripted_success(ENV_IDS, _EPISODES.value, seed=_SEED.value,
                                     horizon=_HORIZON.value, num_workers=_WORKERS.value or None)
    table = success_markdown(rates)
    print(f"\nScripted success over {_EPISODES.value} episodes per task "
          f"({time.time() - start:.0f} s):\n\n{table}")
    io.write_json(os.path.join(workdir, "scripted_success.json"),
                  {"horizon": _HORIZON.value, "seed": _SEED.value,
                   "tasks": [r.as_dict() for r in rates]})
    io.write_text(os.path.join(workdir, "scripted_success.md"), table)
    print(f"wrote {workdir}/contact_sheet.png, gifs/, scripted_success.json, scripted_success.md")


if __name__ == "__main__":
    app.run(main)
