"""The ``forkserver`` start method with the main module's imports preloaded.

A forkserver child runs the parent's main module again as ``__mp_main__`` before its target
(the main's name for a ``python -m`` binary, its path for a script). CPython's preloading
of ``"__main__"`` skips ``python -m`` mains, and in Python 3.11 scripts as well
(gh-137996), so every worker of every pool one of our binaries started imported JAX and the
rest anew: 2.4 s a pool of env workers on the 2-core VM, and about a third of a tiny sweep
job. ``context(...)`` has the server import, once, the modules the main module imported;
the child's run of the main module then costs its own lines.
"""

from __future__ import annotations

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


def context(*modules: str | None):
    """``mp.get_context("forkserver")``, its server (when this call is the one that starts
    it) preloading ``__main__``'s imports and ``modules`` (``None`` entries skipped).

    The server starts once per process, with the list set last before that: pass what
    every child of this process will need, not only this caller's."""
    ctx = mp.get_context("forkserver")
    preload = ["__main__", *main_imports(), *(m for m in modules if m)]
    ctx.set_forkserver_preload(list(dict.fromkeys(preload)))
    return ctx
