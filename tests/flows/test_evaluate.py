"""Prior rollouts: shared env seeds, determinism, the binary's outputs and its errors."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from experiments import prior_rollouts as binary
from parrot_jax.envs import TEST_ENV_IDS
from parrot_jax.envs.pool import EnvPool
from parrot_jax.flows import evaluate
from parrot_jax.flows.prior import load_prior
from tests.flows.prior_workdir import write_prior

ENV = "parrot/PickUpCan-v0"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory):
    return write_prior(tmp_path_factory.mktemp("prior"))


@pytest.fixture(scope="module")
def prior(prior_dir):
    return load_prior(prior_dir)


@pytest.fixture(scope="module")
def pool():
    with EnvPool(ENV, num_envs=2, num_workers=1) as p:
        yield p


def test_prior_and_random_share_seeds_and_runs_repeat(prior, pool):
    prior_fn, random_fn = evaluate.prior_act_fn(prior), evaluate.random_act_fn(7)
    a = evaluate.rollout_success(pool, prior_fn, episodes=2, seed=3, keep_frames=2)
    b = evaluate.rollout_success(pool, random_fn, episodes=2, seed=3, keep_frames=2)
    again = evaluate.rollout_success(pool, prior_fn, episodes=2, seed=3, keep_frames=2)
    assert [f.shape for f in a.frames] == [(26, 48, 48, 3)] * 2  # reset image + 25 steps
    assert a.successes.shape == (2,) and a.env_steps == 50
    for f, g in zip(a.frames, b.frames):
        np.testing.assert_array_equal(f[0], g[0])  # same scenes for both policies
        assert not np.array_equal(f[-1], g[-1])  # but different actions
    assert not np.array_equal(a.frames[0][0], a.frames[1][0])  # seeds 3 and 4 differ
    for f, g in zip(a.frames, again.frames):
        np.testing.assert_array_equal(f, g)  # same seed: same z, same episode
    np.testing.assert_array_equal(a.successes, again.successes)
    # End-effector paths: reset position first, same scenes (and targets) for both policies.
    assert a.ee_paths.shape == (2, 26, 3) and a.target_starts.shape == (2, 3)
    np.testing.assert_array_equal(a.ee_paths[:, 0], b.ee_paths[:, 0])
    np.testing.assert_array_equal(a.target_starts, b.target_starts)
    assert not np.allclose(a.ee_paths[:, -1], b.ee_paths[:, -1])
    np.testing.assert_array_equal(a.ee_paths, again.ee_paths)
    assert np.all(np.abs(np.diff(a.ee_paths, axis=1)) < 0.06)  # at most 0.05 m per step


class FakePool:
    """EnvPool's interface and same-step autoreset over numpy envs: env seed s shows
    images filled with s, lasts 2 + s % 3 steps, and succeeds iff its last action[0] > 0."""

    num_envs = 3

    def reset(self, seed):
        self.seeds = np.arange(seed, seed + self.num_envs)
        self.t = np.zeros(self.num_envs, int)
        return self._obs(), {}

    def _obs(self):
        return np.broadcast_to(self.seeds[:, None, None, None] % 256, (3, 4, 4, 3)).astype(np.uint8)

    def step(self, actions):
        self.t += 1
        final_obs, ended = self._obs(), self.t == 2 + self.seeds % 3
        success = ended & (actions[:, 0] > 0)
        self.seeds = np.where(ended, self.seeds + 1000, self.seeds)  # autoreset: a new scene
        self.t[ended] = 0
        held = np.zeros((3, 3), bool)
        held[:, 1] = (self.seeds % 4 == 1) & (self.t == 1)  # object 1 held once, mid-episode
        infos = {"success": success, "final_obs": final_obs, "held": held}
        return self._obs(), success.astype(float), np.zeros(3, bool), ended, infos


def test_rollouts_map_episodes_to_seeds():
    def even_seeds_succeed(obs, key):
        del key
        return np.where(obs[:, :1, 0, 0] % 2 == 0, 1.0, -1.0) * np.ones((len(obs), 7))

    r = evaluate.rollout_success(FakePool(), even_seeds_succeed, episodes=7, seed=5,
                                 keep_frames=4, discount=0.5)
    seeds = np.arange(5, 12)  # 3 waves of 3 envs; the last wave's last 2 are dropped
    np.testing.assert_array_equal(r.successes, seeds % 2 == 0)
    np.testing.assert_array_equal(r.returns, seeds % 2 == 0)
    # the one reward comes at the last of 2 + seed % 3 steps: discounted by 0.5 ** (1 + s % 3)
    np.testing.assert_allclose(r.discounted_returns, (seeds % 2 == 0) * 0.5 ** (1 + seeds % 3))
    np.testing.assert_array_equal(r.lifted, seeds % 4 == 1)
    assert r.lift_rate("x").successes == int(np.sum(seeds % 4 == 1))
    assert [len(f) for f in r.frames] == [3 + s % 3 for s in seeds[:4]]  # ragged lengths
    assert [int(f[-1, 0, 0, 0]) for f in r.frames] == seeds[:4].tolist()  # never the next
    assert r.env_steps == 3 * 3 * 4  # 3 waves of 3 envs, each until its longest (4) ends
    assert r.ee_paths is None and r.target_starts is None  # no ee_pos in its infos
    with pytest.raises(RuntimeError, match="max_steps=2"):
        evaluate.rollout_success(FakePool(), even_seeds_succeed, episodes=3, max_steps=2)


def test_act_fns_are_seeded_and_in_range(prior):
    obs = np.zeros((3, 48, 48, 3), np.uint8)
    key, other = jax.random.key(0), jax.random.key(1)
    for fn in (evaluate.prior_act_fn(prior), evaluate.random_act_fn(7)):
        actions = fn(obs, key)
        assert actions.shape == (3, 7) and np.all(np.abs(actions) <= 1)
        np.testing.assert_array_equal(actions, fn(obs, key))
        assert not np.allclose(actions, fn(obs, other))
    z = jax.random.normal(key, (3, 7))
    compiled = evaluate._prior_actions._cache_size()
    np.testing.assert_allclose(evaluate.prior_act_fn(prior)(obs, key), np.tanh(z), atol=1e-6)
    assert evaluate._prior_actions._cache_size() == compiled  # a new act_fn, no new trace


class RecordingPool(FakePool):
    """FakePool with 48 x 48 images that keeps every action batch it was given."""

    def __init__(self):
        self.actions = []

    def _obs(self):
        return np.broadcast_to(self.seeds[:, None, None, None] % 256,
                               (3, 48, 48, 3)).astype(np.uint8)

    def step(self, actions):
        self.actions.append(np.array(actions))
        return super().step(actions)


def test_latent_modes_of_the_identity_prior(prior):
    """At init a = tanh(z): z = 0 gives zeros, a z held per episode gives one action per
    env for the whole wave, a fresh z a new one every step."""
    runs = {}
    for latent in evaluate.LATENTS:
        pool = RecordingPool()
        evaluate.rollout_success(pool, evaluate.prior_act_fn(prior, latent), episodes=6,
                                 seed=1, key=jax.random.key(3))
        runs[latent] = pool.actions  # 2 waves; wave 0 has 4 steps (seeds 1-3 last 3, 4, 2)
    np.testing.assert_array_equal(np.concatenate(runs["zero"]), 0.0)
    held = runs["episode"]
    assert np.abs(held[0]).min() > 0
    for t in (1, 2):
        np.testing.assert_allclose(held[t], held[0], atol=1e-6)  # same z within the wave
    assert not np.allclose(held[-1], held[0])  # a new z for the next wave
    fresh = runs["fresh"]
    assert not np.allclose(fresh[1], fresh[0])
    with pytest.raises(ValueError, match="latent='sometimes'; expected one of fresh, zero"):
        evaluate.prior_act_fn(prior, "sometimes")
    with pytest.raises(RuntimeError, match="needs reset"):
        evaluate.prior_act_fn(prior, "episode")(np.zeros((3, 48, 48, 3), np.uint8), None)


class SuitePool(FakePool):
    """FakePool with the suite's privileged infos: env seed s ends with object s % 3
    grasped when s is even (object 0 is the target), nothing otherwise."""

    def reset(self, seed):
        obs, _ = super().reset(seed)
        return obs, self._infos(np.zeros((3, 3), bool))

    def step(self, actions):
        seeds = self.seeds.copy()
        obs, reward, terminated, truncated, infos = super().step(actions)
        ended = truncated
        grasped = np.zeros((3, 3), bool)
        grasped[np.arange(3), seeds % 3] = ended & (seeds % 2 == 0)
        return obs, reward, terminated, truncated, {**infos, **self._infos(grasped)}

    @staticmethod
    def _infos(grasped):
        return {"ee_pos": np.full((3, 3), 0.5), "object_pos": np.zeros((3, 3, 3)),
                "object_bottom": np.zeros((3, 3)), "gripper_open": np.ones(3, bool),
                "held": np.zeros((3, 3), bool), "grasped": grasped,
                "placed": np.zeros((3, 3), bool), "has_container": np.zeros(3, bool),
                "container_pos": np.zeros((3, 3)), "container_radius": np.zeros(3),
                "target_pos": np.zeros((3, 3))}


def test_rollouts_carry_phases_on_suite_envs(pool):
    r = evaluate.rollout_success(SuitePool(), evaluate.random_act_fn(7), episodes=6, seed=4)
    seeds = np.arange(4, 10)
    assert len(r.phases) == 6 and r.phases.reached.shape == (6, 3)
    np.testing.assert_array_equal(r.phases.any_object("grasped"), seeds % 2 == 0)
    np.testing.assert_array_equal(r.phases.target("grasped"), (seeds % 2 == 0) & (seeds % 3 == 0))
    some = r.some_object_rate(ENV)  # a grasp task: success with any object = grasped any
    assert (some.successes, some.episodes) == (3, 6)
    real = evaluate.rollout_success(pool, evaluate.random_act_fn(7), episodes=2, seed=0)
    assert real.phases is not None and len(real.phases) == 2
    # Outside the suite (no privileged infos) there are none.
    fake = evaluate.rollout_success(FakePool(), evaluate.random_act_fn(7), episodes=3)
    assert fake.phases is None and fake.some_object_rate("x") is None


def test_binary_writes_json_table_and_gifs(tmp_path, prior_dir):
    cmd = [sys.executable, "-m", "experiments.evaluate_prior", f"--prior={prior_dir}",
           f"--env={ENV}", "--episodes=3", "--num_envs=2", "--workers=1", "--gif_episodes=2",
           f"--workdir={tmp_path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "prior_rollouts.json").read_text())
    assert summary["prior"]["step"] == 0 and summary["seed"] == 0
    assert summary["prior"]["model"]["action_dim"] == 7
    assert summary["config"]["episodes"] == 3 and summary["config"]["num_envs"] == 2
    (task,) = summary["tasks"]
    assert task["env_id"] == ENV
    for policy in ("prior", "random"):
        r = task[policy]
        assert r["episodes"] == 3 and len(r["per_episode"]) == 3  # 3 of the 2 waves' 4 envs
        assert r["successes"] == sum(r["per_episode"]) and r["success_rate"] == r["successes"] / 3
        assert 0 <= r["ci95_low"] <= r["success_rate"] <= r["ci95_high"] <= 1
        assert r["lifted"]["successes"] == sum(r["lifted_per_episode"])
        assert r["lifted"]["episodes"] == 3
        assert r["some_object"]["episodes"] == 3
        gif = Image.open(tmp_path / "gifs" / f"PickUpCan_{policy}.gif")
        assert gif.n_frames == 26 and gif.size == (4 * (2 * 48 + 2), 4 * 48)
    assert "| parrot/PickUpCan-v0 |" in (tmp_path / "prior_rollouts.md").read_text()
    paths = np.load(tmp_path / "paths.npz")
    assert paths[f"{ENV}/prior/ee_paths"].shape == (3, 26, 3)
    assert paths[f"{ENV}/random/target_starts"].shape == (3, 3)
    grid = Image.open(tmp_path / "gifs" / "grid.gif")  # label strip + one row, 3x upscaled
    assert grid.n_frames == 26 and grid.size == (3 * (4 * 48 + 2 + 2 + 6), 14 + 3 * 48)
    assert "| parrot/PickUpCan-v0 |" in out.stdout


def test_env_ids():
    assert binary.env_ids("all") == TEST_ENV_IDS and len(TEST_ENV_IDS) == 8
    with pytest.raises(ValueError, match="parrot/Nope-v0.*'all'.*parrot/PickUpCan-v0"):
        binary.env_ids("parrot/Nope-v0")
    assert binary.env_ids("parrot/PickUpCan-v0, parrot/PickUpCup-v0") == (
        "parrot/PickUpCan-v0", "parrot/PickUpCup-v0")
    with pytest.raises(ValueError, match="unknown env id 'parrot/Nope-v0'"):
        binary.env_ids("parrot/PickUpCan-v0,parrot/Nope-v0")
    # a task outside the suite, by its module (the diagnostic tasks), as train_rl takes it
    any_novel = "experiments.diagnostic_envs:parrot/PickUpAnyNovel-v0"
    assert binary.env_ids(f"parrot/PickUpCan-v0,{any_novel}") == ("parrot/PickUpCan-v0",
                                                                   any_novel)
    with pytest.raises(ValueError, match="unknown env id 'nomodule:parrot/PickUpCan-v0'.*"
                                         "module:id"):
        binary.env_ids("nomodule:parrot/PickUpCan-v0")


def test_binary_errors(tmp_path):
    common = dict(episodes=2, seed=0, num_envs=2, workers=1, workdir=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="unknown env id 'PickUpCan'.*parrot/PickUpCan-v0"):
        binary.run(str(tmp_path), "PickUpCan", **common)
    with pytest.raises(FileNotFoundError, match="no prior here"):
        binary.run(str(tmp_path / "missing"), ENV, **common)
    with pytest.raises(ValueError, match="--episodes must be >= 1, got 0"):
        binary.run(str(tmp_path), ENV, **{**common, "episodes": 0})
    six = write_prior(tmp_path / "six", action_dim=6)
    with pytest.raises(ValueError, match="action_dim 6 but .* actions of shape \\(7,\\)"):
        binary.run(six, ENV, **common)
    assert not os.path.exists(tmp_path / "out")


def _rates(task, some, lifted):
    return {"success_rate": task, "some_object": {"success_rate": some},
            "lifted": {"success_rate": lifted}}


def test_mean_rates_average_grasp_and_place_tasks_apart():
    tasks = [
        {"env_id": "parrot/PickUpCan-v0", "prior": _rates(0.1, 0.3, 0.4),
         "random": _rates(0.0, 0.0, 0.02)},
        {"env_id": "parrot/PickUpCup-v0", "prior": _rates(0.3, 0.5, 0.6),
         "random": _rates(0.0, 0.0, 0.0)},
        {"env_id": "parrot/PlaceCanInPan-v0", "prior": _rates(0.05, 0.1, 0.2),
         "random": _rates(0.0, 0.0, 0.01)}]
    rows = binary.mean_rates(tasks).splitlines()
    assert rows[2] == "| 2 grasp | prior | 0.200 | 0.400 | 0.500 |"
    assert rows[3] == "| 2 grasp | random | 0.000 | 0.000 | 0.010 |"
    assert rows[4] == "| 1 place | prior | 0.050 | 0.100 | 0.200 |"
    assert len(rows) == 6


def test_a_place_task_in_another_container_colour(tmp_path, prior_dir):
    """--container_rgba: the same scenes with the container redrawn; recorded; refused with
    a clear message for a task without a container or a bad colour, before any rollout."""
    place = "parrot/PlaceCanInPan-v0"
    summary = binary.run(prior_dir, place, 2, 0, 2, 1, str(tmp_path / "brown"),
                         gif_episodes=2, env_kwargs={"container_rgba": (0.7, 0.45, 0.15)})
    assert summary["config"]["env_kwargs"] == {"container_rgba": (0.7, 0.45, 0.15)}
    plain = binary.run(prior_dir, place, 2, 0, 2, 1, str(tmp_path / "plain"), gif_episodes=2)
    assert plain["config"]["env_kwargs"] == {}
    brown, dark = (np.asarray(Image.open(tmp_path / d / "gifs" / "PlaceCanInPan_prior.gif")
                              .convert("RGB")) for d in ("brown", "plain"))
    changed = np.abs(brown.astype(int) - dark).sum(-1) > 30  # the first frame: the pan only
    assert 0.02 < changed.mean() < 0.3
    cmd = [sys.executable, "-m", "experiments.evaluate_prior", f"--prior={prior_dir}",
           f"--workdir={tmp_path / 'refused'}"]
    for flags, message in (
            ([f"--env={ENV}", "--container_rgba=0.7,0.45,0.15"],
             "container_rgba given for parrot/PickUpCan-v0, which has no container"),
            ([f"--env={place}", "--container_rgba=0.7,1.5,0.15"],
             r"container_rgba=(0.7, 1.5, 0.15); expected 3 or 4 values in [0, 1]"),
            ([f"--env={place}", "--container_rgba=brown"],
             "--container_rgba=brown: expected 3 or 4 numbers in [0, 1]")):
        out = subprocess.run(cmd + flags, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]
        assert not (tmp_path / "refused").exists()
