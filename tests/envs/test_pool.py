"""Tests for parrot_jax.envs.pool.EnvPool against small pure-numpy envs."""

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from multiprocessing import forkserver as mp_forkserver

import gymnasium as gym
import numpy as np
import pytest

from parrot_jax.envs import pool as pool_lib
from parrot_jax.envs.pool import EnvPool, EnvPoolError

CTX = "fork"  # the test process runs no threads, so fork is safe here and starts fastest


class DummyEnv(gym.Env):
    """Deterministic stand-in for our PyBullet envs: same spaces, 25-step horizon,
    randomness only from ``self.np_random``, a little CPU work per step."""

    metadata = {"render_modes": []}

    def __init__(self, horizon=25, work_s=1e-4):
        self.observation_space = gym.spaces.Box(0, 255, (48, 48, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
        self.horizon, self.work_s = horizon, work_s

    def _obs(self):
        img = self.np_random.integers(0, 64, (48, 48, 3), dtype=np.uint8)
        img[: 16 * 3] += (100 * (1.0 + self._pos)).astype(np.uint8).repeat(16)[:, None, None]
        return img

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        self._pos = self.np_random.uniform(-1, 1, 3)
        self._goal = self.np_random.uniform(-1, 1, 3)
        return self._obs(), {"success": False, "dist": float(np.linalg.norm(self._pos - self._goal))}

    def step(self, action):
        end = time.perf_counter() + self.work_s
        while time.perf_counter() < end:  # stand-in for physics
            pass
        self._t += 1
        self._pos = np.clip(self._pos + 0.2 * action[:3] + 0.05 * self.np_random.normal(size=3), -1, 1)
        dist = float(np.linalg.norm(self._pos - self._goal))
        success = dist < 0.4
        terminated = bool(success or self.np_random.random() < 0.03)
        truncated = self._t >= self.horizon and not terminated
        info = {"success": success, "dist": dist, "pos": self._pos.copy(), "t": self._t}
        return self._obs(), float(success) - 0.1 * dist, terminated, truncated, info


class CrashEnv(DummyEnv):
    """DummyEnv that misbehaves at step ``at_step`` (only if reset with ``only_seed``)."""

    def __init__(self, mode="raise", at_step=3, only_seed=None, **kw):
        super().__init__(**kw)
        self.mode, self.at_step, self.only_seed, self._armed = mode, at_step, only_seed, False

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._armed = self.only_seed is None or seed == self.only_seed
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self._armed and self._t + 1 == self.at_step:
            if self.mode == "raise":
                raise ValueError("boom: simulated env failure")
            if self.mode == "exit":
                os._exit(3)
            if self.mode == "hang":
                time.sleep(3600)
        return super().step(action)


class SlowInitEnv(DummyEnv):
    """DummyEnv whose creation takes ``delay`` s (a starved worker's imports and setup)."""

    def __init__(self, delay=1.5):
        time.sleep(delay)
        super().__init__()


class BadInitEnv(DummyEnv):
    def __init__(self):
        raise OSError("cannot load URDF")


gym.register("parrot_test/Dummy-v0", entry_point="tests.envs.test_pool:DummyEnv")
gym.register("parrot_test/Crash-v0", entry_point="tests.envs.test_pool:CrashEnv")


@contextlib.contextmanager
def deadline(seconds):
    """Fail (instead of hanging) if the block takes longer than ``seconds``."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def action_sequence(num_steps, num_envs, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (num_steps, num_envs, 7)).astype(np.float32)


def sequential_rollout(make_env, seed, actions):
    """Reference: one env, reset(seed) then plain reset() after every episode end."""
    env = make_env()
    obs, _ = env.reset(seed=seed)
    steps = []
    for a in actions:
        next_obs, r, term, trunc, info = env.step(a)
        final = next_obs
        if term or trunc:
            next_obs, _ = env.reset()
        steps.append((next_obs, r, term, trunc, info, final))
    env.close()
    return obs, steps


@pytest.mark.parametrize("num_envs,num_workers", [(4, 2), (5, 2), (3, 3), (3, 1)])
def test_pool_matches_sequential_envs(num_envs, num_workers):
    seed, actions = 123, action_sequence(70, num_envs)
    with deadline(30), EnvPool(DummyEnv, num_envs, num_workers, context=CTX) as pool:
        assert pool.num_workers == num_workers
        obs0, _ = pool.reset(seed=seed)
        results = [pool.step(a) for a in actions]
    for i in range(num_envs):
        ref_obs0, ref = sequential_rollout(DummyEnv, seed + i, actions[:, i])
        np.testing.assert_array_equal(obs0[i], ref_obs0)
        for (obs, rew, term, trunc, infos), (r_obs, r_rew, r_term, r_trunc, r_info, r_final) in zip(
                results, ref):
            np.testing.assert_array_equal(obs[i], r_obs)
            np.testing.assert_array_equal(infos["final_obs"][i], r_final)
            assert (rew[i], term[i], trunc[i]) == (r_rew, r_term, r_trunc)
            assert infos["_final_obs"][i] == (r_term or r_trunc)
            assert (infos["reset_info"][i] is not None) == (r_term or r_trunc)
            for key, value in r_info.items():
                np.testing.assert_array_equal(infos[key][i], value)
    terms = np.array([r[2] for r in results])
    truncs = np.array([r[3] for r in results])
    assert terms.sum() >= 2 and truncs.sum() >= 2  # several autoresets of both kinds


def test_final_obs_is_next_obs_and_step_info_not_shadowed():
    with deadline(30), EnvPool("parrot_test/Dummy-v0", 2, 2, seed=7, context=CTX) as pool:
        obs, _ = pool.reset()
        for a in action_sequence(30, 2):
            new_obs, _, term, trunc, infos = pool.step(a)
            done = term | trunc
            assert infos["final_obs"].shape == obs.shape and infos["final_obs"].dtype == np.uint8
            np.testing.assert_array_equal(infos["final_obs"][~done], new_obs[~done])
            assert (infos["t"][done] > 0).all()  # step info of the last step, not the reset info
            assert set(infos) >= {"success", "dist", "pos", "t", "final_obs", "_final_obs", "reset_info"}
            assert infos["pos"].shape == (2, 3) and infos["success"].dtype == bool
            obs = new_obs
        assert pool.env_ids == ["parrot_test/Dummy-v0"] * 2


def test_seeding_rules():
    with deadline(30), EnvPool(DummyEnv, 3, 2, seed=11, context=CTX) as pool:
        first, _ = pool.reset()  # constructor seed
        again, _ = pool.reset(seed=11)
        listed, _ = pool.reset(seed=[11, 12, 13])
        unseeded, _ = pool.reset()  # continues the RNGs
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, listed)
    assert not np.array_equal(first, unseeded)
    assert not np.array_equal(first[0], first[1])


def test_bad_actions_raise_value_error_and_pool_stays_usable():
    with deadline(30), EnvPool(DummyEnv, 2, 2, context=CTX) as pool:
        with pytest.raises(RuntimeError, match="before reset"):
            pool.step(np.zeros((2, 7), np.float32))
        pool.reset(seed=0)
        with pytest.raises(ValueError, match=r"shape \(2, 7\).*got \(3, 7\)"):
            pool.step(np.zeros((3, 7), np.float32))
        with pytest.raises(ValueError, match=r"got \(7,\)"):
            pool.step(np.zeros(7, np.float32))
        with pytest.raises(ValueError, match="dtype int64"):
            pool.step(np.zeros((2, 7), np.int64))
        bad = np.zeros((2, 7), np.float32)
        bad[1, 4] = np.nan
        with pytest.raises(ValueError, match=r"NaN or inf for envs \[1\]"):
            pool.step(bad)
        obs, rew, *_ = pool.step(np.zeros((2, 7), np.float64))
        assert obs.shape == (2, 48, 48, 3) and rew.dtype == np.float64


def _crashing_fns(mode):
    return [DummyEnv] * 3 + [functools.partial(CrashEnv, mode=mode, at_step=3)]


def _assert_closes_promptly(pool):
    start = time.monotonic()
    pool.close()
    assert time.monotonic() - start < 5
    assert not any(p.is_alive() for p in pool._procs)


@pytest.mark.fault
def test_worker_exception_names_worker_and_env():
    with deadline(30):
        pool = EnvPool(_crashing_fns("raise"), num_workers=2, context=CTX)
        pool.reset(seed=0)
        with pytest.raises(EnvPoolError) as info:
            for a in action_sequence(5, 4):
                pool.step(a)
        msg = str(info.value)
        assert "worker 1" in msg and "env 3 ('CrashEnv')" in msg
        assert "ValueError: boom: simulated env failure" in msg and "Traceback" in msg
        assert (info.value.worker, info.value.env_index, info.value.exitcode) == (1, 3, None)
        assert isinstance(info.value.__cause__, ValueError)
        with pytest.raises(EnvPoolError, match="unusable"):
            pool.step(np.zeros((4, 7), np.float32))
        _assert_closes_promptly(pool)


def test_registered_id_error_names_env_id():
    with deadline(30):
        pool = EnvPool("parrot_test/Crash-v0", 4, 2, env_kwargs={"only_seed": 2}, context=CTX)
        pool.reset(seed=0)  # env 2 gets seed 2 and crashes
        with pytest.raises(EnvPoolError, match=r"worker 1: env 2 \('parrot_test/Crash-v0'\) raised"):
            for a in action_sequence(5, 4):
                pool.step(a)
        _assert_closes_promptly(pool)


def test_env_construction_error_raises_from_constructor():
    with deadline(30), pytest.raises(EnvPoolError, match=r"worker 1: env 1 .*OSError: cannot load URDF"):
        EnvPool([DummyEnv, BadInitEnv], num_workers=2, context=CTX)


@pytest.mark.fault
@pytest.mark.parametrize("how", ["os._exit", "SIGKILL"])
def test_dead_worker_raises_with_exit_code(how):
    with deadline(30):
        fns = _crashing_fns("exit") if how == "os._exit" else [DummyEnv] * 4
        pool = EnvPool(fns, num_workers=2, context=CTX, timeout=None)  # death needs no timeout
        pool.reset(seed=0)
        if how == "SIGKILL":
            os.kill(pool._procs[1].pid, signal.SIGKILL)
        with pytest.raises(EnvPoolError) as info:
            for a in action_sequence(5, 4):
                pool.step(a)
        expected = "exit code 3" if how == "os._exit" else r"exit code -9 \(killed by SIGKILL\)"
        assert info.match(rf"worker 1 \(envs 2\.\.3, env id '\w+'\) died during step with {expected}")
        assert info.value.worker == 1 and info.value.exitcode == (3 if how == "os._exit" else -9)
        _assert_closes_promptly(pool)


@pytest.mark.fault
def test_hung_worker_times_out():
    with deadline(30):
        pool = EnvPool(_crashing_fns("hang"), num_workers=2, context=CTX, timeout=1.0)
        pool.reset(seed=0)
        start = time.monotonic()
        with pytest.raises(EnvPoolError, match=r"worker\(s\) \[1\].*did not answer step within 1.0 s"):
            for a in action_sequence(5, 4):
                pool.step(a)
        assert time.monotonic() - start < 3
        _assert_closes_promptly(pool)


@pytest.mark.fault
def test_slow_start_has_its_own_timeout():
    # Creation slower than the step timeout is waited for; past start_timeout it is hung.
    with deadline(30):
        with EnvPool([DummyEnv, SlowInitEnv], num_workers=2, context=CTX, timeout=0.5,
                     start_timeout=20) as pool:
            pool.reset(seed=0)
            obs, *_ = pool.step(np.zeros((2, 7)))
            assert obs.shape == (2, 48, 48, 3)
        with pytest.raises(EnvPoolError, match=r"worker\(s\) \[1\].*did not answer env creation "
                           r"within 0.5 s"):
            EnvPool([DummyEnv, SlowInitEnv], num_workers=2, context=CTX, start_timeout=0.5)


class OtherSpaceEnv(DummyEnv):
    def __init__(self):
        super().__init__()
        self.observation_space = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)


def test_mismatched_spaces_rejected():
    with deadline(30), pytest.raises(ValueError, match="same spaces"):
        EnvPool([DummyEnv, OtherSpaceEnv], num_workers=2, context=CTX)


@pytest.mark.parametrize("factory", [lambda: DummyEnv(horizon=25),  # must survive cloudpickle
                                     functools.partial(gym.make, "parrot_test/Dummy-v0")])
def test_default_forkserver_context(factory):
    with deadline(30), EnvPool(factory, 2, 2, seed=3) as pool:
        obs, _ = pool.reset()
        obs2, *_ = pool.step(np.zeros((2, 7), np.float32))
    ref_obs, ref = sequential_rollout(DummyEnv, 3, np.zeros((1, 7), np.float32))
    np.testing.assert_array_equal(obs[0], ref_obs)
    np.testing.assert_array_equal(obs2[0], ref[0][0])


def test_parrot_env_pool_matches_sequential_envs():
    """The real PyBullet env in the pool: bitwise the same episodes as sequential envs."""
    import parrot_jax.envs  # noqa: F401  (registers the ids)

    env_id, n, steps = "parrot/PickPlaceTrain-v0", 2, 12
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, n, 7)).astype(np.float32)
    with EnvPool(env_id, num_envs=n, num_workers=2, context="forkserver",
                 env_kwargs={"horizon": 5}) as pool:
        obs, _ = pool.reset(seed=20)
        pooled = [(obs.copy(), None, None, None)]
        for a in actions:
            obs, rew, term, trunc, infos = pool.step(a)
            pooled.append((infos["final_obs"].copy(), rew, trunc, obs.copy()))
    for i in range(n):
        env = gym.make(env_id, horizon=5)
        obs, _ = env.reset(seed=20 + i)
        np.testing.assert_array_equal(pooled[0][0][i], obs)
        for t, a in enumerate(actions):
            obs, rew, term, trunc, _ = env.step(a[i])
            np.testing.assert_array_equal(pooled[t + 1][0][i], obs)
            assert pooled[t + 1][1][i] == rew and pooled[t + 1][2][i] == trunc
            if term or trunc:
                obs, _ = env.reset()
            np.testing.assert_array_equal(pooled[t + 1][3][i], obs)  # autoreset obs too
        env.close()


@pytest.mark.parametrize("env, expected", [
    # a library's env (our binaries'): the workers do not run the main module, and the
    # server imports only what they use (JAX is not mapped in it)
    ("library", {"server_has_jax": [False, False], "main": ["__main__", "__main__"]}),
    # an env defined in the main module: each worker runs it again (as __mp_main__; its
    # flags defined once), the server having imported the main's imports (JAX) once
    ("main", {"server_has_jax": [True, True], "main": ["__mp_main__", "__mp_main__"]}),
])
def test_workers_of_a_python_m_main_import_only_what_they_need(env, expected):
    """A worker runs the main module again unless told not to; from a ``python -m`` binary
    that used to import JAX anew in every worker of every pool (2.4 s a pool on a 2-core
    VM)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-m", "tests.envs.forkserver_main", env], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_the_server_preloads_the_env_module_and_what_its_envs_import_later(monkeypatch):
    """``parrot_jax.envs.manipulation`` builds its meshes' hulls with scipy at the first
    reset (0.2 s a worker); the pool's forkserver imports it once for all of them."""
    import parrot_jax.envs  # noqa: F401  (registers the ids)

    server = mp_forkserver._forkserver  # the process's one server; its list is restored after
    monkeypatch.setattr(server, "_preload_modules", list(server._preload_modules))
    with EnvPool("parrot/PickUpCan-v0", 1, 1, env_kwargs={"horizon": 2}) as pool:
        pool.reset(seed=0)
    assert server._preload_modules[-3:] == ["parrot_jax.envs.pool",
                                            "parrot_jax.envs.manipulation", "scipy.spatial"]
    assert pool_lib._worker_imports("tests.envs.probe_env") == ()  # says nothing
    assert pool_lib._worker_imports("no_such_module_here") == ()  # the worker will say
