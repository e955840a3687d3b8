"""Atomic file writing and small media helpers shared by the binaries."""

from __future__ import annotations

import io
import json
import os
import tempfile
from typing import Any, Sequence

import imageio.v3 as iio
import numpy as np
from PIL import Image


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file and a rename.

    A reader never sees a half-written file, and a crash leaves any previous version.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_npz(path: str, **arrays) -> None:
    """``np.savez_compressed`` of ``arrays``, written atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def upscale(frame: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W, 3) uint8 image, keeping pixels crisp."""
    return np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1)


def upscale_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of (T, H, W, 3) frames."""
    return np.repeat(np.repeat(frames, factor, axis=1), factor, axis=2)


def write_gif(path: str, frames: Sequence[np.ndarray], fps: float = 8.0, scale: int = 4) -> None:
    """Writes frames (T, H, W, 3) uint8 as a looping GIF, upscaled by ``scale``."""
    data = iio.imwrite("<bytes>", np.stack([upscale(f, scale) for f in frames]),
                       extension=".gif", duration=1000.0 / fps, loop=0)
    atomic_write_bytes(path, data)


def write_png(path: str, image: np.ndarray) -> None:
    data = iio.imwrite("<bytes>", image, extension=".png")
    atomic_write_bytes(path, data)


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str], columns: int = 5,
                  scale: int = 4) -> np.ndarray:
    """Tiles labelled, upscaled images into one (rows * (h + 14), columns * w, 3) image."""
    from PIL import ImageDraw

    tiles = []
    for image, label in zip(images, labels):
        big = Image.fromarray(upscale(image, scale))
        tile = Image.new("RGB", (big.width, big.height + 14), (255, 255, 255))
        tile.paste(big, (0, 14))
        ImageDraw.Draw(tile).text((2, 1), label, fill=(0, 0, 0))
        tiles.append(np.asarray(tile))
    h, w, _ = tiles[0].shape
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * h, columns * w, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    return sheet


def side_by_side(episodes: tuple[np.ndarray, ...], gap: int = 2) -> np.ndarray:
    """(T + 1, H, k * (W + gap) - gap, 3) frames; shorter episodes hold their last frame."""
    length = max(len(e) for e in episodes)
    padded = [hold_last(e, length) for e in episodes]
    white = np.full((length, padded[0].shape[1], gap, 3), 255, np.uint8)
    parts = [p for e in padded for p in (e, white)][:-1]
    return np.concatenate(parts, axis=2)


def hold_last(frames: np.ndarray, length: int, axis: int = 0) -> np.ndarray:
    """``frames`` extended to ``length`` along ``axis`` (time) by repeating the last one."""
    last = np.take(frames, [-1], axis=axis)
    return np.concatenate([frames, np.repeat(last, length - frames.shape[axis], axis=axis)],
                          axis=axis)
