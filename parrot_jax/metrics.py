"""Scalar metrics written three ways: TensorBoard events, JSON lines and a long-format CSV.

    WORKDIR/tensorboard/          events for ``tensorboard --logdir WORKDIR/tensorboard``
    WORKDIR/metrics.jsonl         one object per logged step: {"step": 100, "time": ..., ...}
    WORKDIR/metrics.csv           step,name,value (one row per scalar)

A run resumed from a checkpoint at step ``k`` first drops what the killed run logged
after ``k`` (rewriting the files atomically, and purging TensorBoard events), so every
step appears once and the files describe one consistent run.
"""

from __future__ import annotations

import csv
import io as std_io
import json
import math
import os
import sys
import time
from typing import Mapping

from parrot_jax import io

JSONL = "metrics.jsonl"
CSV = "metrics.csv"
TENSORBOARD = "tensorboard"
CSV_HEADER = ("step", "name", "value")


def _summary_writer():
    """tensorboardX's ``SummaryWriter``, imported without PyTorch where it is not loaded yet.

    tensorboardX imports torch, when installed, only to accept its tensors; we log floats,
    and the import cost every binary 1.0-1.5 s here (torch is installed beside us for the
    reference benchmarks). A ``None`` in ``sys.modules`` makes that ``import torch`` fail
    as if torch were absent; the entry is removed at once, so torch imports as usual later.
    """
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked:
            del sys.modules["torch"]
    return SummaryWriter


class MetricWriter:
    """Appends scalars to the workdir's metric files.

    ``resume_step``: None for a fresh run (any earlier rows are dropped), or the step of
    the checkpoint a run resumes from (rows with a larger step are dropped).
    ``enabled=False`` makes every method a no-op (processes other than the first).
    """

    def __init__(self, workdir: str, resume_step: int | None = None, enabled: bool = True):
        self.workdir = workdir
        self.enabled = enabled
        if not enabled:
            return
        SummaryWriter = _summary_writer()  # heavy import; only the writing process

        os.makedirs(workdir, exist_ok=True)
        keep_up_to = -1 if resume_step is None else resume_step
        truncate_jsonl(os.path.join(workdir, JSONL), keep_up_to)
        truncate_csv(os.path.join(workdir, CSV), keep_up_to)
        # Event file names carry the time in whole seconds; the suffix keeps a run resumed
        # within the same second from overwriting the last one's file, and sorts after it.
        self._tensorboard = SummaryWriter(os.path.join(workdir, TENSORBOARD),
                                          purge_step=keep_up_to + 1,
                                          filename_suffix=f".{time.time_ns()}")
        self._jsonl = open(os.path.join(workdir, JSONL), "a")
        new_csv = not os.path.exists(os.path.join(workdir, CSV))
        self._csv_file = open(os.path.join(workdir, CSV), "a", newline="")
        self._csv = csv.writer(self._csv_file)
        if new_csv:
            self._csv.writerow(CSV_HEADER)

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        """Logs ``metrics`` (name -> number) at ``step`` and flushes every file."""
        if not self.enabled or not metrics:
            return
        values = {name: float(value) for name, value in metrics.items()}
        for name, value in values.items():
            self._tensorboard.add_scalar(name, value, step)
            self._csv.writerow((step, name, repr(value)))
        # JSON has no NaN/inf; null keeps the line parseable by any reader.
        row = {"step": step, "time": time.time(),
               **{k: v if math.isfinite(v) else None for k, v in values.items()}}
        self._jsonl.write(json.dumps(row) + "\n")
        self.flush()

    def flush(self) -> None:
        if self.enabled:
            self._tensorboard.flush()
            self._jsonl.flush()
            self._csv_file.flush()

    def close(self) -> None:
        if self.enabled:
            self._tensorboard.close()
            self._jsonl.close()
            self._csv_file.close()
            self.enabled = False

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_jsonl(path: str) -> list[dict]:
    """The complete rows of a metrics.jsonl (a line cut short by a kill is skipped)."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
    return rows


def truncate_jsonl(path: str, keep_up_to: int) -> None:
    """Rewrites ``path`` (atomically) keeping only complete rows with step <= keep_up_to."""
    if not os.path.exists(path):
        return
    kept = [r for r in read_jsonl(path) if r["step"] <= keep_up_to]
    io.write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def read_csv(path: str) -> list[tuple[int, str, float]]:
    """The complete ``(step, name, value)`` rows of a metrics.csv."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # cut short by a kill: "1.25" may have been "1.2501"
    rows = []
    for fields in csv.reader(lines):
        try:
            rows.append((int(fields[0]), fields[1], float(fields[2])))
        except (ValueError, IndexError):
            continue  # the header
    return rows


def truncate_csv(path: str, keep_up_to: int) -> None:
    """Rewrites ``path`` (atomically) keeping only complete rows with step <= keep_up_to."""
    if not os.path.exists(path):
        return
    out = std_io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for step, name, value in read_csv(path):
        if step <= keep_up_to:
            writer.writerow((step, name, repr(value)))
    io.write_text(path, out.getvalue())
