"""EnvPool: step a batch of gymnasium envs in worker processes.

``EnvPool(env, num_envs, num_workers)`` spreads ``num_envs`` envs over ``num_workers``
processes in contiguous blocks (a worker steps its envs one after another). Observations go
through shared memory, the rest through pipes. Spaces must be ``Box`` (ours: obs
``(48, 48, 3) uint8``, action ``(7,) float32``).

Autoreset (same step): when env ``i`` ends an episode, its worker resets it at once, and
``obs, reward, terminated, truncated, infos = pool.step(actions)`` gives

* ``obs[i]``: the first observation of the next episode (act on it next);
* ``infos["final_obs"][i]``: the observation the action led to. For envs that did not
  finish it equals ``obs[i]``, so ``infos["final_obs"]`` is *always* the ``next_obs`` of the
  transition ``(prev_obs, action, reward, infos["final_obs"], terminated)``; no transition
  crosses an episode boundary. Bootstrap with ``1 - terminated`` (a ``truncated`` time
  limit is not terminal). ``infos["_final_obs"]`` is ``terminated | truncated``;
* any other key: the env's info of *this step*, e.g. ``infos["success"][i]`` is the success
  at the last step of a finished episode (unlike gymnasium's ``SAME_STEP`` there is no
  ``final_info``: the reset info never shadows it). The reset info of an autoreset env is in
  ``infos["reset_info"][i]`` (``None`` for the others).

Info values are stacked into arrays of leading size ``num_envs`` (object arrays if a key is
missing in some env or shapes differ); ``final_obs``, ``_final_obs``, ``reset_info`` are
reserved. Seeding: ``reset(seed=s)`` seeds env ``i`` with ``s + i``; autoresets call
``env.reset()`` without a seed, so env ``i`` replays a single env reset with ``s + i`` and
then plain ``reset()`` after each episode, bit for bit.

Failures never hang. An exception in an env becomes ``EnvPoolError`` naming the worker, the
env index and id, with the original exception text and traceback. A worker that dies
(segfault, ``os._exit``, SIGKILL) is noticed at once through its process sentinel and
reported with its exit code; one that does not answer within ``timeout`` s
(``start_timeout`` s for starting and building its envs, which on a loaded machine takes
longer than a step) is reported as hung. The pool is then unusable and ``close()`` (or
leaving ``with``) ends the workers.

Start methods: ``"forkserver"`` (default) is safe with threads in the parent (JAX) and
starts workers in ~0.2 s for the first pool, ~15 ms after. ``"fork"`` (~15 ms) must not be
used once JAX or a PyBullet client runs in the parent (it copies locks and connections).
``"spawn"``: ~0.5 s. Factories are sent with cloudpickle (lambdas and ``__main__`` classes
work; other classes are imported by module name in the workers). The forkserver preloads
the env modules, so these must not connect to PyBullet at import time. Workers do not run
the main module again unless a factory comes from it (``parrot_jax.forkserver``: a worker
that ran a binary's main imported JAX and the rest, and a pool took 2.4 s to start; the
server then preloads the main's imports instead).
Not thread-safe: use a pool from one thread.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import multiprocessing as mp
import os
import pickle
import selectors
import signal
import time
import traceback
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any, Callable, Sequence

import cloudpickle
import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from parrot_jax import forkserver

EnvFactory = Callable[[], gym.Env]


class EnvPoolError(RuntimeError):
    """A worker raised, died or hung; ``worker``, ``env_index``, ``env_id`` and ``exitcode``
    (``None`` unless the process died) say which."""

    def __init__(self, msg, worker=None, env_index=None, env_id=None, exitcode=None):
        super().__init__(msg)
        self.worker, self.env_index, self.env_id, self.exitcode = worker, env_index, env_id, exitcode


def _origin(fn) -> tuple[str, str | None]:
    """(name, defining module) of the env behind a factory, for messages and preloading."""
    while isinstance(fn, functools.partial):
        if fn.func is gym.make and fn.args:  # an EnvSpec (env id given to EnvPool) or an id
            try:
                spec = fn.args[0] if hasattr(fn.args[0], "entry_point") else gym.spec(fn.args[0])
            except Exception:
                return str(fn.args[0]), None
            entry = spec.entry_point
            return spec.id, entry.split(":")[0] if isinstance(entry, str) else entry.__module__
        fn = fn.func
    return getattr(fn, "__qualname__", type(fn).__name__), getattr(fn, "__module__", None)


def _worker_imports(module: str) -> tuple[str, ...]:
    """``module.WORKER_IMPORTS``: what its envs import after construction, for the server
    to preload (nothing where the module does not say, or does not import here: the
    worker's own import then reports the error)."""
    try:
        return tuple(getattr(importlib.import_module(module), "WORKER_IMPORTS", ()))
    except Exception:
        return ()


def _object_array(values: list) -> np.ndarray:
    out = np.empty(len(values), object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _worker(env_fns: bytes, env_indices: list[int], conn, modules: tuple[str, ...] = ()) -> None:
    """Worker loop: build envs, attach the shared obs buffers, serve reset/step/close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which closes us
    envs, shm, current = [], None, None
    try:
        for module in modules:  # they register the env ids the factories make
            importlib.import_module(module)
        for current, fn in zip(env_indices, cloudpickle.loads(env_fns)):
            envs.append(fn())
        current = None
        ids = [e.spec.id if e.spec else type(e.unwrapped).__name__ for e in envs]
        conn.send(("ok", [(e.observation_space, e.action_space, i) for e, i in zip(envs, ids)]))
        cmd, data = conn.recv()
        if cmd != "shm":  # the parent gave up during construction
            return
        # Attach without registering with the resource tracker: Python < 3.13 does so on
        # attach (bpo-39959), giving spurious "leaked shared_memory" warnings and unlinks.
        register, resource_tracker.register = resource_tracker.register, lambda *a: None
        shm = SharedMemory(name=data[0])
        resource_tracker.register = register
        obs_space, act_space = envs[0].observation_space, envs[0].action_space
        bufs = np.ndarray((2, data[1], *obs_space.shape), obs_space.dtype, buffer=shm.buf)

        def put(buf, i, obs):  # buf: 0 = obs to act on, 1 = final obs
            obs = np.asarray(obs)
            if obs.shape != obs_space.shape or obs.dtype != obs_space.dtype:
                raise ValueError(f"observation {obs.shape} {obs.dtype} does not match {obs_space}")
            bufs[buf, i] = obs

        while (msg := conn.recv())[0] != "close":
            (cmd, data), out = msg, []
            if cmd == "reset":
                for current, env, (seed, options) in zip(env_indices, envs, data):
                    obs, info = env.reset(seed=seed, options=options)
                    put(0, current, obs)
                    out.append(info)
            else:  # "step": actions arrive as raw bytes
                actions = np.frombuffer(data, act_space.dtype).reshape(len(envs), *act_space.shape)
                for current, env, action in zip(env_indices, envs, actions.copy()):
                    obs, reward, term, trunc, info = env.step(action)
                    put(1, current, obs)
                    reset_info = None
                    if term or trunc:
                        obs, reset_info = env.reset()
                    put(0, current, obs)
                    out.append((float(reward), bool(term), bool(trunc), info, reset_info))
            current = None
            conn.send(("ok", out))
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone
    except Exception as exc:
        # The exception travels as bytes so that one which cannot be unpickled in the
        # parent (e.g. required constructor arguments) only loses the __cause__.
        try:
            exc_bytes = pickle.dumps(exc)
        except Exception:
            exc_bytes = None
        try:
            conn.send(("error", (current, f"{type(exc).__name__}: {exc}",
                                 traceback.format_exc(), exc_bytes)))
        except OSError:
            pass
    finally:
        for env in envs:
            try:
                env.close()
            except Exception:
                pass
        if shm is not None:
            bufs = None  # drop the view first, or close() raises BufferError
            shm.close()


class EnvPool:
    """``num_envs`` envs stepped in ``num_workers`` processes (semantics: module docstring).

    Args:
        env: a registered env id (``"parrot/PickUpCan-v0"``, or ``"module:Id"`` to import
            the registering module first), a factory ``() -> gym.Env`` called once per env,
            or a sequence of ``num_envs`` factories.
        num_envs: number of envs (optional when ``env`` is a sequence).
        num_workers: worker processes, default ``min(os.cpu_count(), num_envs)``.
        seed: seed for the first ``reset()`` that is given none.
        env_kwargs: keyword arguments for ``gym.make`` or each factory.
        context: multiprocessing start method: ``"forkserver"``, ``"fork"`` or ``"spawn"``.
        timeout: seconds to wait for a worker's answer before declaring it hung (``None``:
            forever). A dead worker is detected at once either way.
        start_timeout: the same for a worker's start and env creation (imports, PyBullet
            connections, a decoder's compilation), which a starved worker (many processes
            on few cores, ``nice``) can take minutes over.

    Attributes: ``num_envs``, ``num_workers``, ``env_ids``, ``single_observation_space``,
    ``single_action_space``, ``observation_space``, ``action_space`` (batched).
    """

    def __init__(self, env: str | EnvFactory | Sequence[EnvFactory], num_envs: int | None = None,
                 num_workers: int | None = None, seed: int | None = None,
                 env_kwargs: dict[str, Any] | None = None, context: str = "forkserver",
                 timeout: float | None = 60.0, start_timeout: float | None = 300.0):
        self._closed, self._procs, self._conns, self._shm, self._selector = False, [], [], None, None
        self._broken: str | None = None  # why the pool is unusable
        self._pending: set[int] = set()  # workers whose answer is outstanding
        self._needs_reset, self._seed, self.timeout = True, seed, timeout
        kw = env_kwargs or {}
        if isinstance(env, str):
            module, _, name = env.rpartition(":")
            if module:
                importlib.import_module(module)
            fns = [functools.partial(gym.make, gym.spec(name), **kw)] * (num_envs or 0)
        elif callable(env):
            fns = [functools.partial(env, **kw)] * (num_envs or 0)
        else:
            fns = [functools.partial(f, **kw) for f in env]
            if num_envs not in (None, len(fns)):
                raise ValueError(f"num_envs={num_envs} but {len(fns)} env factories were given")
        if not fns:
            raise ValueError("num_envs must be given and >= 1")
        self.num_envs = len(fns)
        self.num_workers = min(num_workers or os.cpu_count() or 1, self.num_envs)
        self._slices = [slice(int(b[0]), int(b[-1]) + 1)
                        for b in np.array_split(np.arange(self.num_envs), self.num_workers)]
        self.env_ids = [_origin(f)[0] for f in fns]
        try:
            # The env modules: preloaded by a forkserver this pool starts, and imported by
            # each worker before it builds its envs (one started earlier in this process,
            # by another pool, has not preloaded them).
            modules = list(dict.fromkeys(_origin(f)[1] for f in fns))
            origins = tuple(m for m in modules if m and m != "__main__")
            # A factory from the main module (or of unknown origin) may need what running
            # the main does (an env id it registers): only then do workers run it again.
            needs_main = any(m in (None, "__main__") for m in modules)
            if context == "forkserver":  # with what the env modules' envs import later
                ctx = forkserver.context(__name__, *(n for m in origins
                                                     for n in (m, *_worker_imports(m))),
                                         main=needs_main)
            else:
                ctx = mp.get_context(context)
            self._selector = selectors.DefaultSelector()  # an answer or a death wakes us up
            for w, sl in enumerate(self._slices):
                parent_conn, child_conn = ctx.Pipe()
                proc = ctx.Process(target=_worker, name=f"EnvPool-worker-{w}", daemon=True, args=(
                    cloudpickle.dumps(fns[sl]), list(range(sl.start, sl.stop)), child_conn,
                    origins))
                with contextlib.nullcontext() if needs_main else forkserver.without_main():
                    proc.start()
                child_conn.close()
                self._conns.append(parent_conn)
                self._procs.append(proc)
                self._selector.register(parent_conn, selectors.EVENT_READ, (w, True))
                self._selector.register(proc.sentinel, selectors.EVENT_READ, (w, False))
            specs = [s for answer in self._gather("env creation", start_timeout) for s in answer]
            self.env_ids = [s[2] for s in specs]
            obs_space, act_space = specs[0][:2]
            self.single_observation_space, self.single_action_space = obs_space, act_space
            if not (isinstance(obs_space, gym.spaces.Box) and isinstance(act_space, gym.spaces.Box)):
                raise ValueError(f"EnvPool needs Box spaces, got {obs_space} and {act_space}")
            if any(s[:2] != specs[0][:2] for s in specs):
                raise ValueError("all envs of an EnvPool must have the same spaces")
            self.observation_space = batch_space(obs_space, self.num_envs)
            self.action_space = batch_space(act_space, self.num_envs)
            shape = (2, self.num_envs, *obs_space.shape)  # [0]: obs to act on, [1]: final obs
            self._shm = SharedMemory(create=True, size=int(np.prod(shape)) * obs_space.dtype.itemsize)
            self._bufs = np.ndarray(shape, obs_space.dtype, buffer=self._shm.buf)
            for conn in self._conns:
                conn.send(("shm", (self._shm.name, self.num_envs)))
        except BaseException:
            self.close()
            raise

    def reset(self, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Reset all envs, env ``i`` with seed ``seed + i`` (or ``seed[i]``) and ``options``.

        Without ``seed`` the first reset uses the constructor's ``seed``; later ones continue
        each env's RNG. Returns ``(obs (num_envs, *obs_shape), infos)``.
        """
        self._check_usable()
        seed = self._seed if seed is None and self._needs_reset else seed
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        elif len(seeds := list(seed)) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        for conn, sl in zip(self._conns, self._slices):
            self._send(conn, ("reset", [(s, options) for s in seeds[sl]]))
        infos = [info for answer in self._gather("reset", self.timeout) for info in answer]
        self._needs_reset = False
        return self._bufs[0].copy(), _stack_infos(infos)

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step env ``i`` with ``actions[i]``; ``actions``: finite floats (num_envs, *action_shape).

        Returns ``(obs, reward float64, terminated bool, truncated bool, infos)``, each of
        leading size ``num_envs``, with same-step autoreset (module docstring). Raises
        ``ValueError`` for bad actions (the pool stays usable), ``EnvPoolError`` on failure.
        """
        self._check_usable()
        actions = self._check_actions(actions)
        if self._needs_reset:
            raise RuntimeError("EnvPool.step() called before reset()")
        for conn, sl in zip(self._conns, self._slices):
            self._send(conn, ("step", actions[sl].tobytes()))  # raw bytes: cheaper than pickle
        out = [r for answer in self._gather("step", self.timeout) for r in answer]
        reward, terminated, truncated, info, reset_info = zip(*out)
        terminated, truncated = np.array(terminated), np.array(truncated)
        infos = _stack_infos(list(info))
        infos.update(final_obs=self._bufs[1].copy(), _final_obs=terminated | truncated,
                     reset_info=_object_array(list(reset_info)))
        return self._bufs[0].copy(), np.array(reward, np.float64), terminated, truncated, infos

    def close(self, grace: float = 2.0) -> None:
        """End the workers: ask, then SIGTERM/SIGKILL after ``grace`` s (at once for a worker
        still busy after a failure). Idempotent; never hangs."""
        if self._closed:
            return
        self._closed = True
        for w, (conn, proc) in enumerate(zip(self._conns, self._procs)):
            if w in self._pending:  # may be hung
                proc.terminate()
            elif proc.is_alive():
                self._send(conn, ("close", None))
        deadline = time.monotonic() + grace
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            for stop in (proc.terminate, proc.kill):
                if proc.is_alive():
                    stop()
                    proc.join(1.0)
        if self._selector is not None:
            self._selector.close()
        for conn in self._conns:
            conn.close()
        if self._shm is not None:
            self._bufs = None
            self._shm.close()
            self._shm.unlink()

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self.close(grace=0.5)
            except Exception:
                pass

    def _check_actions(self, actions) -> np.ndarray:
        a = np.asarray(actions)
        expected = (self.num_envs, *self.single_action_space.shape)
        if a.shape != expected:
            raise ValueError(f"actions must have shape {expected} (num_envs, action_dim), got {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"actions must be floating point, got dtype {a.dtype}")
        if not np.isfinite(a).all():
            bad = np.flatnonzero(~np.isfinite(a).reshape(self.num_envs, -1).all(axis=1))
            raise ValueError(f"actions contain NaN or inf for envs {bad.tolist()}")
        return a.astype(self.single_action_space.dtype, copy=False)

    def _check_usable(self) -> None:
        if self._closed or self._broken:
            raise EnvPoolError("EnvPool is closed" if self._closed else
                               f"EnvPool is unusable after a failure ({self._broken}); close it")

    @staticmethod
    def _send(conn, msg) -> None:
        try:
            conn.send(msg)
        except OSError:
            pass  # a dead worker: _gather reports it with its exit code

    def _gather(self, what: str, timeout: float | None) -> list:
        """One answer per worker, in worker order, waiting at most ``timeout`` s (``None``:
        forever); ``EnvPoolError`` on error, death, timeout."""
        answers, self._pending = [None] * self.num_workers, set(range(self.num_workers))
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not (events := self._selector.select(left)):
                    hung = sorted(self._pending)
                    raise self._fail(f"EnvPool worker(s) {hung} (env ids {[self._env_id(w) for w in hung]}"
                                     f") did not answer {what} within {timeout} s (hung?)",
                                     worker=hung[0], env_id=self._env_id(hung[0]))
                for key, _ in events:
                    w, is_pipe = key.data
                    if not (is_pipe or self._conns[w].poll()):  # dead, nothing left to read
                        raise self._died(w, what)
                    try:
                        status, data = self._conns[w].recv()
                    except (EOFError, OSError):  # closed or reset by a dying worker
                        raise self._died(w, what) from None
                    if status == "error":
                        raise self._remote_error(w, what, *data)
                    answers[w] = data
                    self._pending.discard(w)
        except BaseException as exc:  # e.g. KeyboardInterrupt: answers are out of sync now
            self._broken = self._broken or f"interrupted during {what}: {exc!r}"
            raise
        return answers

    def _env_id(self, w: int) -> str:
        return self.env_ids[self._slices[w].start]

    def _fail(self, msg: str, **attrs) -> EnvPoolError:
        self._broken = msg.splitlines()[0]
        return EnvPoolError(msg, **attrs)

    def _died(self, w: int, what: str) -> EnvPoolError:
        self._procs[w].join(1.0)
        code = self._procs[w].exitcode
        how = f" (killed by {signal.Signals(-code).name})" if code is not None and code < 0 else ""
        return self._fail(f"EnvPool worker {w} (envs {self._slices[w].start}..{self._slices[w].stop - 1}"
                          f", env id {self._env_id(w)!r}) died during {what} with exit code {code}{how}",
                          worker=w, env_id=self._env_id(w), exitcode=code)

    def _remote_error(self, w, what, env_index, text, tb, exc_bytes) -> EnvPoolError:
        env_id = self.env_ids[env_index] if env_index is not None else self._env_id(w)
        where = f"env {env_index} ({env_id!r})" if env_index is not None else f"env {env_id!r}"
        err = self._fail(f"EnvPool worker {w}: {where} raised during {what}: {text}\n\n"
                         f"Worker traceback:\n{tb}", worker=w, env_index=env_index, env_id=env_id)
        try:  # bytes from our own worker process, not from a file
            err.__cause__ = pickle.loads(exc_bytes) if exc_bytes else None
        except Exception:
            pass
        return err


def _stack_infos(infos: list[dict]) -> dict[str, np.ndarray]:
    """Stack per-env info dicts key by key (object arrays where stacking is impossible)."""
    out = {}
    for key in dict.fromkeys(k for info in infos for k in info):
        values = [info.get(key) for info in infos]
        if all(key in info for info in infos):
            try:
                if (arr := np.array(values)).dtype != object:
                    out[key] = arr
                    continue
            except ValueError:
                pass
        out[key] = _object_array(values)
    return out
