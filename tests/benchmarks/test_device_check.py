"""The device check's CPU mode: every part runs, the checks pass, the files are written."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import device_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_correctness_and_prior_curve_through_the_binary(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.device_check", "--tiny", "--curve_seconds=2",
           "--parts=correctness,prior_curve", f"--out_dir={tmp_path}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "device_check_cpu_tiny.json").read_text())
    assert result["errors"] == {} and result["devices"]["platform"] == "cpu"
    assert "jax" in result["versions"] and result["suite"] == "quick"
    checks = result["correctness"]
    assert set(checks) == set(device_check.TOLERANCES)
    assert all(c["ok"] and 0 <= c["value"] <= c["tolerance"] for c in checks.values())
    curve = result["prior_curve"]
    points = curve["points"]
    assert points[0]["seconds"] == 0 and points[-1]["seconds"] >= 2
    assert [p["steps"] for p in points] == sorted(p["steps"] for p in points)
    assert points[-1]["nll"] < points[0]["nll"]  # it trains
    text = (tmp_path / "device_check_cpu_tiny.md").read_text()
    assert "| flow_round_trip |" in text and "validation NLL" in text
    assert "throughput" not in result


def test_a_failing_part_is_recorded_and_the_others_run(monkeypatch):
    def broken(*args):
        raise RuntimeError("out of device memory")

    monkeypatch.setattr(device_check, "correctness", broken)
    result = device_check.check(True, 0.5, False, parts=("correctness", "prior_curve"))
    assert result["errors"] == {"correctness": "RuntimeError: out of device memory"}
    assert result["prior_curve"]["points"]
    assert "**correctness failed**: RuntimeError: out of device memory" in \
        device_check.markdown(result)
    with pytest.raises(ValueError, match="unknown parts \\['speed'\\]"):
        device_check.check(True, 0.5, False, parts=("speed",))


def test_every_part_is_saved_as_it_ends_and_the_deadline_skips_the_rest():
    saved = []
    result = device_check.check(True, 0.5, False, parts=("correctness", "prior_curve"),
                                save=lambda r: saved.append(sorted(r["part_seconds"])))
    assert saved == [["correctness"], ["correctness", "prior_curve"]]
    assert result["skipped"] == []
    # a deadline already passed after the first part: the second is listed, not run
    result = device_check.check(True, 0.5, False, parts=("correctness", "throughput"),
                                deadline=1e-9)
    assert "correctness" in result["skipped"] and "throughput" not in result
    assert result["skipped"][1:6] == ["throughput/peak", "throughput/flow", "throughput/sac",
                                      "throughput/acting", "throughput/seeds"]
    assert result["part_seconds"] == {}
    assert "Skipped (past the deadline): correctness, throughput/peak" in \
        device_check.markdown(result)


def test_the_breakdown_part_times_the_paper_update_and_its_variants(monkeypatch):
    calls = []

    def breakdown(network, batch, repeats, variants=False):
        calls.append((network, batch, repeats, variants))
        return {"network": network, "batch": batch, "devices": {"kind": "cpu"},
                "parts": {"update": {"seconds": 3e-3, "flops": 2.4e10, "bytes": 1.7e9,
                                     "flops_per_s": 8e12, "bytes_per_s": 5e11}}}

    monkeypatch.setattr(device_check.sac_breakdown, "breakdown", breakdown)
    result = device_check.check(True, 0.5, False, parts=("breakdown",))
    assert calls == [("tiny", 4, 1, True)] and result["errors"] == {}
    text = device_check.markdown(result)
    assert "tiny networks, batch 4" in text and "update" in text


def test_the_kernels_part_profiles_the_paper_update(monkeypatch):
    calls = []

    def profile(network, batch, part, n, top):
        calls.append((network, batch, part, n, top))
        return {"network": network, "batch": batch, "part": part, "xla_flags": "",
                "devices": {"kind": "cpu"}, "wall_ms": 3.2, "busy_ms": 3.0, "kernels": 285,
                "mean_kernel_us": 11.0, "categories_ms": {"convolution": 1.1},
                "top": [{"name": "conv", "hlo_op": "convolution.1", "calls_per_update": 1.0,
                         "us_per_update": 400.0, "mean_us": 400.0}]}

    monkeypatch.setattr(device_check.kernel_profile, "profile", profile)
    result = device_check.check(True, 0.5, False, parts=("kernels",))
    assert calls == [("tiny", 4, "update", 2, 10)] and result["errors"] == {}
    text = device_check.markdown(result)
    assert "device busy 3.000 ms, 285 kernels" in text and "conv (convolution.1)" in text
