"""Atomic writes and media helpers."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from parrot_jax import io


def test_write_json_round_trip_and_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "a.json"
    io.write_json(str(path), {"b": 1, "a": [1.5, 2]})
    assert json.loads(path.read_text()) == {"a": [1.5, 2], "b": 1}
    assert os.listdir(path.parent) == ["a.json"]


@pytest.mark.fault
def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    io.write_json(str(path), {"v": 1})
    with pytest.raises(TypeError):
        io.write_json(str(path), {"v": object()})  # not serialisable: fails before writing
    with pytest.raises(TypeError):
        io.atomic_write_bytes(str(path), "not bytes")  # fails while writing the temp file
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["a.json"]


def test_gif_and_contact_sheet(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    io.write_gif(str(tmp_path / "x.gif"), frames, scale=2)
    gif = Image.open(tmp_path / "x.gif")
    assert gif.n_frames == 3 and gif.size == (96, 96)
    sheet = io.contact_sheet(list(frames), ["a", "b", "c"], columns=2, scale=1)
    assert sheet.shape == (2 * (48 + 14), 2 * 48, 3)
    np.testing.assert_array_equal(sheet[14:62, 48:96], frames[1])
    np.testing.assert_array_equal(io.upscale(frames[0], 3)[::3, ::3], frames[0])


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "out.json"
        io.write_json(str(path), {"a": 1})
        assert (path.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)


def test_write_npz_round_trips(tmp_path):
    path = str(tmp_path / "sub" / "a.npz")
    io.write_npz(path, x=np.arange(3), y=np.ones((2, 2), np.uint8))
    with np.load(path) as data:
        np.testing.assert_array_equal(data["x"], np.arange(3))
        assert data["y"].dtype == np.uint8 and data["y"].shape == (2, 2)
