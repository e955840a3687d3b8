"""Worker processes that do not pay for the main module's imports.

A forkserver (or spawn) child runs the parent's main module again as ``__mp_main__``
before its target (the main's name for a ``python -m`` binary, its path for a script), so
that what the main defined can be unpickled there. CPython's preloading of ``"__main__"``
skips ``python -m`` mains, and in Python 3.11 scripts as well (gh-137996), so every worker
of every pool one of our binaries started imported JAX and the rest anew: 2.4 s a pool of
env workers on the 2-core VM, and about a third of a tiny sweep job. Two remedies:

- ``without_main()``: children started inside it do not run the main module at all, for
  targets and arguments that need nothing from it (our workers: their targets live in
  library modules, their factories are cloudpickled). The server then preloads only the
  modules the workers use (``context(..., main=False)``): a binary's first pool of 2 env
  workers started and reset in 0.44 s, against 2.47 s when they ran the main.
- ``context(...)`` (``main=True``): the server imports, once, the modules the main module
  imported; each child's run of the main module then costs its own lines. For children
  that do need the main (a factory defined there, which may rely on what it registers).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import types


def main_imports() -> list[str]:
    """The modules ``__main__`` holds (``import m``, ``from pkg import m``) or took names
    from (``from m import f``), in its namespace's order.

    Nothing for a main that children do not run again (``python -c``, an interactive
    session, a notebook: no module name and no file). The main module itself is never
    named, under either name: imported by the server as a module, it would define its
    flags a second time in each child's run of it."""
    main = sys.modules.get("__main__")
    own = getattr(getattr(main, "__spec__", None), "name", None)
    if main is None or (own is None and getattr(main, "__file__", None) is None):
        return []
    names = []
    for value in list(vars(main).values()):
        try:
            name = value.__name__ if isinstance(value, types.ModuleType) else getattr(
                value, "__module__", None)
        except Exception:  # a proxy that raises on lookups: nothing to preload for it
            continue
        if isinstance(name, str) and name not in ("__main__", "__mp_main__", "builtins", own) \
                and not name.startswith("_"):
            names.append(name)
    return list(dict.fromkeys(names))


def context(*modules: str | None, main: bool = True):
    """``mp.get_context("forkserver")``, its server (when this call is the one that starts
    it) preloading ``modules`` (``None`` entries skipped) and, with ``main``, ``__main__``
    and its imports (for children that run the main module again; not for those started
    ``without_main()``).

    The server starts once per process, with the list set last before that: pass what
    every child of this process will need, not only this caller's. A child needing a module
    the server did not preload imports it itself."""
    ctx = mp.get_context("forkserver")
    preload = ["__main__", *main_imports()] if main else []
    ctx.set_forkserver_preload(list(dict.fromkeys([*preload, *(m for m in modules if m)])))
    return ctx


@contextlib.contextmanager
def without_main():
    """Processes started (``Process.start()``, forkserver or spawn) inside this block do not
    run the parent's main module again: their target and arguments must be importable or
    pickled by value (cloudpickle), and must not rely on what the main module does when run
    (registering env ids, setting globals).

    multiprocessing decides from ``sys.modules["__main__"]`` when a child starts (its
    preparation data names the main's module or path); for the block's length that entry is
    a bare module with neither. Start children from one thread: another thread reading
    ``__main__`` meanwhile would see the bare module."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is None:
            del sys.modules["__main__"]
        else:
            sys.modules["__main__"] = main
