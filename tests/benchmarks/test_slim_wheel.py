import base64
import glob
import hashlib
import os
import sys
import zipfile

import pybullet_data
import pytest

from benchmarks import slim_wheel

DIST = "pybullet-3.2.7.dist-info"
SO = "pybullet.cpython-312-x86_64-linux-gnu.so"


def _shared_object() -> bytes:
    """A real ELF shared object (one of the interpreter's extension modules)."""
    paths = glob.glob(os.path.join(sys.base_exec_prefix, "lib", "python3*", "lib-dynload", "*.so"))
    with open(min(paths, key=os.path.getsize), "rb") as f:
        return f.read()


def _wheel(path, entries: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
        z.writestr(f"{DIST}/RECORD", "stale\n")
    return str(path)


@pytest.fixture
def wheel(tmp_path):
    return _wheel(tmp_path / "pybullet-3.2.7-cp312-cp312-linux_x86_64.whl", {
        SO: _shared_object(),
        "pybullet_data/__init__.py": b"import os\n",
        "pybullet_data/duck.obj": b"v 0 0 0\n",
        "pybullet_data/samurai_monastry.obj": b"v 1 1 1\n" * 100,
        "pybullet_data/random_urdfs/000/000.obj": b"v 2 2 2\n",
        "pybullet_envs/__init__.py": b"",
        "pybullet_envs/bullet/kuka.py": b"x = 1\n",
        "pybullet_envs/data/policy.bin": b"\0" * 1000,
        f"{DIST}/METADATA": b"Name: pybullet\n",
        f"{DIST}/WHEEL": b"Tag: cp312-cp312-linux_x86_64\n",
    })


def test_keeps_the_extension_modules_metadata_and_named_data(wheel, tmp_path):
    out = slim_wheel.slim(wheel, str(tmp_path / "out"), {"__init__.py", "duck.obj"})
    assert os.path.basename(out) == os.path.basename(wheel)
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert names == {SO, "pybullet_data/__init__.py", "pybullet_data/duck.obj",
                         "pybullet_envs/__init__.py", "pybullet_envs/bullet/kuka.py",
                         f"{DIST}/METADATA", f"{DIST}/WHEEL", f"{DIST}/RECORD"}
        stripped = z.read(SO)
        assert stripped[:4] == b"\x7fELF" and len(stripped) <= len(_shared_object())
        # RECORD lists every other file with its sha256 and size, itself without
        lines = z.read(f"{DIST}/RECORD").decode().split()
        assert f"{DIST}/RECORD,," in lines
        records = dict(line.split(",", 1) for line in lines)
        assert set(records) == names
        for name in names - {f"{DIST}/RECORD"}:
            data = z.read(name)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert records[name] == f"sha256={digest.decode()},{len(data)}"
    assert not os.path.exists(out + ".tmp")


def test_the_suite_needs_files_pybullet_data_has():
    files = slim_wheel.needed_data_files()
    assert {"__init__.py", "duck.obj", "objects/mug.obj"} <= files
    assert any(f.startswith("random_urdfs/") for f in files)
    root = pybullet_data.getDataPath()
    assert all(os.path.isfile(os.path.join(root, f)) for f in files)


def test_bad_wheels_are_refused(wheel, tmp_path):
    with pytest.raises(ValueError, match=r"lacks pybullet_data files .*'bunny.obj'"):
        slim_wheel.slim(wheel, str(tmp_path / "out"), {"__init__.py", "bunny.obj"})
    with pytest.raises(ValueError, match="is not a .whl file"):
        slim_wheel.slim(str(tmp_path / "nothing.whl"), str(tmp_path / "out"))
    no_record = tmp_path / "norecord.whl"
    with zipfile.ZipFile(no_record, "w") as z:
        z.writestr(SO, b"")
    with pytest.raises(ValueError, match="holds 0 dist-info RECORD files; expected 1"):
        slim_wheel.slim(str(no_record), str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out" / "norecord.whl")
