"""The suite runs in one process, so no two modules it imports may define the same absl
flag (``--episodes``, ``--seed``): the second import fails, in whichever test comes
later. A binary's logic lives in a flagless module; tests run the binary itself as a
subprocess."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("experiments", "benchmarks", "parrot_jax")


def _flags_defined(path):
    """Names of the flags the module defines at import time (``flags.DEFINE_*('name',
    ...)`` outside functions, classes and the ``__main__`` block)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            continue
        names += [n.args[0].value for n in ast.walk(node) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Attribute) and n.func.attr.startswith("DEFINE")
                  and n.args and isinstance(n.args[0], ast.Constant)]
    return names


def _imported_modules(path):
    """Dotted names of the project's modules that the file imports."""
    with open(path) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if n.split(".")[0] in PACKAGES}


def _module_file(name):
    base = os.path.join(ROOT, *name.split("."))
    return base + ".py" if os.path.exists(base + ".py") else None


def _test_files():
    for folder, _, files in os.walk(os.path.join(ROOT, "tests")):
        yield from (os.path.join(folder, f) for f in files if f.endswith(".py"))


def test_no_two_modules_the_tests_import_define_the_same_flag():
    owners = {}
    for test in _test_files():
        for name in _imported_modules(test):
            if _module_file(name):
                for flag in _flags_defined(_module_file(name)):
                    owners.setdefault(flag, set()).add(name)
    clashes = {flag: sorted(mods) for flag, mods in owners.items() if len(mods) > 1}
    assert not clashes, ("tests import binaries that define the same flags; move the logic "
                         f"they need into a flagless module: {clashes}")


@pytest.mark.parametrize("source, names", [
    ("from absl import flags\n_X = flags.DEFINE_integer('x', 1, 'x')\n", ["x"]),
    ("from absl import flags\ndef main():\n    flags.DEFINE_integer('x', 1, 'x')\n", []),
    ("from absl import flags\nif __name__ == '__main__':\n    flags.DEFINE_bool('y', 0, 'y')\n",
     []),
    ("import os\n", []),
])
def test_the_check_sees_import_time_flags(tmp_path, source, names):
    (tmp_path / "m.py").write_text(source)
    assert _flags_defined(tmp_path / "m.py") == names
