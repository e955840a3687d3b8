"""The env benchmark runs with tiny settings and writes well-formed records."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_env_throughput_writes_records(tmp_path):
    out = tmp_path / "env.json"
    cmd = [sys.executable, "-m", "benchmarks.env_throughput", f"--out={out}", "--steps=8",
           "--repeats=1", "--workers=1,2", "--envs_per_worker=1,2"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1 and "pybullet" in result["versions"]
    names = [r["name"] for r in result["records"]]
    expected = ["env/single_steps_per_s"]
    for w in (1, 2):
        expected += [f"env/pool_{w}_workers_{e}_envs_each_steps_per_s" for e in (1, 2)]
        expected.append(f"env/gymnasium_async_{w}_envs_steps_per_s")
    assert names == expected
    for r in result["records"]:
        assert r["unit"] == "steps/s" and r["value"] > 0 and len(r["repeats"]) == 1
        assert r["config"]["env"] == "parrot/PickPlaceTrain-v0" and r["date"]
