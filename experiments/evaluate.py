"""Evaluates a trained agent from its run directory alone (``experiments.train_rl``'s).

    python -m experiments.evaluate --workdir=runs/rl/parrot [--step=N] --episodes=50 \
        [--stochastic [--critic_samples=N]] [--video]

Restores the agent from the Orbax checkpoint (latest, or ``--step`` in env steps), rolls
it out deterministically (the policy's mode; ``--stochastic`` samples; with
``--critic_samples=N`` every action is the best of N samples by the critic) for
``--episodes`` episodes from env seeds ``seed .. seed + episodes - 1``, prints the
success rate with its 95% Wilson interval and the critic's Q at each episode's first step
(its mean beside the discounted return, and how well it ranks successes above failures)
and writes ``WORKDIR/eval/step_N[_sampled|_best_of_K][_seedS].json`` (``default_name``:
evaluations of one checkpoint acting another way or on other env seeds do not overwrite
each other; ``--out`` to choose; a file there holding another evaluation, of another
step, way of acting, env seeds or episode count, is never overwritten:
``agents.evaluate.refuse_overwrite``); ``--video`` also writes the same name as a ``.gif``
with the first ``--video_episodes`` episodes side by side.
"""

import os

import numpy as np
from absl import app, flags

from experiments.common import check_or_exit, warnings_only_unless_asked
from parrot_jax import checkpoint, io
from parrot_jax.agents.evaluate import evaluate_agent, read_description, refuse_overwrite

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory of experiments.train_rl.",
                               required=True)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint (env steps); default: the latest.")
_EPISODES = flags.DEFINE_integer("episodes", 50, "Evaluation episodes.", lower_bound=1)
_STOCHASTIC = flags.DEFINE_boolean("stochastic", False, "Sample actions instead of the mode.")
_CRITIC_SAMPLES = flags.DEFINE_integer(
    "critic_samples", 1, "With --stochastic: act by the best of this many policy samples by "
    "the critic (QT-Opt-style selection); 1: one sample.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 1_000_000, "Env seed of the first episode.",
                             lower_bound=0)
_NUM_ENVS = flags.DEFINE_integer("num_envs", 8, "Envs stepped together.", lower_bound=1)
_VIDEO = flags.DEFINE_boolean("video", False, "Write a GIF of the first episodes.")
_VIDEO_EPISODES = flags.DEFINE_integer("video_episodes", 4, "Episodes in the GIF.",
                                       lower_bound=1)
_OUT = flags.DEFINE_string("out", None, "JSON path (default WORKDIR/eval/step_N[_sampled|"
                           "_best_of_K][_seedS].json).")


def default_name(step: int, stochastic: bool, critic_samples: int, seed: int) -> str:
    """``step_N.json`` for the policy's mode on the default env seeds; ``_sampled`` or
    ``_best_of_K`` for sampled actions, ``_seedS`` for other env seeds."""
    how = "" if not stochastic else ("_sampled" if critic_samples == 1
                                     else f"_best_of_{critic_samples}")
    where = "" if seed == _SEED.default else f"_seed{seed}"
    return f"step_{step}{how}{where}.json"


def _check_flags():
    if _CRITIC_SAMPLES.value > 1 and not _STOCHASTIC.value:
        raise ValueError(f"--critic_samples={_CRITIC_SAMPLES.value} chooses among sampled "
                         "actions; add --stochastic")
    read_description(_WORKDIR.value)
    step = checkpoint.saved_step(os.path.join(_WORKDIR.value, checkpoint.DIRECTORY),
                                 _STEP.value)
    refuse_overwrite(_out_path(step), {
        "step": step, "deterministic": not _STOCHASTIC.value,
        "critic_samples": _CRITIC_SAMPLES.value, "seed": _SEED.value,
        "episodes": _EPISODES.value})


def _out_path(step: int) -> str:
    return _OUT.value or os.path.join(_WORKDIR.value, "eval", default_name(
        step, _STOCHASTIC.value, _CRITIC_SAMPLES.value, _SEED.value))


def main(argv):
    del argv
    warnings_only_unless_asked()
    check_or_exit(_check_flags)
    keep = _VIDEO_EPISODES.value if _VIDEO.value else 0
    summary, rollouts = evaluate_agent(_WORKDIR.value, _STEP.value, _EPISODES.value,
                                       not _STOCHASTIC.value, _SEED.value, _NUM_ENVS.value,
                                       keep_frames=keep,
                                       critic_samples=_CRITIC_SAMPLES.value)
    step = summary["step"]
    out = _out_path(step)
    io.write_json(out, summary)
    low, high = summary["success_ci95"]
    mode = "stochastic" if _STOCHASTIC.value else "deterministic"
    if _CRITIC_SAMPLES.value > 1:
        mode += f", the best of {_CRITIC_SAMPLES.value} samples by the critic"
    print(f"{summary['agent']} on {summary['env']} at env step {step} ({mode}, "
          f"{_EPISODES.value} episodes): success {summary['success_rate']:.3f} "
          f"[{low:.3f}, {high:.3f}], mean return {summary['mean_return']:.3f}")
    auc = summary["q_start_auc"]
    print(f"critic at the first step: mean Q(s_0, a_0) {np.mean(summary['per_episode_q_start']):.3f}"
          f" (mean discounted return {np.mean(summary['per_episode_discounted_return']):.3f}); "
          "ranks successes above failures with AUC "
          + ("- (needs both)" if auc is None else f"{auc:.2f}"))
    print(f"wrote {out}")
    if keep and rollouts.frames and len(rollouts.frames[0].shape) == 4:
        gif = os.path.splitext(out)[0] + ".gif"
        io.write_gif(gif, io.side_by_side(rollouts.frames))
        print(f"wrote {gif}")


if __name__ == "__main__":
    app.run(main)
