"""The suite's quick mode: every section runs and the JSON has the documented schema."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks import run, suites

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
HAS_TORCH = importlib.util.find_spec("torch") is not None
# The module fixture runs the whole quick suite in a subprocess (minutes on 2 busy cores):
# the same limit as that subprocess.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    cmd = [sys.executable, "-m", "benchmarks.run", "--suite=quick", f"--out={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_result_describes_machine_devices_versions_and_goals(quick):
    result, _ = quick
    assert result["suite"] == "quick" and list(result["sections"]) == list(run.SECTIONS)
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"]
    assert result["machine"]["host_allocator"] in ("retain", "system")
    assert result["devices"]["platform"] == "cpu" and result["devices"]["count"] >= 1
    for package in ("jax", "jaxlib", "flax", "pybullet", "torch"):
        assert package in result["versions"]
    assert result["goals"] == run.GOALS["cpu"] and result["date"].startswith("20")
    assert result["torch"]["used"] == HAS_TORCH
    assert result["conv_backend"] == os.environ.get("PARROT_JAX_CONV", "xla")
    assert set(result["section_seconds"]) == set(run.SECTIONS)


def test_every_record_is_well_formed(quick):
    result, _ = quick
    names = [r["name"] for r in result["records"]]
    assert len(names) == len(set(names))
    for r in result["records"]:
        assert set(r) == {"name", "value", "unit", "config", "repeats", "date"}
        assert math.isfinite(r["value"]) and r["value"] > 0, r
        assert isinstance(r["config"], dict) and r["unit"]
        if r["unit"] not in ("x", "ratio"):
            assert len(r["repeats"]) == suites.get("quick")["repeats"] or r["name"].startswith(
                "e2e/parrot"), r["name"]


def test_every_section_reports_its_figures(quick):
    result, stdout = quick
    by_name = {r["name"]: r for r in result["records"]}
    expected = ["peak/matmul_f32_flops_per_s", "env/single_steps_per_s", "env/pool_1_workers_2_envs_each_steps_per_s",
                "data/loader_samples_per_s", "data/device_prefetch_samples_per_s",
                "flow/tiny_batch_16/jax_samples_per_s",
                "flow/tiny_batch_16_fused_2/jax_samples_per_s",
                "sac/tiny_batch_16/jax_updates_per_s", "sac/tiny_batch_16_fused_2/jax_updates_per_s",
                "acting/parrot_batch_1/jax_latency_ms", "acting/parrot_batch_4/jax_observations_per_s",
                "e2e/env_only_steps_per_s", "e2e/parrot_acting_steps_per_s",
                "e2e/parrot_training_steps_per_s", "e2e/parrot_training_fraction_of_env_only",
                "seeds/tiny_batch_16_single/jax_updates_per_s",
                "seeds/tiny_vmap_batch_16_1_agents/jax_updates_per_s",
                "seeds/tiny_vmap_batch_16_2_agents/jax_updates_per_s",
                "seeds/tiny_vmap_batch_16_2_agents/fraction_of_independent"]
    for kind in ("flow", "sac"):
        for mode in ("global", "per_device"):
            expected += [f"scaling/{kind}_{mode}_batch_{n}_devices_updates_per_s" for n in (1, 2)]
    if HAS_TORCH:
        expected += ["flow/tiny_batch_16/torch_samples_per_s", "flow/tiny_batch_16/speedup_vs_torch",
                     "sac/tiny_batch_16/torch_updates_per_s", "sac/tiny_batch_16/speedup_vs_torch",
                     "acting/parrot_batch_1/torch_latency_ms"]
    for name in expected:
        assert name in by_name, name
        assert name in stdout
    flow = by_name["flow/tiny_batch_16/jax_samples_per_s"]["config"]
    assert flow["flops_per_step"] > 0 and flow["achieved_flops_per_s"] > 0
    assert flow["model"]["hidden"] == [32, 32] and flow["batch"] == 16
    scaling = by_name["scaling/sac_per_device_batch_2_devices_updates_per_s"]["config"]
    assert scaling["devices"] == 2 and scaling["global_batch"] == 32
    assert scaling["per_device_batch"] == 16
    if HAS_TORCH:
        ratio = by_name["flow/tiny_batch_16/speedup_vs_torch"]["value"]
        jax_rate = by_name["flow/tiny_batch_16/jax_samples_per_s"]["value"]
        torch_rate = by_name["flow/tiny_batch_16/torch_samples_per_s"]["value"]
        assert ratio == pytest.approx(jax_rate / torch_rate, rel=1e-9)
    seeds = by_name["seeds/tiny_vmap_batch_16_2_agents/fraction_of_independent"]
    assert seeds["value"] == pytest.approx(
        by_name["seeds/tiny_vmap_batch_16_2_agents/jax_updates_per_s"]["value"]
        / (2 * by_name["seeds/tiny_batch_16_single/jax_updates_per_s"]["value"]))
    assert seeds["config"]["agents"] == 2
    e2e = by_name["e2e/parrot_training_fraction_of_env_only"]
    assert e2e["value"] == pytest.approx(by_name["e2e/parrot_training_steps_per_s"]["value"]
                                         / by_name["e2e/env_only_steps_per_s"]["value"])
    assert "goal e2e_training_fraction_of_env_only" in stdout


def test_bad_suite_and_sections_are_refused():
    with pytest.raises(ValueError, match="unknown suite 'huge'.*full.*quick"):
        suites.get("huge")
    with pytest.raises(ValueError, match=r"unknown sections \['flows'\]"):
        run.run_suite("quick", ["flows"])


@pytest.mark.skipif(not HAS_TORCH, reason="needs the PyTorch references")
def test_onednn_and_torch_in_one_process_refused(monkeypatch):
    monkeypatch.setenv("PARROT_JAX_CONV", "onednn")
    with pytest.raises(ValueError, match="PARROT_JAX_CONV=onednn with the PyTorch references.*"
                                         "--notorch"):
        run.run_suite("quick", ["peak"], use_torch=True)
