"""Metric files: one row per logged step in every format, and clean resumes."""

import glob
import json
import os
import struct
import subprocess
import sys

import numpy as np
from tensorboardX.proto import event_pb2

from parrot_jax import metrics
from parrot_jax.metrics import MetricWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _log(workdir, steps, resume_step=None, offset=0.0):
    with MetricWriter(str(workdir), resume_step) as writer:
        for step in steps:
            writer.write(step, {"train/loss": step + offset, "eval/nll": -step})


def _events(path):
    """The events of a TFRecord file (length, crc, payload, crc; crcs not checked)."""
    data = open(path, "rb").read()
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        yield event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
        offset += 16 + length


def _scalars(workdir, name):
    """What TensorBoard shows: a SessionLog.START at step s drops earlier events >= s."""
    shown = []
    for path in sorted(glob.glob(str(workdir / metrics.TENSORBOARD / "events.*"))):
        for event in _events(path):
            if event.session_log.status == event_pb2.SessionLog.START:
                shown = [(s, v) for s, v in shown if s < event.step]
            for value in event.summary.value:
                if value.tag == name:
                    shown.append((event.step, value.simple_value))
    return shown


def test_writes_all_three_formats(tmp_path):
    _log(tmp_path, [0, 10, 20])
    rows = metrics.read_jsonl(str(tmp_path / metrics.JSONL))
    assert [r["step"] for r in rows] == [0, 10, 20]
    assert rows[1]["train/loss"] == 10.0 and rows[1]["eval/nll"] == -10.0 and "time" in rows[1]
    csv_rows = metrics.read_csv(str(tmp_path / metrics.CSV))
    assert (20, "train/loss", 20.0) in csv_rows and len(csv_rows) == 6
    assert open(tmp_path / metrics.CSV).readline().strip() == "step,name,value"
    assert _scalars(tmp_path, "train/loss") == [(0, 0.0), (10, 10.0), (20, 20.0)]


def test_non_finite_values_keep_the_json_valid(tmp_path):
    with MetricWriter(str(tmp_path)) as writer:
        writer.write(1, {"train/loss": float("nan")})
    line = open(tmp_path / metrics.JSONL).read()
    assert json.loads(line)["train/loss"] is None
    assert np.isnan(metrics.read_csv(str(tmp_path / metrics.CSV))[0][2])


def test_resume_drops_rows_after_the_checkpoint(tmp_path):
    _log(tmp_path, [0, 10, 20, 30])  # the killed run got to 30, its checkpoint is at 20
    with open(tmp_path / metrics.JSONL, "a") as f:
        f.write('{"step": 40, "train/lo')  # killed mid-line
    with open(tmp_path / metrics.CSV, "a") as f:
        f.write("40,train/loss,1.2")  # a cut-short number that still parses
    _log(tmp_path, [30, 40], resume_step=20, offset=0.5)
    rows = metrics.read_jsonl(str(tmp_path / metrics.JSONL))
    assert [(r["step"], r["train/loss"]) for r in rows] == [
        (0, 0.0), (10, 10.0), (20, 20.0), (30, 30.5), (40, 40.5)]
    csv_rows = metrics.read_csv(str(tmp_path / metrics.CSV))
    assert [v for s, n, v in csv_rows if n == "train/loss"] == [0.0, 10.0, 20.0, 30.5, 40.5]
    assert open(tmp_path / metrics.CSV).read().count("step,name,value") == 1
    assert _scalars(tmp_path, "train/loss") == [
        (0, 0.0), (10, 10.0), (20, 20.0), (30, 30.5), (40, 40.5)]


def test_fresh_run_replaces_old_rows(tmp_path):
    _log(tmp_path, [0, 10])
    _log(tmp_path, [0], offset=3.0)
    assert [r["train/loss"] for r in metrics.read_jsonl(str(tmp_path / metrics.JSONL))] == [3.0]


def test_disabled_writer_writes_nothing(tmp_path):
    with MetricWriter(str(tmp_path / "w"), enabled=False) as writer:
        writer.write(0, {"a": 1.0})
    assert not os.path.exists(tmp_path / "w")


def test_the_writer_leaves_torch_unimported_and_importable(tmp_path):
    """tensorboardX would import torch (1.0-1.5 s a binary) only to accept its tensors."""
    code = f"""
import importlib.util, sys
from parrot_jax.metrics import MetricWriter
with MetricWriter({str(tmp_path)!r}) as writer:
    writer.write(1, {{"loss": 0.5}})
print("torch" in sys.modules)
if importlib.util.find_spec("torch") is not None:
    import torch
    print(torch.zeros(2).sum().item())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split()
    assert lines[0] == "False" and lines[1:] in ([], ["0.0"])
    assert [json.loads(l)["loss"] for l in open(tmp_path / metrics.JSONL)] == [0.5]
