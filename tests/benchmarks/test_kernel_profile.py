"""The kernel profile: interval arithmetic, the summary's sums, and the binary on CPU."""

import json
import subprocess
import sys

import pytest

from benchmarks import kernel_profile

from tests.benchmarks.test_device_check import ROOT


def test_busy_time_is_the_union_of_the_kernels_intervals():
    # [0, 10) and [5, 15) overlap (15 ns together), [20, 25) adds 5, [21, 22) nothing
    assert kernel_profile.union_ns([(20, 5), (0, 10), (5, 10), (21, 1)]) == 20
    assert kernel_profile.union_ns([]) == 0


def test_kernels_are_named_into_categories():
    assert kernel_profile.category("sm90_xmma_fprop_implicit_gemm_f32") == "convolution"
    assert kernel_profile.category("void wgrad_alg0_engine_NHWC<float>") == "other"
    assert kernel_profile.category("cudnn::engines::convertTensor") == "convolution"
    assert kernel_profile.category("gemm_fusion_dot_27") == "matmul"
    assert kernel_profile.category("loop_maximum_fusion") == "other"


def test_the_summary_sums_per_call_and_ranks_the_kernels():
    events = [("gemm_a", "dot.1", 0, 4000), ("loop_b", "fusion.2", 4000, 1000),
              ("gemm_a", "dot.1", 10000, 4000), ("loop_b", "fusion.2", 12000, 3000)]
    s = kernel_profile.summarize(events, calls=2, wall_seconds=40e-6, top=5)
    assert s["wall_ms"] == pytest.approx(0.02) and s["kernels"] == 2
    assert s["busy_ms"] == pytest.approx(0.005)  # [0, 5,000) and [10,000, 15,000), per 2
    assert s["kernel_ms"] == pytest.approx(0.006) and s["mean_kernel_us"] == pytest.approx(3)
    assert s["categories_ms"] == {"matmul": pytest.approx(0.004), "other": pytest.approx(0.002)}
    assert [k["name"] for k in s["top"]] == ["gemm_a", "loop_b"]
    assert s["top"][0] == {"name": "gemm_a", "hlo_op": "dot.1", "category": "matmul",
                           "calls_per_update": 1.0, "us_per_update": 4.0, "mean_us": 4.0}


def test_a_cpu_trace_is_read_back_and_the_binary_writes_its_json(tmp_path):
    result = kernel_profile.profile("tiny", 2, "trunk_forward", 2, 3)
    assert result["kernels"] > 0 and 0 < result["busy_ms"] and len(result["top"]) <= 3
    totals = [k["us_per_update"] for k in result["top"]]
    assert totals == sorted(totals, reverse=True)
    assert any(name.startswith("/host:CPU/") for name in result["lines"])
    with pytest.raises(ValueError, match="part 'nope' is not one of .*'update'"):
        kernel_profile.profile("tiny", 2, "nope", 2, 3)
    out = tmp_path / "k.json"
    cmd = [sys.executable, "-m", "benchmarks.kernel_profile", "--network=tiny", "--batch=2",
           "--calls=2", "--top=4", f"--out={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    written = json.loads(out.read_text())
    assert written["part"] == "update" and written["kernels"] > 0 and len(written["top"]) == 4
    assert "device busy" in done.stdout
    done = subprocess.run(cmd[:3] + ["--batch=0"], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode != 0 and "--batch=0; expected a positive integer" in done.stderr
