"""The data benchmark runs with tiny settings and writes well-formed records."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

LOADER_KEYS = {"cache", "batch", "window", "threads", "batches", "dataset_gb", "dataset_frames",
               "dataset_episodes", "shards", "sampler"}


def expected_names() -> list[str]:
    names = [f"collect/1_workers_{x}" for x in ("trajectories_per_s", "attempted_steps_per_s")]
    names += ["disk/sequential_read_MB_per_s", "disk/random_8KiB_reads_per_s_1_threads",
              "disk/random_8KiB_reads_per_s_2_threads"]

    def shapes(prefix, threads):
        out = []
        for b in (32, 64):
            for t in threads:
                out.append(f"{prefix}_batch_{b}_frames_{t}_{{}}_samples_per_s")
            for t in threads:
                out += [f"{prefix}_batch_{b}_windows_4_{t}_{{}}_{x}_per_s"
                        for x in ("samples", "frames")]
        return out

    names += [f"loader/{n.format('threads')}" for n in shapes("cold", (1, 2))]
    names += [f"loader/{n.format('threads')}" for n in shapes("warm", (1, 2))]
    names += [f"loader/{n.format('prefetch_threads')}" for n in shapes("device", (1,))]
    names += [f"loader/{n.format('threads')}" for n in shapes("in_memory", (1,))]
    return names


def test_data_throughput_writes_records(tmp_path):
    out = tmp_path / "data.json"
    cmd = [sys.executable, "-m", "benchmarks.data_throughput", f"--out={out}",
           "--collect_trajectories=4", "--workers=1", "--repeats=1", "--loader_gb=0.02",
           "--episodes_per_shard=50", "--batch_sizes=32,64", "--window=4", "--threads=1,2",
           "--batches=3", "--cold_batches=2", "--device_batches=3", "--prefetch_threads=1",
           "--in_memory_gb=0.005", "--disk_reads=100", f"--dataset_dir={tmp_path / 'ds'}"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] >= 1 and result["machine"]["memory_gib"] > 0
    assert {"numpy", "jax", "pybullet"} <= set(result["versions"])
    assert result["goal"]["loader_host_samples_per_s"] == 50_000
    records = result["records"]
    names = [r["name"] for r in records]
    assert len(names) == len(set(names)) and set(names) == set(expected_names())
    units = {"collect": {"trajectories/s", "steps/s"}, "disk": {"MB/s", "reads/s"},
             "loader": {"samples/s", "frames/s"}}
    for r in records:
        section = r["name"].split("/")[0]
        assert r["unit"] in units[section], r
        assert r["value"] > 0 and len(r["repeats"]) == 1 and r["date"], r
        assert r["unit"] != "frames/s" or r["config"]["window"] == 4, r
    for r in records:
        config = r["config"]
        if r["name"].startswith("collect/"):
            assert config["workers"] == 1 and config["trajectories"] == 4
            assert 0 < config["acceptance"] <= 1 and config["horizon"] == 25
        elif r["name"].startswith("loader/"):
            assert LOADER_KEYS <= set(config), r["name"]
            assert config["window"] in (None, 4) and config["batch"] in (32, 64)
            cache = r["name"].split("/")[1].split("_batch_")[0]
            assert config["cache"] == ("warm" if cache == "device" else cache)
            if cache == "cold":
                assert config["read_bytes_per_sample"] > 0
            if cache == "device":
                assert config["devices"] >= 1 and config["platform"] == "cpu"
    assert (tmp_path / "ds" / "metadata.json").exists()  # --dataset_dir keeps the dataset
