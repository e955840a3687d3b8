"""The throughput suite: env, data, flow, SAC, acting, end to end, scaling, vs PyTorch.

    python -m benchmarks.run --suite=full --out=benchmarks/results/cpu_full.json
    python -m benchmarks.run --suite=quick --sections=flow,sac

Sections (sizes in ``benchmarks/suites.py``):
- peak: FLOP/s of a float32 matmul on the JAX device, the practical peak that the
  learners' ``achieved_flops_per_s`` are read against;
- env: steps/s of one env and of the pool at 1..N workers;
- data: loader samples/s (``BatchSampler`` on an in-memory synthetic dataset, and
  through the device ``Prefetcher``);
- flow: prior training samples/s (maximum-likelihood Adam steps), JAX and PyTorch;
- sac: SAC updates/s with image observations, JAX and PyTorch;
- acting: latency and throughput of prior + policy on a batch of observations, JAX and
  PyTorch (host to host: uint8 images in, actions out);
- e2e: env steps/s of the full PARROT training loop next to the env-only rate;
- scaling: flow and SAC updates/s on 1, 2, 4 devices (global and per-device batch fixed);
- seeds: S independent SAC agents updated by one program (``agents.seeds``, vmapped or
  mapped): total updates/s, and its ratio to S times one agent's rate in the ordinary
  single-agent program (the accelerator goal: >= 0.8 until the device saturates).

Every figure is a median over ``repeats`` after warm-up (JAX: ``block_until_ready``;
PyTorch on CPU is synchronous). JAX and PyTorch run the same architecture, the same
update and the same batch, one after the other in this process with the same threads;
``*/speedup_vs_torch`` records are JAX rate / PyTorch rate. The JSON holds the machine,
JAX devices, versions, date and every record's config; a table goes to stdout.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import tempfile
import time

from absl import app, flags

from benchmarks import common, suites

SECTIONS = ("peak", "env", "data", "flow", "sac", "acting", "e2e", "scaling", "seeds")
GOALS = {"cpu": {"flow_speedup_vs_torch": 3.0, "sac_speedup_vs_torch": 3.0,
                 "e2e_training_fraction_of_env_only": 0.8},
         "gpu": {"sac_updates_per_s_paper_batch_256": 2000,
                 "flow_samples_per_s_paper_batch_256": 500_000}}

_SUITE = flags.DEFINE_enum("suite", "quick", list(suites.SUITES), "Sizes: quick or full.")
_OUT = flags.DEFINE_string("out", None, "JSON file to write (atomically).")
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS), f"Any of {', '.join(SECTIONS)}.")
_TORCH = flags.DEFINE_bool("torch", True, "Measure the PyTorch references (if installed).")


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


# Sections. Each returns a list of records (common.record).

def peak_section(s: dict, repeats: int) -> list[dict]:
    import jax

    from benchmarks import learner

    timing = learner.matmul_flops_per_s(s["size"], s["steps"], repeats)
    rate = timing.flops_per_call / timing.seconds_per_call
    return [common.record("peak/matmul_f32_flops_per_s", rate, "FLOP/s",
                          {"size": s["size"], "device_kind": jax.devices()[0].device_kind},
                          [timing.flops_per_call / r for r in timing.repeats])]


def env_section(s: dict, repeats: int) -> list[dict]:
    from benchmarks import env_rates

    config = {"env": s["env"], "steps": s["steps"], "actions": "uniform random"}
    single, reps = env_rates.single_env_rate(s["env"], s["steps"], repeats)
    records = [common.record("env/single_steps_per_s", single, "steps/s", config, reps)]
    for w in s["workers"]:
        e = s["envs_per_worker"]
        rate, reps = env_rates.pool_rate(s["env"], w, e, s["steps"], repeats)
        records.append(common.record(
            f"env/pool_{w}_workers_{e}_envs_each_steps_per_s", rate, "steps/s",
            dict(config, workers=w, envs=w * e, scaling=rate / (w * single)), reps))
    return records


def data_section(s: dict, repeats: int) -> list[dict]:
    import jax

    from parrot_jax import parallel
    from parrot_jax.data import dataset as dataset_lib, sampling, synthetic
    from parrot_jax.data.prefetch import Prefetcher

    records = []
    with tempfile.TemporaryDirectory(prefix="parrot-bench-data-") as root:
        synthetic.write_synthetic_dataset(root, s["episodes"])
        dataset = dataset_lib.load_dataset(root, in_memory=True)
        config = {"episodes": s["episodes"], "frames": dataset.num_steps,
                  "batch": s["batch_size"], "batches": s["batches"], "in_memory": True}
        sampler = sampling.BatchSampler(dataset, s["batch_size"], seed=0)
        counter = iter(range(1 << 62))

        def host() -> int:
            for _ in range(s["batches"]):
                sampler.batch(next(counter))
            return s["batches"] * s["batch_size"]

        rate, reps = common.median_rate(host, repeats)
        records.append(common.record("data/loader_samples_per_s", rate, "samples/s",
                                     dict(config, sampler="BatchSampler.batch"), reps))
        sharding = parallel.batch_sharding(parallel.make_mesh())
        with Prefetcher(sampling.BatchSampler(dataset, s["batch_size"], seed=1), sharding,
                        num_threads=2) as prefetcher:

            def device() -> int:
                for _ in range(s["batches"]):
                    jax.block_until_ready(next(prefetcher))
                return s["batches"] * s["batch_size"]

            rate, reps = common.median_rate(device, repeats)
        records.append(common.record(
            "data/device_prefetch_samples_per_s", rate, "samples/s",
            dict(config, sampler="Prefetcher, 2 threads", devices=jax.device_count()), reps))
    return records


def _learner_records(kind: str, label: str, batch: int, fused: int, timing, torch_timing,
                     config: dict, fast_compile: bool) -> list[dict]:
    """JAX (and PyTorch) samples/s or updates/s records plus their ratio."""
    unit = "samples/s" if kind == "flow" else "updates/s"
    scale = batch if kind == "flow" else 1
    name = f"{kind}/{label}_batch_{batch}" + (f"_fused_{fused}" if fused > 1 else "")
    config = dict(config, batch=batch, fused_steps_per_dispatch=fused,
                  xla_fast_compile=fast_compile)
    flops = timing.flops_per_call  # XLA's count of one step; the same work in PyTorch

    def described(t):
        if not flops:
            return config
        return dict(config, flops_per_step=flops, achieved_flops_per_s=flops / t.seconds_per_call)

    records = [common.record(f"{name}/jax_{unit.replace('/', '_per_')}",
                             scale / timing.seconds_per_call, unit, described(timing),
                             [scale / r for r in timing.repeats])]
    if torch_timing is not None:
        records.append(common.record(
            f"{name}/torch_{unit.replace('/', '_per_')}", scale / torch_timing.seconds_per_call,
            unit, described(torch_timing), [scale / r for r in torch_timing.repeats]))
        records.append(common.record(
            f"{name}/speedup_vs_torch", torch_timing.seconds_per_call / timing.seconds_per_call,
            "x", config, []))
    return records


def flow_section(entries, repeats: int, use_torch: bool, fast_compile: bool) -> list[dict]:
    from benchmarks import learner
    from parrot_jax import parallel

    mesh = parallel.make_mesh(1)
    records = []
    for label, model, batch, steps, fused in entries:
        timing = learner.time_flow(model, batch, mesh, steps, repeats, fused,
                                   fast_compile=fast_compile)
        torch_timing = None
        if use_torch and fused == 1:
            from benchmarks import reference

            torch_timing = reference.time_flow(model, batch, steps, repeats)
        records += _learner_records("flow", label, batch, fused, timing, torch_timing,
                                    {"model": dict(model), "learning_rate": 1e-4,
                                     "devices": 1}, fast_compile)
    return records


def sac_section(entries, repeats: int, use_torch: bool, fast_compile: bool) -> list[dict]:
    from benchmarks import learner
    from parrot_jax import parallel

    mesh = parallel.make_mesh(1)
    records = []
    for label, network, batch, steps, fused in entries:
        config = learner.rl_config_for("sac", network)
        timing = learner.time_sac(config, batch, mesh, steps, repeats, fused, fast_compile)
        torch_timing = None
        if use_torch and fused == 1:
            from benchmarks import reference

            torch_timing = reference.time_sac(config, batch, steps, repeats)
        records += _learner_records("sac", label, batch, fused, timing, torch_timing,
                                    {"network": config.network.to_dict(),
                                     "sac": config.sac.to_dict(), "devices": 1,
                                     "observations": "48x48x3 uint8 images"}, fast_compile)
    return records


def seeds_section(entries, repeats: int, fast_compile: bool) -> list[dict]:
    from benchmarks import learner
    from parrot_jax import parallel

    mesh = parallel.make_mesh(1)
    records = []
    singles = {}  # (label, batch) -> one agent's updates/s in the ordinary program
    for label, network, batch, steps, agents, over in entries:
        config = learner.rl_config_for("sac", network)
        described = {"network": config.network.to_dict(), "batch": batch, "devices": 1,
                     "xla_fast_compile": fast_compile}
        if (label, batch) not in singles:
            timing = learner.time_sac(config, batch, mesh, steps, repeats, 1, fast_compile)
            singles[label, batch] = 1 / timing.seconds_per_call
            records.append(common.record(
                f"seeds/{label}_batch_{batch}_single/jax_updates_per_s", singles[label, batch],
                "updates/s", described, [1 / r for r in timing.repeats]))
        for s in agents:
            timing = learner.time_sac_seeds(config, batch, mesh, s, steps, repeats,
                                            fast_compile, over)
            rate = s / timing.seconds_per_call
            config_s = dict(described, agents=s, over=over)
            name = f"seeds/{label}_{over}_batch_{batch}_{s}_agents"
            records.append(common.record(f"{name}/jax_updates_per_s", rate, "updates/s",
                                         config_s, [s / r for r in timing.repeats]))
            records.append(common.record(f"{name}/fraction_of_independent",
                                         rate / (s * singles[label, batch]), "ratio",
                                         config_s, []))
    return records


def acting_section(s: dict, repeats: int, use_torch: bool) -> list[dict]:
    from benchmarks import learner

    config = learner.rl_config_for("parrot", s["network"])
    agent, params = learner.parrot_acting(config, s["prior_model"])
    records = []
    for batch in s["batches"]:
        timing = learner.time_acting(agent, params, batch, s["steps"], repeats)
        described = {"network": config.network.to_dict(), "prior_model": dict(s["prior_model"]),
                     "batch": batch, "what": "z ~ pi(.|s), a = prior.sample(z, s); host to host"}
        if timing.flops_per_call:
            described["flops_per_call"] = timing.flops_per_call
        name = f"acting/parrot_batch_{batch}"
        records.append(common.record(f"{name}/jax_latency_ms", timing.seconds_per_call * 1e3,
                                     "ms", described, [r * 1e3 for r in timing.repeats]))
        records.append(common.record(f"{name}/jax_observations_per_s",
                                     batch / timing.seconds_per_call, "observations/s",
                                     described, [batch / r for r in timing.repeats]))
        if use_torch:
            from benchmarks import reference

            torch_timing = reference.time_acting(config, s["prior_model"], batch, s["steps"],
                                                 repeats)
            records.append(common.record(f"{name}/torch_latency_ms",
                                         torch_timing.seconds_per_call * 1e3, "ms", described,
                                         [r * 1e3 for r in torch_timing.repeats]))
            records.append(common.record(
                f"{name}/speedup_vs_torch",
                torch_timing.seconds_per_call / timing.seconds_per_call, "x", described, []))
    return records


def e2e_section(s: dict, repeats: int) -> list[dict]:
    from benchmarks import end_to_end

    return end_to_end.end_to_end_records(s, repeats, common.record)


def scaling_section(suite: str, s: dict) -> list[dict]:
    from benchmarks import scaling

    return scaling.run_in_subprocess(suite, list(s["devices"]))


# The suite.

def run_suite(suite: str, sections, use_torch: bool = True) -> dict:
    """Runs ``sections`` of ``suite``; returns the result (machine, devices, versions,
    goals, records)."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; expected some of {SECTIONS}")
    settings = suites.get(suite)
    use_torch = use_torch and torch_available()
    from parrot_jax.networks import conv

    if use_torch and conv.backend() == "onednn":
        # oneDNN's GNU OpenMP threads and PyTorch's own OpenMP runtime spin in one process
        # and slow each other (PyTorch's acting at 256 observations: 64 -> 128 ms).
        raise ValueError(f"{conv.ENV_VAR}=onednn with the PyTorch references: measure them in "
                         "separate runs (this one with --notorch, PyTorch's without "
                         f"{conv.ENV_VAR}), as two OpenMP runtimes in one process slow both")
    threads = settings["torch_threads"] or os.cpu_count() or 1
    if use_torch:
        from benchmarks import reference

        reference.configure(threads)
    repeats = settings["repeats"]
    records, seconds = [], {}
    for section in (s for s in SECTIONS if s in sections):
        start = time.perf_counter()
        if section == "peak":
            records += peak_section(settings["peak"], repeats)
        elif section == "env":
            records += env_section(settings["env"], repeats)
        elif section == "data":
            records += data_section(settings["data"], repeats)
        elif section == "flow":
            records += flow_section(settings["flow"], repeats, use_torch,
                                    settings["fast_compile"])
        elif section == "sac":
            records += sac_section(settings["sac"], repeats, use_torch,
                                   settings["fast_compile"])
        elif section == "acting":
            records += acting_section(settings["acting"], repeats, use_torch)
        elif section == "e2e":
            records += e2e_section(settings["e2e"], repeats)
        elif section == "seeds":
            records += seeds_section(settings["seeds"], repeats, settings["fast_compile"])
        else:
            records += scaling_section(suite, settings["scaling"])
        seconds[section] = time.perf_counter() - start
    import jax

    devices = jax.devices()
    platform = devices[0].platform
    return {
        "suite": suite, "sections": [s for s in SECTIONS if s in sections],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": common.machine(),
        "devices": {"platform": platform, "count": len(devices),
                    "kind": devices[0].device_kind},
        "versions": common.versions("jax", "jaxlib", "flax", "optax", "distrax", "numpy",
                                    "pybullet", "torch", "onednn-cpu-gomp"),
        "torch": {"used": use_torch, "threads": threads if use_torch else None},
        # PARROT_JAX_CONV: XLA's convolutions or oneDNN's (parrot_jax/networks/conv.py)
        "conv_backend": conv.backend(),
        "goals": GOALS["gpu" if platform == "gpu" else "cpu"],
        "section_seconds": seconds, "records": records,
    }


def format_table(records: list[dict]) -> str:
    width = max((len(r["name"]) for r in records), default=10)
    lines = []
    for r in records:
        value = r["value"]
        text = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
        lines.append(f"{r['name']:<{width}}  {text:>12} {r['unit']}")
    return "\n".join(lines)


def summary(result: dict) -> str:
    """One line per goal: the best measured figure next to it."""
    by_name = {r["name"]: r["value"] for r in result["records"]}

    def best(suffix: str, prefix: str):
        values = [v for n, v in by_name.items() if n.startswith(prefix) and n.endswith(suffix)]
        return max(values) if values else None

    lines = []
    for goal, target in result["goals"].items():
        if goal == "flow_speedup_vs_torch":
            got = best("speedup_vs_torch", "flow/paper")
        elif goal == "sac_speedup_vs_torch":
            got = best("speedup_vs_torch", "sac/paper")
        elif goal == "e2e_training_fraction_of_env_only":
            got = by_name.get("e2e/parrot_training_fraction_of_env_only")
        elif goal == "sac_updates_per_s_paper_batch_256":
            got = best("jax_updates_per_s", "sac/paper_batch_256")
        else:
            got = best("jax_samples_per_s", "flow/paper_batch_256")
        shown = "not measured" if got is None else f"{got:,.2f}"
        lines.append(f"goal {goal}: {target:,} -> {shown}")
    return "\n".join(lines)


def main(argv):
    del argv
    from experiments.common import quiet_orbax

    quiet_orbax()
    result = run_suite(_SUITE.value, _SECTIONS.value, _TORCH.value)
    print(format_table(result["records"]))
    print(summary(result))
    if _OUT.value:
        common.write_result(_OUT.value, result)


if __name__ == "__main__":
    app.run(main)
