"""A pybullet wheel small enough to carry to the lent GPU machine.

The package registry has no pybullet wheel for the GPU machine's Python 3.12, and a call
there carries at most 64 MiB (working tree and wheels together). ``make device-wheels``
builds one from pybullet's sdist with a local Python 3.12. A full pybullet wheel (the
registry's Python 3.11 one: 98.4 MiB) holds a 140 MB extension with its debug symbols and
142 MB of ``pybullet_data`` assets; this rewrites it with what the suite needs:

- the extension with its symbols stripped (``strip --strip-unneeded``);
- of ``pybullet_data``, its ``__init__.py`` and the files ``parrot_jax.envs.objects``
  builds meshes from (every object's ``source``);
- the Python modules of the other packages (``pybullet_envs``, ``pybullet_utils``, ...),
  none of their data: pybullet's own tasks (``parrot_jax.envs.kuka_grasping``) do not run
  from the slim wheel;
- ``*.dist-info`` with a RECORD rewritten for the files kept (pip checks it).

    python -m benchmarks.slim_wheel --wheel=.whl-build/pybullet-3.2.7-cp312-cp312-linux_x86_64.whl \
        --out_dir=.whl
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile

from absl import app, flags

DATA_PACKAGE = "pybullet_data/"


def needed_data_files() -> set[str]:
    """pybullet_data's files the suite loads (paths inside the package)."""
    from parrot_jax.envs import objects
    sources = {spec.source for spec in objects.TRAIN_OBJECTS + objects.TEST_OBJECTS}
    return {s for s in sources if s != "procedural"} | {"__init__.py"}


def keep(name: str, data_files: set[str]) -> bool:
    """Whether a wheel entry stays: the extension, dist-info, Python modules, and the
    named pybullet_data files."""
    if name.startswith(DATA_PACKAGE):
        return name[len(DATA_PACKAGE):] in data_files
    top = name.split("/", 1)[0]
    return "/" not in name or top.endswith(".dist-info") or name.endswith(".py")


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def strip_extension(data: bytes) -> bytes:
    """The shared object without symbols or debug sections (its code unchanged)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ext.so")
        with open(path, "wb") as f:
            f.write(data)
        subprocess.run(["strip", "--strip-unneeded", path], check=True, capture_output=True)
        with open(path, "rb") as f:
            return f.read()


def slim(wheel: str, out_dir: str, data_files: set[str] | None = None) -> str:
    """Writes the slim copy of ``wheel`` into ``out_dir`` (same file name, written to a
    temporary name first); returns its path."""
    if not os.path.isfile(wheel) or not wheel.endswith(".whl"):
        raise ValueError(f"--wheel={wheel!r} is not a .whl file")
    data_files = needed_data_files() if data_files is None else data_files
    with zipfile.ZipFile(wheel) as src:
        names = src.namelist()
        records = [n for n in names if n.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            raise ValueError(f"{wheel} holds {len(records)} dist-info RECORD files; expected 1")
        missing = sorted(f for f in data_files
                         if f != "__init__.py" and DATA_PACKAGE + f not in names)
        if missing:
            raise ValueError(f"{wheel} lacks pybullet_data files the suite loads: {missing}")
        os.makedirs(out_dir, exist_ok=True)
        out = os.path.join(out_dir, os.path.basename(wheel))
        tmp = out + ".tmp"
        lines = []
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
            for name in names:
                if name == records[0] or not keep(name, data_files):
                    continue
                data = src.read(name)
                if name.endswith(".so"):
                    data = strip_extension(data)
                dst.writestr(src.getinfo(name), data, compress_type=zipfile.ZIP_DEFLATED,
                             compresslevel=9)
                lines.append(record_line(name, data))
            lines.append(f"{records[0]},,")
            dst.writestr(records[0], "\n".join(lines) + "\n")
    os.replace(tmp, out)
    return out


def main(argv):
    del argv
    wheel = flags.FLAGS.wheel
    if not wheel:
        raise app.UsageError("--wheel is required")
    if shutil.which("strip") is None:
        raise app.UsageError("`strip` (binutils) is needed to slim the extension")
    out = slim(wheel, flags.FLAGS.out_dir)
    print(f"{out}: {os.path.getsize(out) / 2**20:.1f} MiB "
          f"(from {os.path.getsize(wheel) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    # defined here, not at import (tests import this beside modules that define --out_dir)
    flags.DEFINE_string("wheel", None, "The pybullet wheel to slim.")
    flags.DEFINE_string("out_dir", ".whl", "Where the slim wheel goes (same name).")
    app.run(main)
