"""parrot_jax.forkserver: which of the main module's names the server preloads, and children
started without the main module."""

import importlib.util
import multiprocessing as mp
from multiprocessing import forkserver as mp_forkserver
from multiprocessing import spawn
import sys
import types

import gymnasium as gym
import numpy as np
import pytest

from parrot_jax import forkserver
from parrot_jax.envs import pool


def _main(monkeypatch, **names):
    main = types.ModuleType("__main__")
    main.__spec__ = importlib.util.find_spec("tests.envs.forkserver_main")
    for key, value in names.items():
        setattr(main, key, value)
    monkeypatch.setitem(sys.modules, "__main__", main)
    return main


def test_main_imports_name_modules_and_where_names_came_from(monkeypatch):
    main = _main(monkeypatch, np=np, gym_make=gym.make, pool=pool, numpy_again=np)
    main.self = main  # the main module itself is never preloaded, as __main__ ...
    main.again = types.ModuleType("tests.envs.forkserver_main")  # ... or under its own name
    main.local = lambda: None
    main.local.__module__ = "__main__"  # defined in the main module: nothing to import
    assert forkserver.main_imports() == ["numpy", "gymnasium.envs.registration",
                                         "parrot_jax.envs.pool"]


def test_a_main_children_do_not_run_again_preloads_nothing(monkeypatch):
    main = _main(monkeypatch, np=np)
    main.__spec__ = None  # as for `python -c` or a notebook: no name and no file
    assert forkserver.main_imports() == []
    main.__file__ = "/path/to/script.py"  # a script: its children run it again
    assert forkserver.main_imports() == ["numpy"]


def test_a_name_whose_lookup_raises_is_skipped(monkeypatch):
    class Proxy:
        def __getattribute__(self, name):
            raise RuntimeError(f"no {name}")

    _main(monkeypatch, proxy=Proxy(), np=np)
    assert forkserver.main_imports() == ["numpy"]


def test_context_preloads_main_its_imports_and_the_given_modules(monkeypatch):
    _main(monkeypatch, np=np)
    server = mp_forkserver._forkserver  # the process's one server; its list is restored after
    monkeypatch.setattr(server, "_preload_modules", list(server._preload_modules))
    ctx = forkserver.context("parrot_jax.envs.pool", None, "numpy")
    assert ctx is mp.get_context("forkserver")
    assert server._preload_modules == ["__main__", "numpy", "parrot_jax.envs.pool"]


def test_context_without_main_preloads_only_the_given_modules(monkeypatch):
    _main(monkeypatch, np=np)
    server = mp_forkserver._forkserver
    monkeypatch.setattr(server, "_preload_modules", list(server._preload_modules))
    forkserver.context("parrot_jax.envs.pool", "parrot_jax.envs.pool", main=False)
    assert server._preload_modules == ["parrot_jax.envs.pool"]


def test_children_started_without_main_are_not_told_to_run_it(monkeypatch):
    main = _main(monkeypatch, np=np)
    assert spawn.get_preparation_data("x")["init_main_from_name"] == "tests.envs.forkserver_main"
    with forkserver.without_main():
        data = spawn.get_preparation_data("x")
        assert "init_main_from_name" not in data and "init_main_from_path" not in data
    assert sys.modules["__main__"] is main  # restored
    with pytest.raises(KeyError), forkserver.without_main():
        raise KeyError("an error inside the block")
    assert sys.modules["__main__"] is main  # restored on an error too
