"""Fault injection: kill, hang, tear, fill the disk, interrupt; nothing is lost.

Each scenario injects one fault into a real run and asserts its outcome: either a clear
error naming what failed, or a resume that ends exactly where an uninterrupted run ends
(bitwise on CPU), never a hang or a silent loss. Scenarios tested elsewhere carry the
``fault`` mark too (``pytest -m fault`` runs them all; the README counts them).
"""

import errno
import functools
import glob
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from experiments import jobs
from experiments.configs import collect as collect_config, prior as prior_config, rl
from parrot_jax import metrics
from parrot_jax.agents import train as rl_train
from parrot_jax.data import collect, format as fmt, replay_log
from parrot_jax.data.dataset import load_dataset
from parrot_jax.data.synthetic import write_synthetic_dataset
from parrot_jax.envs.pool import EnvPool, EnvPoolError
from parrot_jax.flows import train as prior_train

pytestmark = [pytest.mark.fault, pytest.mark.timeout(900)]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rows(workdir):
    return metrics.read_jsonl(os.path.join(workdir, metrics.JSONL))


def _same_rows(a, b):
    """Metric rows equal but for wall-clock times and rates."""
    def strip(rows):
        return [{k: v for k, v in r.items() if k != "time" and not k.startswith("perf/env")
                 and k != "train/steps_per_sec"} for r in rows]
    assert strip(_rows(a)) == strip(_rows(b))


def _same_tree(a, b):
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, a),
                 jax.tree.map(np.asarray, b))


def _wait_for(predicate, what, proc=None, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc is None or proc.poll() is None, f"exited before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --- the prior trainer ----------------------------------------------------------------------

def _prior_config(dataset, **overrides):
    config = prior_config.get_config("tiny")
    config.update({"dataset": dataset, "num_steps": 40, "log_every": 5, "eval_every": 20,
                   "checkpoint_every": 5, **overrides})
    return config


@pytest.fixture(scope="module")
def prior_data(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("prior_data"))
    write_synthetic_dataset(path, num_episodes=40, episodes_per_shard=20)
    return path


@pytest.fixture(scope="module")
def prior_run(prior_data, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("prior_full"))
    return workdir, prior_train.train_and_evaluate(_prior_config(prior_data), workdir)


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_of_the_prior_trainer_then_rerun_is_bit_identical(prior_data, prior_run,
                                                                  tmp_path, seed):
    workdir = str(tmp_path / "run")
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.train_prior",
         "--config=experiments/configs/prior.py:tiny", f"--config.dataset={prior_data}",
         "--config.num_steps=40", "--config.log_every=5", "--config.eval_every=20",
         "--config.checkpoint_every=5", f"--workdir={workdir}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: os.path.exists(os.path.join(workdir, metrics.JSONL))
                  and any(r["step"] >= 5 for r in _rows(workdir)), "the first log", proc)
        time.sleep(np.random.default_rng(seed).uniform(0.0, 0.5))
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"
    state = prior_train.train_and_evaluate(_prior_config(prior_data), workdir)
    _same_tree(state.params, prior_run[1].params)
    _same_tree(state.opt_state, prior_run[1].opt_state)
    _same_rows(workdir, prior_run[0])


def test_a_torn_prior_checkpoint_falls_back_to_the_one_before(prior_data, prior_run,
                                                             tmp_path, caplog):
    workdir = str(tmp_path / "run")
    prior_train.train_and_evaluate(_prior_config(prior_data, num_steps=20), workdir)
    torn = [p for p in glob.glob(os.path.join(workdir, "checkpoints", "20", "state", "**"),
                                 recursive=True) if os.path.isfile(p)]
    for path in torn:  # cut every file of the newest checkpoint's state in half
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    state = prior_train.train_and_evaluate(_prior_config(prior_data), workdir)
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "20.corrupt"))
    assert any(os.path.join("checkpoints", "20") in r.getMessage() for r in caplog.records
               if r.levelname == "WARNING")
    _same_tree(state.params, prior_run[1].params)


# --- the RL trainer and its env workers -----------------------------------------------------

def _rl_config(**overrides):
    config = rl.get_config("tiny")
    config.agent = "sac"
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def rl_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("rl_full"))
    return workdir, rl_train.train(_rl_config(), workdir)


class _RecordedPools:
    """Replaces the trainer's ``EnvPool`` with one that records its instances (to reach
    their worker processes) and answers within ``timeout`` s."""

    def __init__(self, monkeypatch, timeout=60.0):
        self.pools: list[EnvPool] = []
        recorded = self

        class Pool(EnvPool):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **{**kwargs, "timeout": timeout})
                recorded.pools.append(self)

        monkeypatch.setattr(rl_train, "EnvPool", Pool)

    def worker_pid(self) -> int:
        return self.pools[0]._procs[0].pid


def _after_first_update(workdir, seed, action):
    """Runs ``action()`` in a thread at a seeded moment after the first logged update."""
    def wait_then_act():
        jsonl = os.path.join(workdir, metrics.JSONL)
        _wait_for(lambda: os.path.exists(jsonl)
                  and any("train/critic_loss" in r for r in _rows(workdir)), "an update")
        time.sleep(np.random.default_rng(seed).uniform(0.0, 1.0))
        action()

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_of_an_env_worker_is_named_and_the_rerun_is_exact(rl_run, tmp_path,
                                                                  monkeypatch, seed):
    workdir = str(tmp_path / "run")
    pools = _RecordedPools(monkeypatch)
    thread = _after_first_update(workdir, seed,
                                 lambda: os.kill(pools.worker_pid(), signal.SIGKILL))
    with pytest.raises(EnvPoolError, match=r"worker 0 .*exit code -9"):
        rl_train.train(_rl_config(), workdir)
    thread.join()
    monkeypatch.undo()
    result = rl_train.train(_rl_config(), workdir)
    assert result.env_steps == 120
    _same_tree(result.params, rl_run[1].params)
    _same_rows(workdir, rl_run[0])


def test_a_hung_env_worker_times_out_and_the_rerun_is_exact(rl_run, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    pools = _RecordedPools(monkeypatch, timeout=3.0)
    stopped = []

    def hang():
        stopped.append(pools.worker_pid())
        os.kill(stopped[0], signal.SIGSTOP)

    thread = _after_first_update(workdir, 0, hang)
    start = time.monotonic()
    try:
        with pytest.raises(EnvPoolError, match=r"did not answer .* within 3.0 s \(hung\?\)"):
            rl_train.train(_rl_config(), workdir)
    finally:
        thread.join()
        if stopped:  # a stopped process ignores SIGTERM: let the pool's kill reach it
            try:
                os.kill(stopped[0], signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert time.monotonic() - start < 120
    monkeypatch.undo()
    result = rl_train.train(_rl_config(), workdir)
    _same_tree(result.params, rl_run[1].params)


def test_a_full_disk_at_a_replay_commit_loses_nothing(rl_run, tmp_path, monkeypatch):
    """ENOSPC while the replay of env step 120 is written: the error reaches the user, no
    checkpoint claims a replay that is not on disk, and the rerun (space freed) is exact."""
    workdir = str(tmp_path / "run")
    write = replay_log.atomic_write_bytes
    calls = []

    def fail_second(path, data):
        calls.append(path)
        if len(calls) == 3:  # steps 0 and 60 written, 120 fails
            raise OSError(errno.ENOSPC, "No space left on device", path)
        write(path, data)

    monkeypatch.setattr(replay_log, "atomic_write_bytes", fail_second)
    with pytest.raises(OSError, match="No space left on device"):
        rl_train.train(_rl_config(), workdir)
    monkeypatch.undo()
    assert max(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints"))
               if s.isdigit()) == 60
    assert not [n for n in os.listdir(os.path.join(workdir, rl_train.REPLAY_DIRECTORY))
                if "120" in n]
    result = rl_train.train(_rl_config(), workdir)
    _same_tree(result.params, rl_run[1].params)
    _same_rows(workdir, rl_run[0])


# --- collection -----------------------------------------------------------------------------

def _collect_config(**overrides):
    config = collect_config.get_config("tiny")
    config.update({"num_trajectories": 16, "trajectories_per_shard": 2, "progress": False,
                   "num_workers": 1, **overrides})
    return config


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("collect_full"))
    collect.collect(_collect_config(), workdir)
    return load_dataset(workdir, verify="full")


def _same_data(a, b):
    for key in ("actions", "rewards", "episode_lengths", "episode_tasks", "episode_seeds"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    np.testing.assert_array_equal(np.asarray(a.observations), np.asarray(b.observations))


def test_a_full_disk_while_writing_a_shard_loses_nothing(collected, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    save = np.save

    def fail_on_shard_2(f, *args, **kwargs):
        if fmt.shard_name(2) in getattr(f, "name", ""):
            raise OSError(errno.ENOSPC, "No space left on device", f.name)
        return save(f, *args, **kwargs)

    monkeypatch.setattr(fmt.np, "save", fail_on_shard_2)
    with pytest.raises(OSError, match="No space left on device"):
        collect.collect(_collect_config(), workdir)
    monkeypatch.undo()
    names = os.listdir(os.path.join(workdir, fmt.SHARDS))
    assert fmt.shard_name(2) not in names and not [n for n in names if n.startswith(".tmp")]
    collect.collect(_collect_config(), workdir)
    _same_data(load_dataset(workdir, verify="full"), collected)


def _grandchildren(pid: int) -> list[int]:
    """Processes two levels below ``pid`` (the collector's workers, forked by its
    forkserver)."""
    import psutil
    return [g.pid for c in psutil.Process(pid).children() for g in c.children()]


@pytest.mark.parametrize("seed", [0])
def test_sigkill_of_a_collection_worker_is_named_and_the_rerun_is_exact(collected, tmp_path,
                                                                        monkeypatch, seed):
    workdir = str(tmp_path / "run")
    killed = []

    def kill_a_worker():  # at a seeded moment after the first of 8 shards is on disk
        _wait_for(lambda: len(_grandchildren(os.getpid())) >= 2
                  and fmt.list_shards(workdir), "the workers' first shard")
        time.sleep(np.random.default_rng(seed).uniform(0.0, 0.3))
        killed.append(_grandchildren(os.getpid())[0])
        os.kill(killed[0], signal.SIGKILL)

    thread = threading.Thread(target=kill_a_worker, daemon=True)
    thread.start()
    with pytest.raises(RuntimeError, match=r"collection worker collect-\d died with exit "
                                           r"code -9"):
        collect.collect(_collect_config(num_workers=2), workdir)
    thread.join()
    collect.collect(_collect_config(num_workers=2), workdir)
    _same_data(load_dataset(workdir, verify="full"), collected)


# --- the sweep ------------------------------------------------------------------------------

def test_ctrl_c_during_a_sweep_stops_its_jobs_and_the_rerun_finishes(tmp_path):
    workdir = str(tmp_path)
    cmd = [sys.executable, "-m", "experiments.sweep",
           "--config=experiments/configs/paper.py:fig4,tiny", f"--workdir={workdir}",
           "--processes=1", "--aggregate=false",
           # 400 prior steps, checkpointed at 200: the interrupt lands seconds before the
           # prior ends (the tiny config's 20 steps sometimes ended before the signal did)
           "--config.prior.num_steps=400", "--config.prior.checkpoint_every=200"]
    # A shell's background job starts with SIGINT ignored, and Python keeps it ignored:
    # give the sweep the default disposition, as a terminal does.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:  # interrupt the prior job once it has saved a checkpoint
        _wait_for(lambda: glob.glob(os.path.join(workdir, "priors", "*", "checkpoints", "*")),
                  "a prior checkpoint", proc)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == 130, out[-3000:]
    assert "interrupted; rerun the same command to resume" in out
    prior = [j for j in os.listdir(os.path.join(workdir, "priors"))][0]
    assert not os.path.exists(jobs.done_path(workdir, f"priors/{prior}"))
    with jobs.job_lock(workdir, f"priors/{prior}"):  # released by the interrupted child
        pass
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "2 jobs ran, 1 were done before, 0 failed, 0 blocked" in rerun.stdout
