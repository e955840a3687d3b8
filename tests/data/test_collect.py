"""Scripted collection: shard planning, task mix, determinism, kill and resume, merging."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments.configs import collect as collect_config
from parrot_jax.data import collect, merge
from parrot_jax.data import format as fmt
from parrot_jax.data.dataset import load_dataset
from parrot_jax.envs.manipulation import ManipulationEnv

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _config(**overrides):
    config = collect_config.get_config("tiny")
    config.progress = False
    config.num_workers = 1
    config.update(overrides)
    return config


def _assert_same_data(a, b):
    for key in ("actions", "rewards", "episode_lengths", "episode_tasks", "episode_seeds",
                "object_offsets"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    np.testing.assert_array_equal(np.asarray(a.observations), np.asarray(b.observations))
    np.testing.assert_array_equal(np.asarray(a.final_observations),
                                  np.asarray(b.final_observations))
    assert a.env_ids == b.env_ids


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("collect") / "small")
    metadata = collect.collect(_config(num_trajectories=6, trajectories_per_shard=4), root)
    return root, metadata


def test_plan_shards():
    assert collect.plan_shards(10, 4, {}) == [(0, 4), (1, 4), (2, 2)]
    assert collect.plan_shards(10, 4, {1: 4}) == [(0, 4), (2, 2)]
    assert collect.plan_shards(10, 4, {0: 4, 1: 4, 2: 2}) == []
    # The target grew after a smaller collection finished: keep its short last shard.
    assert collect.plan_shards(12, 4, {0: 4, 1: 4, 2: 2}) == [(3, 2)]
    assert collect.plan_shards(9, 4, {0: 4, 1: 2}) == [(2, 3)]
    assert collect.plan_shards(4, 4, {0: 4, 1: 4}) == []
    # A killed run resumes to exactly its plan, whichever shards finished.
    for existing in ({0: 4, 2: 2}, {2: 2}, {1: 4}):
        todo = collect.plan_shards(10, 4, existing)
        assert sorted(todo + list(existing.items())) == [(0, 4), (1, 4), (2, 2)]


def test_slot_tasks_follow_the_mix_exactly():
    assert list(collect.slot_tasks(0, 6, (0.5, 0.5))) == [0, 0, 0, 1, 1, 1]
    odd = [np.bincount(collect.slot_tasks(k, 5, (0.5, 0.5)), minlength=2) for k in range(4)]
    assert sum(odd).tolist() == [10, 10]  # ties alternate between tasks over shards
    assert np.bincount(collect.slot_tasks(0, 10, (3, 1, 0))).tolist() == [8, 2]


def test_attempt_seeds_are_deterministic_and_distinct():
    seeds = {collect.attempt_seeds(0, k, i, j)
             for k in range(3) for i in range(3) for j in range(3)}
    assert len(seeds) == 27
    assert collect.attempt_seeds(0, 1, 2, 3) == collect.attempt_seeds(0, 1, 2, 3)
    assert collect.attempt_seeds(0, 1, 2, 3) != collect.attempt_seeds(1, 1, 2, 3)


def test_collection_keeps_successes_with_metadata(small):
    root, metadata = small
    ds = load_dataset(root, verify="full")
    assert ds.num_episodes == 6 and ds.num_steps == 6 * 25 and metadata["complete"]
    assert [len(s) for s in [ds.episode_lengths]] == [6]
    # Every trajectory ends in success; scripted actions are clipped to 0.9.
    ends = ds.episode_starts + ds.episode_lengths - 1
    assert np.all(ds.rewards[ends] == 1.0)
    assert np.abs(ds.actions).max() <= 0.9 + 1e-6
    assert np.bincount(ds.episode_tasks).tolist() == [3, 3]
    assert metadata["env_ids"] == ["parrot/GraspTrain-v0", "parrot/PickPlaceTrain-v0"]
    assert metadata["attempts"] >= 6 and 0 < metadata["acceptance_rate"] <= 1
    assert metadata["per_task"]["parrot/GraspTrain-v0"]["episodes"] == 3
    assert len(metadata["tasks"]["parrot/GraspTrain-v0"]["objects"]) == 66
    assert metadata["policy"]["grasp"]["noise"] == 0.1
    assert metadata["policy"]["place"]["clip"] == 0.9
    assert metadata["collection"]["policy_kwargs"] == {}
    assert metadata["policy"]["grasp"]["gripper"] == "toggle"
    assert metadata["versions"]["pybullet"] and metadata["seeds"] == [0] and metadata["created"]
    # The stored seed reproduces the scene: resetting with it gives the first image.
    env = ManipulationEnv(ds.env_ids[ds.episode_tasks[4]])
    obs, _ = env.reset(seed=int(ds.episode_seeds[4]))
    env.close()
    np.testing.assert_array_equal(obs, ds.episode(4)["observations"][0])
    # Each step's offset to the nearest grasp point is stored: within the workspace, and
    # at the end (the object held or placed) much closer than at the start.
    starts = ds.object_offsets[ds.episode_starts]
    assert ds.object_offsets.shape == (ds.num_steps, 3) and np.abs(ds.object_offsets).max() < 0.6
    assert np.all(np.linalg.norm(starts, axis=-1) > 0.02)
    grasp = ds.episode_tasks == 0
    assert np.all(np.linalg.norm(ds.object_offsets[ends[grasp]], axis=-1) < 0.05)


def test_rerun_is_a_no_op_and_a_larger_target_extends(small, tmp_path):
    root, metadata = small
    again = collect.collect(_config(num_trajectories=6, trajectories_per_shard=4), root)
    assert again["num_episodes"] == 6 and again["attempts"] == metadata["attempts"]
    import shutil
    grown = str(tmp_path / "grown")
    shutil.copytree(root, grown)
    extended = collect.collect(_config(num_trajectories=9, trajectories_per_shard=4), grown)
    assert extended["num_episodes"] == 9 and len(extended["shards"]) == 3
    _assert_same_data(load_dataset(grown).select_episodes(range(6)), load_dataset(root))


def test_other_settings_refuse_to_resume(small):
    root, _ = small
    with pytest.raises(ValueError, match=r"other settings .*'noise': \(0.1, 0.2\)"):
        collect.collect(_config(num_trajectories=6, trajectories_per_shard=4, noise=0.2), root)


def test_policy_fields_reach_the_scripted_policies(tmp_path):
    fields = json.dumps({"gain": 0.7, "approach": "over", "drop_margin": 0.03})
    metadata = collect.collect(_config(num_trajectories=2, trajectories_per_shard=2,
                                       policy_kwargs=fields, perturb=0.3), str(tmp_path))
    assert metadata["collection"]["policy_kwargs"] == json.loads(fields)
    assert metadata["collection"]["perturb"] == 0.3
    assert metadata["policy"]["grasp"]["gain"] == 0.7
    assert metadata["policy"]["place"]["approach"] == "over"
    # A pick-and-place field reaches the place policy; the grasp policy has none.
    assert metadata["policy"]["place"]["drop_margin"] == 0.03
    assert "drop_margin" not in metadata["policy"]["grasp"]
    with pytest.raises(ValueError, match=r"other settings .*'policy_kwargs': \(\{'approach'"):
        collect.collect(_config(num_trajectories=2, trajectories_per_shard=2, perturb=0.3),
                        str(tmp_path))


def test_a_dataset_from_before_policy_fields_resumes_with_the_defaults(small, tmp_path):
    """Settings written before ``policy_kwargs`` and ``perturb`` existed were collected with
    the defaults."""
    import shutil
    root = str(tmp_path / "legacy")
    shutil.copytree(small[0], root)
    path = os.path.join(root, fmt.METADATA)
    metadata = json.load(open(path))
    del metadata["collection"]["policy_kwargs"]
    del metadata["collection"]["perturb"]
    json.dump(metadata, open(path, "w"))
    with pytest.raises(ValueError, match=r"'policy_kwargs': \(\{\}, \{'gain': 0.5\}\)"):
        collect.collect(_config(num_trajectories=6, trajectories_per_shard=4,
                                policy_kwargs=json.dumps({"gain": 0.5})), root)
    again = collect.collect(_config(num_trajectories=8, trajectories_per_shard=4), root)
    assert again["num_episodes"] == 8


def test_keep_all_collects_reward_labelled_trials_on_a_test_task(tmp_path):
    """keep="all": each slot keeps its first attempt, failures included, with the task's
    rewards; the rule is in the metadata and the data equals the successes' first tries."""
    config = _config(env_ids=("parrot/PickUpCan-v0",), mix=(1.0,), num_trajectories=8,
                     trajectories_per_shard=4, keep="all", noise=0.6)
    metadata = collect.collect(config, str(tmp_path / "all"))
    ds = load_dataset(str(tmp_path / "all"), verify="full")
    assert ds.num_episodes == 8 and metadata["collection"]["keep"] == "all"
    assert metadata["attempts"] == 8 and metadata["acceptance_rate"] == 1.0
    succeeded = [ds.episode(i)["rewards"].max() == 1.0 for i in range(8)]
    assert 0 < sum(succeeded) < 8, succeeded  # both kinds were kept
    # slot i's episode is attempt 0 of that slot, whatever its outcome
    seeds = [collect.attempt_seeds(0, k, i, 0)[0] for k in range(2) for i in range(4)]
    assert ds.episode_seeds.tolist() == seeds
    with pytest.raises(ValueError, match=r"keep='failures'; expected one of \('successes', "
                                         r"'all'\)"):
        collect.settings_from_config(_config(keep="failures"))


def test_bad_settings():
    with pytest.raises(ValueError, match="perturb=-0.1; expected a probability"):
        collect.settings_from_config(_config(perturb=-0.1))
    with pytest.raises(ValueError, match="approach='sideways'"):
        collect.settings_from_config(_config(policy_kwargs='{"approach": "sideways"}'))
    with pytest.raises(ValueError, match=r"policy_kwargs='\{gain: 1\}' is not JSON"):
        collect.settings_from_config(_config(policy_kwargs="{gain: 1}"))
    with pytest.raises(ValueError, match=r"policy_kwargs=\[1\]; expected a JSON object"):
        collect.settings_from_config(_config(policy_kwargs="[1]"))
    with pytest.raises(ValueError, match="policy_kwargs sets 'noise'"):
        collect.settings_from_config(_config(policy_kwargs=json.dumps({"noise": 0.2})))
    with pytest.raises(ValueError, match=r"unknown scripted policy fields \['speed'\]"):
        collect.settings_from_config(_config(policy_kwargs=json.dumps({"speed": 2})))
    with pytest.raises(ValueError, match="gain=2.0; expected a share in"):
        collect.settings_from_config(_config(policy_kwargs=json.dumps({"gain": 2.0})))
    with pytest.raises(ValueError, match="unknown \\['parrot/Nope-v0'\\]; valid ids are"):
        collect.settings_from_config(_config(env_ids=("parrot/Nope-v0",), mix=(1.0,)))
    with pytest.raises(ValueError, match="mix \\[0.5\\] must give"):
        collect.settings_from_config(_config(mix=(0.5,)))
    with pytest.raises(ValueError, match="unknown collect config variant 'huge'"):
        collect_config.get_config("huge")
    with pytest.raises(ValueError, match="unknown collect config variant 'huge' in 'tiny,huge'"):
        collect_config.get_config("tiny,huge")


def test_training_set_variants_collect_their_tasks():
    from parrot_jax.envs import TRAINING_SETS

    for name, ids in TRAINING_SETS.items():
        config = collect_config.get_config(f"{name},tiny")
        assert tuple(config.env_ids) == ids and config.num_trajectories == 24
        assert tuple(collect_config.get_config(name).env_ids) == ids
        assert collect_config.get_config(name).num_trajectories == 50_000
        assert tuple(collect.settings_from_config(config).env_ids) == ids  # valid ids
    assert tuple(collect_config.get_config("").env_ids) == TRAINING_SETS["library"]
    with pytest.raises(ValueError, match=r"training sets \['recoloured', 'container_colours'\] together in"):
        collect_config.get_config("recoloured,container_colours")


@pytest.mark.fault
def test_killed_collection_resumes_to_the_same_data(tmp_path):
    """SIGKILL the collector mid-collection, leave a stale partial shard, rerun: the
    result equals an uninterrupted collection (which here also uses another worker
    count, so the data does not depend on it either)."""
    killed, clean = str(tmp_path / "killed"), str(tmp_path / "clean")
    cmd = [sys.executable, "-m", "experiments.collect_data",
           "--config=experiments/configs/collect.py:tiny", "--config.num_trajectories=16",
           "--config.trajectories_per_shard=2", "--config.progress=False"]
    proc = subprocess.Popen(cmd + ["--config.num_workers=2", f"--workdir={killed}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not fmt.list_shards(killed) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(3.0)  # orphaned workers notice and stop after their current episode...
    done = len(fmt.list_shards(killed))
    assert 1 <= done < 8, f"kill landed after {done} of 8 shards"
    time.sleep(3.0)  # ...and write nothing more (a tiny shard takes about a second)
    assert len(fmt.list_shards(killed)) == done, "orphaned workers went on collecting"
    os.makedirs(os.path.join(killed, fmt.SHARDS, ".tmp-shard-000007-stale"))
    for workdir, workers in ((killed, 2), (clean, 1)):
        run = subprocess.run(cmd + [f"--config.num_workers={workers}", f"--workdir={workdir}"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(os.listdir(os.path.join(killed, fmt.SHARDS))) == [
        fmt.shard_name(k) for k in range(8)]
    resumed = load_dataset(killed, verify="full")
    assert resumed.num_episodes == 16
    _assert_same_data(resumed, load_dataset(clean, verify="full"))
    meta = json.load(open(os.path.join(killed, fmt.METADATA)))
    assert meta["complete"] and meta["num_episodes"] == 16


def test_merge_concatenates_and_refuses_overlap(small, tmp_path):
    root, _ = small
    other = str(tmp_path / "other")
    collect.collect(_config(num_trajectories=2, trajectories_per_shard=2, seed=5), other)
    out = str(tmp_path / "merged")
    metadata = merge.merge_datasets([root, other], out)
    merged, a, b = load_dataset(out, verify="full"), load_dataset(root), load_dataset(other)
    assert metadata["num_episodes"] == 8 and metadata["seeds"] == [0, 5]
    assert metadata["per_task"]["parrot/GraspTrain-v0"]["episodes"] == 4
    np.testing.assert_array_equal(merged.actions, np.concatenate([a.actions, b.actions]))
    np.testing.assert_array_equal(merged.object_offsets,
                                  np.concatenate([a.object_offsets, b.object_offsets]))
    np.testing.assert_array_equal(merged.observations[-1], b.observations[-1])
    with pytest.raises(ValueError, match="exists and is not empty"):
        merge.merge_datasets([root, other], out)
    with pytest.raises(fmt.DatasetError, match="both collected with seed 0"):
        merge.merge_datasets([root, root], str(tmp_path / "twice"))
