"""Multi-device scaling: flow and SAC updates/s on 1, 2, 4, ... devices.

    python -m benchmarks.scaling quick 1,2,4 scaling.json   # what benchmarks.run starts

Two modes per device count n: the global batch fixed (``B``, split n ways: strong
scaling) and the per-device batch fixed (``n * B`` in all: weak scaling). Each figure is
an update of the programs training runs (``learner.time_flow`` / ``learner.time_sac``)
on a mesh of the first n devices.

On a CPU-only machine the devices are XLA host devices: the suite starts this module in a
subprocess with ``--xla_force_host_platform_device_count`` set before JAX starts; they
share the machine's cores, so these figures show that the sharded programs run and what
partitioning costs, not a speedup (that needs real devices).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile



def scaling_records(settings, devices: list[int], repeats: int, record) -> list[dict]:
    """Runs in a process that has at least ``max(devices)`` devices."""
    import jax

    from benchmarks import learner
    from parrot_jax import parallel

    available = jax.device_count()
    counts = [n for n in devices if n <= available]
    records, base = [], {}
    for kind in ("flow", "sac"):
        for mode in ("global", "per_device"):
            for n in counts:
                mesh = parallel.make_mesh(n)
                batch = settings[f"{kind}_batch"] * (n if mode == "per_device" else 1)
                if kind == "flow":
                    timing = learner.time_flow(settings["flow_model"], batch, mesh,
                                               settings["steps"], repeats,
                                               fast_compile=settings.get("fast_compile", False))
                else:
                    config = learner.rl_config_for("sac", settings["sac_network"])
                    timing = learner.time_sac(config, batch, mesh, settings["steps"], repeats,
                                              fast_compile=settings.get("fast_compile", False))
                rate = 1.0 / timing.seconds_per_call
                base.setdefault((kind, mode), rate)
                config = {"devices": n, "global_batch": batch, "per_device_batch": batch // n,
                          "mode": f"{mode} batch fixed", "platform": jax.devices()[0].platform,
                          "device_kind": jax.devices()[0].device_kind,
                          "speedup_vs_1_device": rate / base[(kind, mode)],
                          "samples_per_s": rate * batch}
                records.append(record(
                    f"scaling/{kind}_{mode}_batch_{n}_devices_updates_per_s", rate,
                    "updates/s", config, [1.0 / r for r in timing.repeats]))
    return records


def run_in_subprocess(suite: str, devices: list[int]) -> list[dict]:
    """The records of ``python -m benchmarks.scaling`` in a fresh process with
    ``max(devices)`` host devices (GPUs/TPUs are used as they are)."""
    env = dict(os.environ)
    flag = f"--xla_force_host_platform_device_count={max(devices)}"
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if not f.startswith("--xla_force_host_platform_device_count"))
    env["XLA_FLAGS"] = (env["XLA_FLAGS"] + " " + flag).strip()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory(prefix="parrot-scaling-") as tmp:
        out = os.path.join(tmp, "scaling.json")
        cmd = [sys.executable, "-m", "benchmarks.scaling", suite, ",".join(map(str, devices)),
               out]
        run = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"scaling subprocess failed ({' '.join(cmd)}):\n"
                               f"{run.stderr[-3000:]}")
        with open(out) as f:
            return json.load(f)["records"]


def main(suite: str, devices: str, out: str) -> None:
    """The subprocess's entry (no absl flags: ``benchmarks.run`` owns those)."""
    from benchmarks import common, suites

    settings = suites.get(suite)
    records = scaling_records(settings["scaling"], [int(d) for d in devices.split(",")],
                              settings["repeats"], common.record)
    common.write_result(out, {"records": records})


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: python -m benchmarks.scaling SUITE DEVICES(1,2,4) OUT.json")
    main(*sys.argv[1:])
