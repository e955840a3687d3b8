#!/bin/bash
# PARROT at the paper's scale on a lent GPU machine (/work/.library/device), for as long as
# a lease allows (docs/rl_diagnosis.md, next step 1): the paper's networks, batch 256 and
# 1 update per env step (experiments/configs/rl.py's default), with Round 9's recipe
# (AWAC lambda 0.3 over z, the critic reading the prior's action, evaluation with sampled
# z) and the GPU's fastest layout (vmapped bf16 critic trunks, README "Measured on an
# H200"). Trains for SECONDS (then SIGTERM: the run closes its pool as after Ctrl-C; its
# newest checkpoint is the last multiple of 10K env steps), evaluates that checkpoint on
# EPISODES episodes with sampled z, and copies what is small (the run's config and
# metrics, with its evaluations every 10K env steps; no checkpoints or replay) to $OUT
# (default runs/device_rl).
#   make device-wheels            # pybullet (built for Python 3.12, slimmed), distrax, ...
#   make device-prior PRIOR=DIR   # runs/prior: DIR's config and newest parameters (15 MB)
#   device run: command "bash experiments/device_rl.sh 420 runs/prior", carry [".whl",
#     "runs/prior"], timeout_s 560
# Further arguments go to experiments.train_rl (e.g. --config.seed=1, --config.env=...).
# DEVICE_RL_CONFIG (default experiments/configs/rl.py), DEVICE_RL_WORKDIR (default
# /tmp/device_rl), DEVICE_RL_EPISODES (default 200) and PYTHON (default python3) are for
# smaller runs (the tests).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash experiments/device_rl.sh SECONDS PRIOR_WORKDIR [train_rl flags...]" >&2
  exit 2
fi
seconds="$1"; prior="$2"; shift 2
if [ ! -d "$prior" ]; then
  echo "PRIOR_WORKDIR $prior is not a directory (a workdir of experiments.train_prior)" >&2
  exit 2
fi
out="${OUT:-runs/device_rl}"
workdir="${DEVICE_RL_WORKDIR:-/tmp/device_rl}"
python="${PYTHON:-python3}"  # the machine's python3; the tests give their own
mkdir -p "$out"
source benchmarks/device_setup.sh
status=0
timeout --kill-after=60 "$seconds" "$python" -m experiments.train_rl \
  --config="${DEVICE_RL_CONFIG:-experiments/configs/rl.py}" --config.prior="$prior" \
  --config.learner=awac --config.awac.temperature=0.3 --config.parrot.critic_input=action \
  --config.network.vmap_trunks=True --config.network.trunk_dtype=bfloat16 \
  --config.num_envs=8 --config.eval_deterministic=False --config.eval_every=10000 \
  --config.checkpoint_every=10000 --config.progress=False --workdir="$workdir" "$@" \
  2>&1 | tee "$out/train_rl.log" || status=$?
# 124: stopped at SECONDS, as planned; anything else is the run's own failure
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; then exit "$status"; fi
find "$workdir" -maxdepth 1 -type f -exec cp {} "$out/" \;
"$python" -m experiments.evaluate --workdir="$workdir" --stochastic \
  --episodes="${DEVICE_RL_EPISODES:-200}" --out="$out/eval_final.json" 2>&1 | tee "$out/evaluate.log"
