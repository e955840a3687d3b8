"""train_rl and evaluate: every agent end to end, resume, restore, errors, a learning check."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments.configs import rl
from parrot_jax import metrics
from parrot_jax.agents import train
from parrot_jax.agents.evaluate import evaluate_agent, load_agent
from parrot_jax.agents.programs import act
from parrot_jax.data.synthetic import write_synthetic_dataset
from parrot_jax.pretrained.cvae import load_cvae, write_initial_cvae
from parrot_jax.pretrained.spirl import load_skills, write_initial_skills
from parrot_jax.pretrained.trajvae import load_trajvae, write_initial_trajvae
from parrot_jax.pretrained.vae import load_vae, write_initial_vae
from tests.flows.prior_workdir import write_prior

POINT_ENV = "tests.agents.point_env:PointReach-v0"
TINY_CVAE = {"encoder_hidden": (16,), "decoder_hidden": (16,), "image_channels": (4, 4, 4),
             "image_hidden": (16,), "embedding": 8}


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory):
    return write_prior(tmp_path_factory.mktemp("prior"))


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    return write_initial_vae(str(tmp_path_factory.mktemp("vae")),
                             {"channels": 4, "num_residual": 1, "latent_dim": 6})


@pytest.fixture(scope="module")
def cvae_dir(tmp_path_factory):
    return write_initial_cvae(str(tmp_path_factory.mktemp("cvae")), TINY_CVAE)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data"))
    write_synthetic_dataset(path, num_episodes=8, episodes_per_shard=8)
    return path


def _config(agent, prior_dir="", dataset_dir="", **overrides):
    config = rl.get_config("tiny")
    config.agent = agent
    config.prior = str(prior_dir) if agent in ("parrot", "prior_explore") else ""
    config.dataset = str(dataset_dir) if agent == "bc_sac" else ""
    config.update(overrides)
    return config


def _rows(workdir):
    return metrics.read_jsonl(os.path.join(workdir, metrics.JSONL))


# PARROT's on the 4 host devices (the multi_device pass): its update sharded, the frozen
# flow included, trained, restored and evaluated end to end.
@pytest.mark.parametrize("agent", [pytest.param("parrot", marks=pytest.mark.multi_device),
                                   "sac", "bc_sac", "prior_explore", "iql", "awac",
                                   "vae_features", "hirl"])
def test_every_agent_trains_checkpoints_and_restores(agent, prior_dir, dataset_dir, vae_dir,
                                                     cvae_dir, tmp_path):
    workdir = str(tmp_path / agent)
    pretrained = {"vae_features": {"pretrained": vae_dir},
                  "hirl": {"pretrained": cvae_dir}}.get(agent, {})
    result = train.train(_config(agent, prior_dir, dataset_dir, **pretrained), workdir)
    assert result.env_steps == 120
    # start_steps=40 of 120 env steps, 2 envs, 1 update per env step
    assert int(result.state.step) == 80
    rows = _rows(workdir)
    evals = [r["step"] for r in rows if "eval/success" in r]
    assert evals == [0, 60, 120]
    trained = [r for r in rows if "train/critic_loss" in r]
    assert trained and all(np.isfinite(r["train/critic_loss"]) for r in trained)
    assert all(np.isfinite(r["train/td_error"]) for r in trained)
    for row in (r for r in rows if "eval/success" in r):
        # the critic's Q(s_0, a_0) beside the discounted return that followed
        assert np.isfinite(row["eval/q_start"])
        assert 0 <= row["eval/discounted_return"] <= row["eval/return"]
    if agent in ("parrot", "hirl"):  # pi(z | s) = N(0, I) at init: mean 0, std 1
        np.testing.assert_allclose(trained[0]["train/policy_std"], 1.0, atol=0.05)
    assert os.path.exists(os.path.join(workdir, "tensorboard"))
    # the checkpoint alone rebuilds the agent: same parameters, same actions
    restored, params, step = load_agent(workdir)
    assert step == 120 and restored.name == agent
    jax.tree.map(np.testing.assert_array_equal, params, result.params)
    obs = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    for deterministic in (True, False):
        a = act(restored, params, obs, jax.random.key(1), deterministic)
        b = act(restored, result.params, obs, jax.random.key(1), deterministic)
        np.testing.assert_array_equal(a[1], b[1])
    summary, rollouts = evaluate_agent(workdir, episodes=2, num_envs=2, keep_frames=1)
    assert summary["agent"] == agent and summary["step"] == 120 and summary["episodes"] == 2
    assert rollouts.frames[0].shape == (26, 48, 48, 3)  # reset image + 25 steps
    if agent == "bc_sac":  # behaviour cloning moved the actor away from its zero init
        assert np.abs(np.asarray(params["actor"]["head"]["out"]["kernel"])).max() > 0
    if agent == "vae_features":  # the critic's trunk is the VAE's encoder, still frozen
        jax.tree.map(np.testing.assert_array_equal, params["critic"]["encoder"],
                     load_vae(vae_dir).params["encoder"])
        with open(os.path.join(workdir, "config.json")) as f:
            assert json.load(f)["pretrained_source"]["workdir"] == os.path.abspath(vae_dir)
    if agent == "hirl":  # the checkpoint holds the frozen decoder, unchanged
        jax.tree.map(np.testing.assert_array_equal, params["prior"],
                     load_cvae(cvae_dir).params)


def test_trajrl_plans_whole_episodes_open_loop(tmp_path):
    trajvae_dir = write_initial_trajvae(str(tmp_path / "trajvae"), {
        "horizon": 25, "encoder_hidden": (16,), "decoder_hidden": (16,)})
    workdir = str(tmp_path / "trajrl")
    # a pool step is 2 envs x one 25-step plan = 50 env steps: the intervals are reached
    # at the first pool step past each multiple
    config = _config("trajrl", pretrained=trajvae_dir, total_env_steps=200, start_steps=50,
                     eval_every=100, log_every=50, checkpoint_every=100,
                     updates_per_env_step=0.04)
    result = train.train(config, workdir)
    assert result.env_steps == 200
    # 0.04 updates per env step: 2 per pool step, from the second pool step on
    assert int(result.state.step) == 6
    rows = _rows(workdir)
    assert [r["step"] for r in rows if "eval/success" in r] == [0, 100, 200]
    episodes = [r for r in rows if "train/episodes" in r]
    assert sum(r["train/episodes"] for r in episodes) == 8  # 4 pool steps x 2 envs
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["action_horizon"] == 25
    restored, params, step = load_agent(workdir)
    assert step == 200 and restored.env_action_dim == 175 and restored.policy_dim == 7
    decoder = load_trajvae(trajvae_dir)
    jax.tree.map(np.testing.assert_array_equal, params["prior"], decoder.params)
    obs = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    z, plan = act(restored, params, obs, jax.random.key(1), True)
    np.testing.assert_allclose(plan, np.asarray(decoder.decode(z)).reshape(3, 175), atol=1e-6)
    summary, rollouts = evaluate_agent(workdir, episodes=2, num_envs=2, keep_frames=1)
    assert summary["agent"] == "trajrl" and summary["step"] == 200
    assert rollouts.frames[0].shape == (2, 48, 48, 3)  # the first image and the last


def test_spirl_acts_in_skills_with_kl_to_its_prior_and_resumes(tmp_path):
    skills_dir = write_initial_skills(str(tmp_path / "skills"), {
        "horizon": 5, "latent_dim": 3, "lstm_size": 8, "prior_hidden": (16,),
        "prior_channels": (4,)})
    # a pool step is 2 envs x one 5-step skill = 10 env steps; 0.1 updates per env step:
    # one update per pool step once 20 env steps are collected
    kwargs = dict(pretrained=skills_dir, start_steps=20, eval_every=50, log_every=50,
                  checkpoint_every=50, updates_per_env_step=0.1)
    full_dir, run_dir = str(tmp_path / "full"), str(tmp_path / "run")
    full = train.train(_config("spirl", total_env_steps=100, **kwargs), full_dir)
    assert full.env_steps == 100 and int(full.state.step) == 8
    rows = _rows(full_dir)
    assert [r["step"] for r in rows if "eval/success" in r] == [0, 50, 100]
    assert sum(r["train/episodes"] for r in rows if "train/episodes" in r) == 4  # 2 x 2
    trained = [r for r in rows if "train/kl" in r]
    assert trained and all(np.isfinite(r["train/kl"]) and r["train/kl"] >= 0 for r in trained)
    with open(os.path.join(full_dir, "config.json")) as f:
        description = json.load(f)
    assert description["action_horizon"] == 5 and description["spirl"]["target_divergence"] == 5
    skills = load_skills(skills_dir)
    # the reference is the skill prior, frozen; the policy started from it and moved
    jax.tree.map(np.testing.assert_array_equal, full.state.reference_params,
                 skills.prior_params)
    restored, params, step = load_agent(full_dir)
    assert step == 100 and restored.env_action_dim == 35 and restored.policy_dim == 3
    jax.tree.map(np.testing.assert_array_equal, params["prior"], skills.params)
    obs = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    z, plan = act(restored, params, obs, jax.random.key(1), True)
    np.testing.assert_allclose(plan, np.asarray(skills.decode(2.0 * z)).reshape(3, 35),
                               atol=1e-6)
    summary, rollouts = evaluate_agent(full_dir, episodes=2, num_envs=2, keep_frames=1)
    assert summary["agent"] == "spirl" and summary["step"] == 100
    assert rollouts.frames[0].shape == (6, 48, 48, 3)  # the first image and 5 skills' last
    # interrupted at 50 env steps, resumed: the same run (the reference from the checkpoint)
    train.train(_config("spirl", total_env_steps=50, **kwargs), run_dir)
    second = train.train(_config("spirl", total_env_steps=100, **kwargs), run_dir)
    _same_state(second.state, full.state)
    _same_rows(run_dir, full_dir)


def test_spirl_with_closed_loop_skills_decodes_in_the_env_workers(tmp_path):
    skills_dir = write_initial_skills(str(tmp_path / "skills"), {
        "horizon": 5, "latent_dim": 3, "lstm_size": 8, "prior_hidden": (16,),
        "prior_channels": (4,), "closed_loop": True, "state_features": 4,
        "decoder_hidden": (8,)})
    workdir = str(tmp_path / "cl")
    result = train.train(_config("spirl", pretrained=skills_dir, total_env_steps=40,
                                 start_steps=20, eval_every=40, log_every=20,
                                 checkpoint_every=40, updates_per_env_step=0.1), workdir)
    assert result.env_steps == 40 and int(result.state.step) == 2
    with open(os.path.join(workdir, "config.json")) as f:
        description = json.load(f)
    assert description["action_horizon"] == 5 and description["pretrained_action_dim"] == 7
    restored, params, step = load_agent(workdir)
    # the agent's action is the skill's latent; the env's workers decode each step
    assert step == 40 and restored.env_action_dim == restored.policy_dim == 3
    obs = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    z, env_actions = act(restored, params, obs, jax.random.key(1), True)
    np.testing.assert_allclose(env_actions, 2.0 * np.asarray(z), atol=1e-6)
    summary, rollouts = evaluate_agent(workdir, episodes=2, num_envs=2, keep_frames=1)
    assert summary["agent"] == "spirl" and summary["step"] == 40
    assert rollouts.frames[0].shape == (6, 48, 48, 3)  # the first image and 5 skills' last


def _same_rows(a, b):
    """Metric rows equal but for wall-clock times and rates."""
    def strip(rows):
        return [{k: v for k, v in r.items() if k != "time" and not k.startswith("perf/env")}
                for r in rows]
    assert strip(_rows(a)) == strip(_rows(b))


def _same_state(a, b):
    """Bitwise equal SAC states (the typed rng key compared by its data)."""
    a, b = (s.replace(rng=jax.random.key_data(s.rng)) for s in (a, b))
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.fixture(scope="module")
def uninterrupted(prior_dir, tmp_path_factory):
    """A tiny parrot run never interrupted: (workdir, result)."""
    workdir = str(tmp_path_factory.mktemp("full"))
    return workdir, train.train(_config("parrot", prior_dir), workdir)


def test_a_resumed_run_equals_an_uninterrupted_one(prior_dir, uninterrupted, tmp_path):
    full_dir, full = uninterrupted
    workdir = str(tmp_path / "run")
    first = train.train(_config("parrot", prior_dir, total_env_steps=60), workdir)
    assert first.env_steps == 60 and int(first.state.step) == 20
    # the rerun restores step 60 with its replay buffer and goes on updating at once
    second = train.train(_config("parrot", prior_dir), workdir)
    assert second.env_steps == 120 and int(second.state.step) == int(full.state.step) == 80
    _same_state(second.state, full.state)
    _same_rows(workdir, full_dir)
    # a finished run does nothing
    again = train.train(_config("parrot", prior_dir), workdir)
    assert again.env_steps == 120 and int(again.state.step) == 80
    jax.tree.map(np.testing.assert_array_equal, again.params, second.params)


@pytest.mark.fault
@pytest.mark.parametrize("kill_seed", [0, 1, 2])
def test_kill_9_at_a_random_moment_then_rerun_equals_an_uninterrupted_run(
        prior_dir, uninterrupted, tmp_path, kill_seed):
    """SIGKILL the binary at a seeded random moment after its first update (during an
    update, an evaluation, a checkpoint or replay write), rerun: the same final state."""
    full_dir, full = uninterrupted
    workdir = str(tmp_path / "run")
    child = subprocess.Popen(
        [sys.executable, "-m", "experiments.train_rl", "--config=experiments/configs/rl.py:tiny",
         f"--config.prior={prior_dir}", f"--workdir={workdir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # this process's devices:
    # bitwise equality needs the same device count (a batch split another way sums in
    # another order)
    try:
        jsonl = os.path.join(workdir, metrics.JSONL)
        deadline = time.monotonic() + 300
        while not (os.path.exists(jsonl) and any("train/critic_loss" in r for r in _rows(workdir))):
            assert child.poll() is None and time.monotonic() < deadline, "no update logged"
            time.sleep(0.05)
        time.sleep(np.random.default_rng(kill_seed).uniform(0.0, 2.0))
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL  # killed, not finished
    killed_at = max(r["step"] for r in _rows(workdir))
    assert killed_at < 120
    result = train.train(_config("parrot", prior_dir), workdir)
    assert result.env_steps == 120
    _same_state(result.state, full.state)
    _same_rows(workdir, full_dir)


@pytest.mark.fault
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(prior_dir, uninterrupted,
                                                                   tmp_path):
    full_dir, full = uninterrupted
    workdir = str(tmp_path / "run")
    shutil.copytree(full_dir, workdir)
    for path in glob.glob(os.path.join(workdir, "checkpoints", "120", "state", "**", "*"),
                          recursive=True):
        if os.path.isfile(path):
            with open(path, "wb") as f:
                f.write(b"torn")
    # step 120 is damaged: the rerun restores 60, trains again to 120, and ends as before
    result = train.train(_config("parrot", prior_dir), workdir)
    assert result.env_steps == 120
    _same_state(result.state, full.state)
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "120.corrupt"))


@pytest.mark.fault
def test_non_finite_parameters_are_never_checkpointed(prior_dir, uninterrupted):
    _, full = uninterrupted
    broken = full.state.replace(log_alpha=full.state.log_alpha * np.nan)
    with pytest.raises(FloatingPointError, match="non-finite parameters at env step 60: not "
                                                 r"checkpointed \(the newest checkpoint stays "
                                                 "step 40"):
        train.check_finite(broken, 60, 40)
    train.check_finite(full.state, 60, 40)  # finite: no error


@pytest.mark.fault
def test_a_checkpoint_without_a_replay_refills_the_buffer(prior_dir, tmp_path):
    workdir = str(tmp_path / "run")
    train.train(_config("parrot", prior_dir, total_env_steps=60), workdir)
    shutil.rmtree(os.path.join(workdir, train.REPLAY_DIRECTORY))  # a run from before replays
    # the rerun refills start_steps=40 env steps (no updates), then updates for the last 20
    second = train.train(_config("parrot", prior_dir), workdir)
    assert second.env_steps == 120 and int(second.state.step) == 20 + 20


def test_settings_that_define_the_run_are_checked_on_resume(prior_dir, tmp_path):
    workdir = str(tmp_path / "run")
    train.train(_config("sac", total_env_steps=40, start_steps=40), workdir)
    with pytest.raises(ValueError, match="holds a different training run.*agent"):
        train.train(_config("parrot", prior_dir, total_env_steps=40), workdir)
    with pytest.raises(ValueError, match="holds a different training run.*batch_size"):
        train.train(_config("sac", total_env_steps=40, start_steps=40, batch_size=8), workdir)
    # another agent's section does not define a sac run: the finished run is found as is
    config = _config("sac", total_env_steps=40, start_steps=40)
    config.parrot.target_kl = 5.0
    assert train.train(config, workdir).env_steps == 40


def test_a_run_written_before_a_config_field_existed_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    train.train(_config("sac", total_env_steps=40, start_steps=40), workdir)
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        description = json.load(f)
    # added later, with the old behaviour as default
    for field in ("trunk", "freeze_trunk", "trunk_dtype", "vmap_trunks"):
        del description["network"][field]
    with open(path, "w") as f:
        json.dump(description, f)
    assert train.train(_config("sac", total_env_steps=60, start_steps=40), workdir).env_steps == 60
    with pytest.raises(ValueError, match="holds a different training run.*network"):
        train.train(_config("sac", total_env_steps=80, start_steps=40,
                            network=dict(rl.get_config("tiny").network, freeze_trunk=True,
                                         shared_trunk=True)), workdir)


@pytest.mark.parametrize("learner", ["awac", "iql"])
def test_parrot_with_an_advantage_weighted_learner(prior_dir, learner, tmp_path):
    workdir = str(tmp_path / "run")
    result = train.train(_config("parrot", prior_dir, learner=learner), workdir)
    assert int(result.state.step) == 80
    assert (result.state.value_params is not None) == (learner == "iql")
    trained = [r for r in _rows(workdir) if "train/actor_loss" in r]
    assert trained and all(np.isfinite(r["train/weight_max"]) for r in trained)
    restored, params, _ = load_agent(workdir)
    assert restored.learner_name == learner and not restored.networks.actor.squash
    jax.tree.map(np.testing.assert_array_equal, params, result.params)
    # how the run learns defines it: the same workdir refuses another learner
    with pytest.raises(ValueError, match="holds a different training run.*learner"):
        train.train(_config("parrot", prior_dir, learner="sac", total_env_steps=160), workdir)
    with pytest.raises(ValueError, match=f"holds a different training run.*{learner}"):
        config = _config("parrot", prior_dir, learner=learner, total_env_steps=160)
        field = {"awac": "temperature", "iql": "expectile"}[learner]
        config[learner][field] = 0.5 * config[learner][field]
        train.train(config, workdir)


def test_the_gpu_layouts_train_resume_and_restore(tmp_path):
    workdir = str(tmp_path / "run")
    network = dict(rl.get_config("tiny").network, vmap_trunks=True, trunk_dtype="bfloat16")
    train.train(_config("sac", total_env_steps=60, start_steps=40, network=network), workdir)
    result = train.train(_config("sac", total_env_steps=80, start_steps=40, network=network),
                         workdir)
    assert result.env_steps == 80 and set(result.params["critic"]) == {"qs", "trunks"}
    assert all(p.dtype == np.float32 for p in jax.tree.leaves(result.params))
    restored, params, _ = load_agent(workdir)
    assert restored.networks.critic.vmap_trunks
    assert restored.networks.critic.trunk_dtype == "bfloat16"
    jax.tree.map(np.testing.assert_array_equal, params, result.params)


def test_parrot_on_the_prior_encoder_trunk(prior_dir, tmp_path):
    workdir = str(tmp_path / "run")
    network = dict(rl.get_config("tiny").network, shared_trunk=True, trunk="prior_encoder",
                   freeze_trunk=True)
    result = train.train(_config("parrot", prior_dir, network=network), workdir)
    assert int(result.state.step) == 80
    # frozen: after 80 updates the critic's trunk is still the prior's encoder
    jax.tree.map(np.testing.assert_array_equal, result.params["critic"]["encoder"],
                 result.params["prior"]["encoder"])
    restored, params, _ = load_agent(workdir)
    assert restored.networks.critic.encoder is not None
    jax.tree.map(np.testing.assert_array_equal, params, result.params)


def test_bad_input_fails_before_training(prior_dir, tmp_path):
    with pytest.raises(ValueError, match="valid agents: parrot, sac, bc_sac, prior_explore, "
                                         "iql, awac, vae_features, hirl, trajrl, spirl"):
        train.train(_config("dqn"), str(tmp_path / "a"))
    with pytest.raises(ValueError, match="gymnasium does not know it.*parrot/PickUpCan-v0"):
        train.train(_config("sac", env="parrot/PickUpSpoon-v0"), str(tmp_path / "b"))
    with pytest.raises(ValueError, match="needs a behavioral prior: pass --config.prior"):
        train.train(_config("parrot"), str(tmp_path / "c"))
    with pytest.raises(ValueError, match="needs a behavioral prior"):
        train.train(_config("prior_explore"), str(tmp_path / "c"))
    with pytest.raises(ValueError, match="--config.dataset"):
        train.train(_config("bc_sac"), str(tmp_path / "d"))
    with pytest.raises(FileNotFoundError, match="no prior here"):
        train.train(_config("parrot", tmp_path / "missing"), str(tmp_path / "e"))
    wrong_dim = write_prior(tmp_path / "prior6", action_dim=6)
    with pytest.raises(ValueError, match="the prior has action_dim 6 but parrot/PickUpCan-v0 "
                                         "takes actions of shape \\(7,\\)"):
        train.train(_config("parrot", wrong_dim), str(tmp_path / "f"))
    wrong_image = write_prior(tmp_path / "prior64", image_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="expects images of shape \\(64, 64, 3\\)"):
        train.train(_config("parrot", wrong_image), str(tmp_path / "g"))
    with pytest.raises(ValueError, match="total_env_steps=121 is not a multiple of "
                                         "config.num_envs=2"):
        train.train(_config("sac", total_env_steps=121), str(tmp_path / "h"))
    with pytest.raises(ValueError, match="updates_per_env_step=0.3"):
        train.train(_config("sac", updates_per_env_step=0.3), str(tmp_path / "i"))
    with pytest.raises(ValueError, match="needs a pretrained vae: pass --config.pretrained"):
        train.train(_config("vae_features"), str(tmp_path / "j"))
    with pytest.raises(FileNotFoundError, match="no pretrained VAE here"):
        train.train(_config("vae_features", pretrained=str(tmp_path / "missing")),
                    str(tmp_path / "k"))
    wrong_vae = write_initial_vae(str(tmp_path / "vae64"), {"channels": 4, "num_residual": 1,
                                                            "latent_dim": 6}, (64, 64, 3))
    with pytest.raises(ValueError, match=r"trained on images of shape \(64, 64, 3\)"):
        train.train(_config("vae_features", pretrained=wrong_vae), str(tmp_path / "l"))
    with pytest.raises(ValueError, match="holds a 'vae' run, not a cVAE"):
        train.train(_config("hirl", pretrained=wrong_vae), str(tmp_path / "m"))
    wrong_dim = write_initial_cvae(str(tmp_path / "cvae6"), TINY_CVAE, action_dim=6)
    with pytest.raises(ValueError, match="action_dim 6 but parrot/PickUpCan-v0"):
        train.train(_config("hirl", pretrained=wrong_dim), str(tmp_path / "n"))
    with pytest.raises(ValueError, match="needs a pretrained trajvae: pass --config.pretrained"):
        train.train(_config("trajrl"), str(tmp_path / "o"))
    with pytest.raises(ValueError, match="holds a 'cvae' run, not a TrajVAE"):
        train.train(_config("trajrl", pretrained=wrong_dim), str(tmp_path / "p"))
    too_long = write_initial_trajvae(str(tmp_path / "traj30"), {
        "horizon": 30, "encoder_hidden": (8,), "decoder_hidden": (8,)})
    with pytest.raises(Exception, match="a plan of horizon=30 steps is longer than "
                                        "parrot/PickUpCan-v0's 25-step episodes"):
        train.train(_config("trajrl", pretrained=too_long), str(tmp_path / "q"))
    with pytest.raises(ValueError, match="needs a pretrained spirl: pass --config.pretrained"):
        train.train(_config("spirl"), str(tmp_path / "r"))
    with pytest.raises(ValueError, match="holds a 'trajvae' run, not a SPiRL skill model"):
        train.train(_config("spirl", pretrained=too_long), str(tmp_path / "s"))
    long_skills = write_initial_skills(str(tmp_path / "skills30"), {
        "horizon": 30, "latent_dim": 3, "lstm_size": 8, "prior_hidden": (8,),
        "prior_channels": (4,)})
    with pytest.raises(Exception, match="a plan of horizon=30 steps is longer than "
                                        "parrot/PickUpCan-v0's 25-step episodes"):
        train.train(_config("spirl", pretrained=long_skills), str(tmp_path / "t"))
    config = _config("spirl", pretrained=long_skills)
    config.spirl.target_divergence = -1.0
    with pytest.raises(ValueError, match="config.spirl.target_divergence=-1.0"):
        train.train(config, str(tmp_path / "u"))
    for name in "abcdefghijklmnopqrstu":  # nothing was trained: no checkpoint anywhere
        assert not os.path.exists(os.path.join(tmp_path, name, "checkpoints", "0"))


def _offline(agent, dataset_dir, **overrides):
    config = _config(agent, **overrides)
    config.offline.dataset = str(dataset_dir)
    config.offline.rewards = "zero"  # the synthetic data's tasks are not PickUpCan's
    config.offline.steps = 30
    config.offline.mix = 0.5
    return config


@pytest.fixture(scope="module")
def offline_run(dataset_dir, tmp_path_factory):
    """A tiny IQL run with 30 offline updates, then online with half of each batch from
    the dataset, never interrupted: (workdir, result)."""
    workdir = str(tmp_path_factory.mktemp("iql"))
    return workdir, train.train(_offline("iql", dataset_dir), workdir)


def test_offline_updates_then_online_with_a_mixed_batch(offline_run):
    workdir, result = offline_run
    # 30 offline updates, then 80 online ones (start_steps=40 of 120 env steps, 1 per step)
    assert int(result.state.step) == 110
    history = json.load(open(os.path.join(workdir, train.OFFLINE_METRICS)))
    assert [row["update"] for row in history] == [20, 30]  # every log_every=20 updates
    assert all(row["reward"] == 0.0 for row in history)
    first = _rows(workdir)[0]
    assert first["step"] == 0 and first["offline/update"] == 30
    description = json.load(open(os.path.join(workdir, "config.json")))
    assert description["offline_data"]["transitions"] == 8 * 25
    assert description["offline_data"]["env_ids"] == ["synthetic/A-v0", "synthetic/B-v0"]


def test_an_offline_run_resumes_exactly(offline_run, dataset_dir, tmp_path):
    full_dir, full = offline_run
    workdir = str(tmp_path / "run")
    first = train.train(_offline("iql", dataset_dir, total_env_steps=60), workdir)
    assert int(first.state.step) == 50
    second = train.train(_offline("iql", dataset_dir), workdir)  # offline updates not redone
    assert int(second.state.step) == 110
    _same_state(second.state, full.state)
    _same_rows(workdir, full_dir)


def test_offline_data_is_checked_before_training(prior_dir, dataset_dir, tmp_path):
    config = _offline("awac", dataset_dir)
    config.offline.rewards = "dataset"
    with pytest.raises(ValueError, match="holds episodes of synthetic/A-v0, synthetic/B-v0, "
                                         "not of the run's task parrot/PickUpCan-v0"):
        train.train(config, str(tmp_path / "a"))
    config = _config("iql")
    config.offline.steps = 10
    with pytest.raises(ValueError, match="need reward-labelled data: pass "
                                         "--config.offline.dataset"):
        train.train(config, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="agent 'parrot' stores other actions"):
        train.train(_offline("parrot", dataset_dir, prior=str(prior_dir)), str(tmp_path / "c"))
    six = str(tmp_path / "six")
    write_synthetic_dataset(six, num_episodes=2, episodes_per_shard=2, action_dim=6)
    with pytest.raises(ValueError, match="has 6-D actions; the env's are 7-D"):
        train.train(_offline("iql", six), str(tmp_path / "d"))
    with pytest.raises(ValueError, match="no such dataset directory"):
        train.train(_offline("iql", tmp_path / "missing"), str(tmp_path / "e"))
    config = _config("iql")
    config.iql.expectile = 1.5
    with pytest.raises(ValueError, match="config.iql: expectile=1.5"):
        train.train(config, str(tmp_path / "f"))
    for name in "abcdef":
        assert not os.path.exists(os.path.join(tmp_path, name, "checkpoints", "0"))


def test_step_0_outlives_the_rotation_unless_asked_not_to(tmp_path):
    # max_checkpoints=1: of 0, 60 and 120 only the newest rotates in, and step 0 stays
    kept = train.train(_config("sac", max_checkpoints=1), str(tmp_path / "kept"))
    assert kept.env_steps == 120
    assert sorted(os.listdir(tmp_path / "kept" / "checkpoints")) == ["0", "120"]
    restored, params, step = load_agent(str(tmp_path / "kept"), step=0)
    assert step == 0 and restored.name == "sac"
    train.train(_config("sac", max_checkpoints=1, keep_first_checkpoint=False),
                str(tmp_path / "rotated"))
    assert sorted(os.listdir(tmp_path / "rotated" / "checkpoints")) == ["120"]


def test_pool_schedule():
    assert train.pool_schedule(4, 1.0) == (4, 1)
    assert train.pool_schedule(4, 0.25) == (1, 1)
    assert train.pool_schedule(4, 0.125) == (1, 2)
    assert train.pool_schedule(2, 2.0) == (4, 1)


def test_sac_learns_a_vector_task(tmp_path):
    """Seeded: SAC from vectors on a point-reaching task beats random actions (-17) by far."""
    config = rl.get_config("vector")
    config.update(env=POINT_ENV, total_env_steps=3000, start_steps=500, eval_every=3000,
                  eval_episodes=16, log_every=500, checkpoint_every=3000, progress=False,
                  num_envs=4)
    result = train.train(config, str(tmp_path / "point"))
    rows = _rows(str(tmp_path / "point"))
    first = next(r for r in rows if "eval/return" in r)
    assert first["step"] == 0 and first["eval/return"] < -10
    assert result.evaluation["eval/return"] > -6.0, result.evaluation


def test_binaries(prior_dir, tmp_path):
    workdir = str(tmp_path / "run")
    env = {**os.environ, "XLA_FLAGS": ""}
    subprocess.run([sys.executable, "-m", "experiments.train_rl",
                    "--config=experiments/configs/rl.py:tiny", f"--config.prior={prior_dir}",
                    "--config.total_env_steps=60", "--config.sac.n_step=3",
                    f"--workdir={workdir}"], check=True, env=env, capture_output=True, text=True)
    assert json.load(open(os.path.join(workdir, "config.json")))["sac"]["n_step"] == 3
    out = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}",
                          "--episodes=3", "--video", "--video_episodes=2", "--stochastic"],
                         check=True, env=env, capture_output=True, text=True).stdout
    assert "parrot on parrot/PickUpCan-v0 at env step 60 (stochastic, 3 episodes)" in out
    assert "critic at the first step: mean Q(s_0, a_0)" in out
    summary = json.load(open(os.path.join(workdir, "eval", "step_60_sampled.json")))
    assert summary["episodes"] == 3 and len(summary["per_episode_success"]) == 3
    assert len(summary["per_episode_q_start"]) == 3
    assert len(summary["per_episode_discounted_return"]) == 3
    low, high = summary["success_ci95"]
    assert 0 <= low <= summary["success_rate"] <= high <= 1
    assert os.path.getsize(os.path.join(workdir, "eval", "step_60_sampled.gif")) > 1000
    # The policy's mode on other env seeds: a file of its own beside the sampled one.
    subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}",
                    "--episodes=2", "--seed=7"], check=True, env=env, capture_output=True)
    mode = json.load(open(os.path.join(workdir, "eval", "step_60_seed7.json")))
    assert mode["deterministic"] and mode["episodes"] == 2 and mode["seed"] == 7
    assert json.load(open(os.path.join(workdir, "eval", "step_60_sampled.json")))[
        "episodes"] == 3
    # A file that holds this checkpoint evaluated another way is refused, not overwritten.
    sampled = os.path.join(workdir, "eval", "step_60_sampled.json")
    before = open(sampled).read()
    bad = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}",
                          "--episodes=2", f"--out={sampled}"], env=env, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and (
        f"error: {sampled} holds another evaluation (deterministic False there, True here, "
        "episodes 3 there, 2 here); not overwritten: pass --out=PATH") in bad.stderr
    assert open(sampled).read() == before
    subprocess.run([sys.executable, "-m", "experiments.plot_rl", f"--runs={workdir}",
                    f"--out={tmp_path / 'curves.png'}", f"--diagnostics={tmp_path / 'diag.png'}"],
                   check=True, env=env, capture_output=True)
    assert os.path.getsize(tmp_path / "curves.png") > 1000
    assert os.path.getsize(tmp_path / "diag.png") > 1000
    assert "| parrot | 60 |" in (tmp_path / "curves.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "experiments.evaluate",
                          f"--workdir={tmp_path / 'none'}"], env=env, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "no RL run here" in bad.stderr
    out = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}",
                          "--episodes=2", "--stochastic", "--critic_samples=3",
                          f"--out={tmp_path / 'critic3.json'}"], check=True, env=env,
                         capture_output=True, text=True).stdout
    assert "(stochastic, the best of 3 samples by the critic, 2 episodes)" in out
    assert json.load(open(tmp_path / "critic3.json"))["critic_samples"] == 3
    bad = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}",
                          "--critic_samples=3"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--critic_samples=3 chooses among sampled actions; add " \
        "--stochastic" in bad.stderr


def test_evaluate_agent_repeats_with_its_seed(prior_dir, tmp_path):
    workdir = str(tmp_path / "run")
    train.train(_config("sac", total_env_steps=40, start_steps=40), workdir)
    a, _ = evaluate_agent(workdir, episodes=2, deterministic=False, seed=7, num_envs=2)
    b, _ = evaluate_agent(workdir, episodes=2, deterministic=False, seed=7, num_envs=2)
    assert a["per_episode_return"] == b["per_episode_return"] and a["seed"] == 7
    with pytest.raises(FileNotFoundError, match="no checkpoint at step 5"):
        evaluate_agent(workdir, step=5, episodes=1)
