"""Bad input, one table: each bad flag or config value and the message that names it.

The config checks run before anything is computed or written; the binaries print their
message as ``error: ...`` (or absl's flag error) and exit with a non-zero status, never
with a traceback from deep inside JAX.
"""

import os
import subprocess
import sys

import pytest

from experiments.configs import collect as collect_config, prior as prior_config, rl
from experiments.configs import pretrain as pretrain_config
from parrot_jax.agents import train as rl_train
from parrot_jax.data import collect
from parrot_jax.flows import run_config as prior_run_config
from parrot_jax.pretrained import train as pretrain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (config field, bad value, expected message): RL (experiments/configs/rl.py:tiny, sac)
RL = [
    ("agent", "ppo", r"unknown agent 'ppo'; valid agents: parrot, sac, bc_sac"),
    ("env", "parrot/Nope-v0", r"unknown env id 'parrot/Nope-v0'"),
    ("num_envs", 0, r"config.num_envs=0; expected a positive integer"),
    ("batch_size", -4, r"config.batch_size=-4; expected a positive integer"),
    ("total_env_steps", 121, r"config.total_env_steps=121 is not a multiple of "
                             r"config.num_envs=2"),
    ("checkpoint_every", 50, r"config.checkpoint_every=50 is not a multiple of "
                             r"config.log_every=20"),
    ("start_steps", -1, r"config.start_steps=-1; expected >= 0"),
    ("updates_per_env_step", 0.3, r"updates_per_env_step=0.3 .* must be a whole number"),
    ("seed", -1, r"config.seed=-1; expected an integer >= 0"),
    ("num_workers", -2, r"config.num_workers=-2; expected an integer >= 0"),
    ("network.hidden", (32, 0), r"config.network.hidden=\(32, 0\); expected a non-empty "
                                r"tuple of positive layer sizes"),
    ("network.channels", (), r"config.network.channels=\(\); expected a non-empty tuple"),
    ("network.num_qs", 0, r"config.network.num_qs=0; expected >= 1"),
    ("network.trunk_dtype", "float16",
     r"config.network.trunk_dtype='float16'; expected one of \('float32', 'bfloat16'\)"),
    ("network.shared_trunk", True, r"config.network.vmap_trunks=True stacks each Q's own "
                                   r"trunk; it needs config.network.shared_trunk=False"),
    ("network.log_std_min", 3.0, r"config.network.log_std_min=3.0 must be below "
                                 r"config.network.log_std_max=2.0"),
    ("sac.discount", 1.5, r"config.sac: discount=1.5; expected a number in \[0, 1\]"),
    ("sac.critic_lr", 0.0, r"config.sac: critic_lr=0.0; expected a positive number"),
    ("sac.tau", 2.0, r"config.sac: tau=2.0; expected a number in \(0, 1\]"),
    ("sac.n_step", 0, r"config.sac: n_step=0; expected a positive int"),
    ("sac.target_update", "soft", r"config.sac: target_update='soft'; expected 'hard' or "
                                  r"'polyak'"),
    ("sac.augment_pad", -1, r"config.sac: augment_pad=-1; expected >= 0 pixels"),
    ("prior_explore.epsilon", 1.5, r"config.prior_explore.epsilon=1.5; expected a "
                                   r"probability in \[0, 1\]"),
    ("offline.mix", 1.5, r"config.offline.mix=1.5; expected a fraction in \[0, 1\]"),
    ("offline.steps", -1, r"config.offline.steps=-1; expected an integer >= 0"),
    ("offline.rewards", "task", r"config.offline.rewards='task'; expected one of"),
    ("offline.steps", 10, r"config.offline.steps=10 and config.offline.mix=0.0 need "
                          r"reward-labelled data: pass --config.offline.dataset"),
    ("offline.dataset", "/nonexistent/data", r"/nonexistent/data: no such dataset directory"),
    ("offline.dataset", "minari:none/none-v0", r"no Minari dataset 'none/none-v0'"),
    # fields of the iql and awac sections are checked for those agents (set by the prefix)
    ("iql.expectile", 1.0, r"config.iql: expectile=1.0; expected a number in \(0, 1\)"),
    ("iql.value_lr", 0.0, r"config.iql: value_lr=0.0; expected a positive number"),
    ("awac.temperature", 0.0, r"config.awac: temperature=0.0; expected a positive number"),
]

# prior (experiments/configs/prior.py:tiny, with an existing dataset)
PRIOR = [
    ("num_steps", 0, r"config.num_steps=0; expected a positive integer"),
    ("log_every", 3, r"config.log_every=3 is not a multiple of config.steps_per_dispatch=2"),
    ("lr_schedule", "step", r"config.lr_schedule='step'; expected one of"),
    ("learning_rate", -1e-3, r"config.learning_rate=-0.001; expected a positive number"),
    ("final_lr_fraction", 2.0, r"config.final_lr_fraction=2.0; expected a number in \[0, 1\]"),
    ("grad_clip_norm", -1.0, r"config.grad_clip_norm=-1.0; expected None or >= 0"),
    ("validation_fraction", 1.0, r"config.validation_fraction=1.0; expected a fraction in "
                                 r"\[0, 1\)"),
    ("max_abs_action", 1.0, r"config.max_abs_action=1.0; expected a number in \(0, 1\)"),
    ("augment_pad", -2, r"config.augment_pad=-2; expected >= 0 pixels"),
    ("eval_batches", -1, r"config.eval_batches=-1; expected >= 0"),
    ("prefetch", 0, r"config.prefetch=0; expected a positive integer"),
    ("num_devices", -1, r"config.num_devices=-1; expected an integer >= 0"),
    ("model.num_couplings", 0, r"config.model.num_couplings=0; expected >= 1"),
    ("model.hidden", (), r"config.model.hidden=\(\); expected a non-empty tuple"),
    ("model.embedding", 0, r"config.model.embedding=0; expected >= 1"),
    ("model.log_scale_bound", 0.0, r"config.model.log_scale_bound=0.0; expected a positive"),
    ("dataset", "", r"config.dataset=''; expected a dataset directory"),
    ("dataset", "/nonexistent/data", r"/nonexistent/data: no such dataset directory"),
]

# a baseline's pretrained model (experiments/configs/pretrain.py:vae,tiny, with an existing
# dataset)
PRETRAIN = [
    ("kind", "gan", r"config.kind='gan'; expected one of \('vae', 'cvae', 'trajvae', 'spirl'\)"),
    ("model.channels", 0, r"config.model.channels=0; expected a positive integer"),
    ("model.num_residual", -1, r"config.model.num_residual=-1; expected a non-negative"),
    ("beta.value", -1.0, r"config.beta.value=-1.0"),
    ("beta.width", -5.0, r"config.beta.width=-5.0"),
    ("batch_size", 0, r"config.batch_size=0; expected a positive integer"),
    ("dataset", "/nonexistent/data", r"/nonexistent/data: no such dataset directory"),
]

# collection (experiments/configs/collect.py:tiny)
COLLECT = [
    ("num_trajectories", 0, r"config.num_trajectories=0; expected >= 1"),
    ("num_workers", -1, r"config.num_workers=-1; expected >= 0"),
    ("env_ids", ("parrot/Nope-v0",), r"env_ids \['parrot/Nope-v0'\]: unknown"),
    ("mix", (1.0,), r"mix \[1.0\] must give a non-negative weight to each of"),
    ("trajectories_per_shard", 0, r"trajectories_per_shard=0; expected >= 1"),
    ("perturb", 1.0, r"perturb=1.0; expected a probability in \[0, 1\)"),
    ("policy_kwargs", "{not json", r"policy_kwargs='\{not json' is not JSON"),
    ("keep", "failures", r"keep='failures'; expected one of \('successes', 'all'\)"),
]


def _set(config, field, value):
    *sections, name = field.split(".")
    for section in sections:
        config = config[section]
    with config.ignore_type():
        config[name] = value


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from parrot_jax.data.synthetic import write_synthetic_dataset
    path = str(tmp_path_factory.mktemp("data"))
    write_synthetic_dataset(path, num_episodes=4, episodes_per_shard=4)
    return path


@pytest.mark.parametrize("field, value, message", RL, ids=[f"rl.{f}" for f, _, _ in RL])
def test_rl_config(field, value, message):
    config = rl.get_config("tiny")
    config.agent = field.split(".")[0] if field.split(".")[0] in ("iql", "awac") else "sac"
    if field == "network.shared_trunk":  # a shared trunk with vmapped per-head trunks
        config.network.vmap_trunks = True
    _set(config, field, value)
    with pytest.raises(ValueError, match=message):
        rl_train.check_inputs(config)


@pytest.mark.parametrize("field, value, message", PRIOR,
                         ids=[f"prior.{f}={v}" for f, v, _ in PRIOR])
def test_prior_config(dataset, field, value, message):
    config = prior_config.get_config("tiny")
    config.dataset = dataset
    config.steps_per_dispatch = 2 if field == "log_every" else 1
    _set(config, field, value)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prior_run_config.check_inputs(config)


@pytest.mark.parametrize("field, value, message", PRETRAIN,
                         ids=[f"pretrain.{f}={v}" for f, v, _ in PRETRAIN])
def test_pretrain_config(dataset, field, value, message):
    config = pretrain_config.get_config("vae,tiny")
    config.dataset = dataset
    _set(config, field, value)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        pretrain.check_inputs(config)


@pytest.mark.parametrize("field, value, message", COLLECT,
                         ids=[f"collect.{f}" for f, _, _ in COLLECT])
def test_collect_config(field, value, message):
    config = collect_config.get_config("tiny")
    _set(config, field, value)
    with pytest.raises(ValueError, match=message):
        collect.check_config(config)


def test_the_tables_cover_the_defaults_passing():
    """Each table's base config is valid, so every failure above is the bad value's."""
    config = rl.get_config("tiny")
    for agent in ("sac", "iql", "awac"):
        config.agent = agent
        rl_train.check_config(config)
    prior_run_config.check_config(prior_config.get_config("tiny"))
    for kind in pretrain_config.KINDS:
        pretrain.check_config(pretrain_config.get_config(f"{kind},tiny"))
    collect.check_config(collect_config.get_config("tiny"))


# (binary, arguments, text on stderr): the user sees one line, not a traceback.
BINARIES = [
    ("experiments.train_rl", ["--config.agent=sac", "--config.sac.discount=1.5"],
     "error: config.sac: discount=1.5; expected a number in [0, 1]"),
    ("experiments.train_rl", ["--config.agent=parrot", "--config.prior=/nonexistent"],
     "error: /nonexistent: no prior here (config.json missing)"),
    ("experiments.train_prior", ["--config.dataset=/nonexistent"],
     "error: /nonexistent: no such dataset directory"),
    ("experiments.pretrain", ["--config.dataset=/nonexistent"],
     "error: /nonexistent: no such dataset directory"),
    ("experiments.train_rl", ["--config.agent=vae_features"],
     "error: agent 'vae_features' needs a pretrained vae: pass --config.pretrained"),
    ("experiments.collect_data", ["--config.num_trajectories=0"],
     "error: config.num_trajectories=0; expected >= 1"),
    ("experiments.evaluate", ["--episodes=0"], "--episodes=0"),
    ("experiments.evaluate", [], "error: /nonexistent: no RL run here"),
    ("experiments.evaluate_prior", [], "error: /nonexistent: no prior here"),
    ("experiments.sweep", ["--backend=pbs"], "--backend"),
    ("experiments.export_minari", [], "error: pass exactly one of --dataset=DIR"),
]


@pytest.mark.parametrize("module, args, message", BINARIES,
                         ids=[f"{m.split('.')[1]}{a[-1:]}" for m, a, _ in BINARIES])
def test_binaries_name_the_bad_input(tmp_path, module, args, message):
    base = {"experiments.train_rl": ["--config=experiments/configs/rl.py:tiny",
                                     f"--workdir={tmp_path}/run"],
            "experiments.train_prior": ["--config=experiments/configs/prior.py:tiny",
                                        f"--workdir={tmp_path}/run"],
            "experiments.pretrain": ["--config=experiments/configs/pretrain.py:vae,tiny",
                                     f"--workdir={tmp_path}/run"],
            "experiments.collect_data": ["--config=experiments/configs/collect.py:tiny",
                                         f"--workdir={tmp_path}/run"],
            "experiments.evaluate": ["--workdir=/nonexistent"],
            "experiments.evaluate_prior": ["--prior=/nonexistent", f"--workdir={tmp_path}"],
            "experiments.sweep": [f"--workdir={tmp_path}"],
            "experiments.export_minari": ["--dataset_id=x/y-v0"]}[module]
    done = subprocess.run([sys.executable, "-m", module, *base, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not os.path.exists(tmp_path / "run")  # nothing written
