"""The device check: one short run on a lent accelerator, every figure in one JSON plus a
markdown summary.

    make device-check                                   # the "device" suite, ~8 minutes
    python -m benchmarks.device_check --tiny --out_dir=/tmp/dc   # CPU, about a minute

Parts, in order (each timed; a part that fails is recorded with its error and the rest
still run, and the files are rewritten after every part and every throughput section, so a
lease cut short still returns what finished; ``--deadline_seconds`` skips, and records as
skipped, what would start after it):
1. ``machine``: devices, platform, library versions;
2. ``correctness``: on the default device, the paper flow's inverse (``f^-1(f(z)) = z``)
   and log-determinant (``log p(a) = log N(z) - log|det df/dz|``); then the device
   against the CPU with float32 matmuls at full precision: the flow's log-likelihood of
   one batch, and one SAC update (its losses and parameters) from the same state and
   batch; every difference next to its tolerance;
3. ``breakdown``: ``benchmarks.sac_breakdown`` with its variants on the paper's networks at
   batch 256: each part of a SAC update timed, and the same work in fewer or cheaper
   kernels (one trunk pass over 2B images, vmapped trunks, bfloat16 precision and trunks);
4. ``kernels``: ``benchmarks.kernel_profile`` of the paper update at batch 256: the device's
   busy time against the wall time, its kernels by time;
5. ``prior_curve``: the paper-config prior trained for ``--curve_seconds`` on a synthetic
   dataset through the real sampler and device prefetcher: NLL against wall clock;
6. ``throughput``: ``benchmarks.run``'s sections at the suite's sizes (``device``: the
   paper's flow and SAC at batch 256 and larger batches, fused dispatches, acting, S
   vmapped SAC agents at once (S = 1, 4, 16), the matmul peak the
   ``achieved_flops_per_s`` are read against; ``env`` and ``e2e`` only
   where pybullet imports), one section at a time; PyTorch references where torch is
   installed (on the GPU when it sees one).

Writes ``OUT_DIR/device_check_{platform}.json`` and ``.md``.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
import traceback

from absl import app, flags

from benchmarks import common, kernel_profile, run, sac_breakdown, suites

_OUT_DIR = flags.DEFINE_string("out_dir", "benchmarks/results", "Where the JSON and .md go.")
_TINY = flags.DEFINE_bool("tiny", False, "Tiny sizes (the quick suite): a CPU smoke run.")
_CURVE_SECONDS = flags.DEFINE_float("curve_seconds", 120.0, "Prior training time.")
_DEADLINE = flags.DEFINE_float("deadline_seconds", 0.0,
                                "Start no part or section after this many seconds (0: none).")
PARTS = ("correctness", "breakdown", "kernels", "prior_curve", "throughput")
_PARTS = flags.DEFINE_list("parts", list(PARTS), f"Any of {', '.join(PARTS)}.")
# --torch (measure the PyTorch references, if installed) is benchmarks.run's flag.

TOLERANCES = {"flow_round_trip": 1e-4, "flow_log_det": 1e-3,
              "flow_log_prob_device_vs_cpu": 1e-3, "sac_losses_device_vs_cpu": 1e-3,
              "sac_params_device_vs_cpu": 1e-4}


def correctness(model: dict, network: dict, batch: int) -> dict:
    """The checks of part 2: {name: {"value": max difference, "tolerance", "ok"}}."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks import learner
    from parrot_jax.agents import sac
    from parrot_jax.flows.prior import init_params, make_flow

    flow = make_flow(model)
    params = init_params(flow, jax.random.key(0))
    # a flow at init is the identity: perturb the parameters so every coupling acts
    params = jax.tree.map(lambda x: x + 0.02 * jnp.sin(jnp.arange(x.size).reshape(x.shape)),
                          params)
    data = learner.flow_batch(batch)
    images, actions = jnp.asarray(data["observations"]), jnp.asarray(data["actions"])
    z = jax.random.normal(jax.random.key(1), actions.shape)

    def apply(method, *args):
        return jax.jit(lambda p, *a: flow.apply({"params": p}, *a, method=method))(params, *args)

    checks = {}
    sampled = apply("sample", z, images)
    back = apply("inverse", sampled, images)
    checks["flow_round_trip"] = float(jnp.max(jnp.abs(back - z)))
    forward, log_det = apply("forward_and_log_det", z, images)
    log_prob = apply("log_prob", forward, images)
    base = -0.5 * jnp.sum(z ** 2 + jnp.log(2 * jnp.pi), axis=-1)
    checks["flow_log_det"] = float(jnp.max(jnp.abs(log_prob - (base - log_det))))

    cpu = jax.devices("cpu")[0]
    with jax.default_matmul_precision("highest"):
        on_device = np.asarray(apply("log_prob", actions, images))
        with jax.default_device(cpu):
            on_cpu = np.asarray(jax.jit(lambda p, a, s: flow.apply(
                {"params": p}, a, s, method="log_prob"))(jax.device_put(params, cpu),
                                                         jax.device_put(actions, cpu),
                                                         jax.device_put(images, cpu)))
        checks["flow_log_prob_device_vs_cpu"] = float(
            np.max(np.abs(on_device - on_cpu) / (1.0 + np.abs(on_cpu))))

        agent = learner.make_agent(learner.rl_config_for("sac", network))
        sac_data = learner.sac_batch(batch, agent.policy_dim)

        def one_update(device):
            with jax.default_device(device):
                state = sac.init_state(agent.networks, agent.hp, jax.random.key(2),
                                       jnp.zeros(learner.IMAGE_SHAPE, jnp.uint8))
                update = jax.jit(lambda s, b: sac.update_step(s, b, networks=agent.networks,
                                                              hp=agent.hp))
                new, metrics = update(state, jax.device_put(sac_data, device))
                return (jax.tree.map(np.asarray, (new.actor_params, new.critic_params)),
                        {k: float(metrics[k]) for k in ("critic_loss", "actor_loss", "q")})

        (params_gpu, losses_gpu), (params_cpu, losses_cpu) = (
            one_update(jax.devices()[0]), one_update(cpu))
    checks["sac_losses_device_vs_cpu"] = max(
        abs(losses_gpu[k] - losses_cpu[k]) / (1.0 + abs(losses_cpu[k])) for k in losses_cpu)
    checks["sac_params_device_vs_cpu"] = float(max(jax.tree.leaves(jax.tree.map(
        lambda a, b: float(np.max(np.abs(a - b))), params_gpu, params_cpu))))
    return {name: {"value": value, "tolerance": TOLERANCES[name],
                   "ok": bool(value <= TOLERANCES[name])} for name, value in checks.items()}


def prior_curve(model: dict, batch: int, seconds: float, episodes: int) -> dict:
    """Part 4: (wall-clock s, steps, validation NLL) points of prior training."""
    import jax

    from parrot_jax import parallel
    from parrot_jax.data import dataset as dataset_lib, sampling, synthetic
    from parrot_jax.data.prefetch import Prefetcher
    from parrot_jax.flows import programs as flow_programs
    from parrot_jax.flows.prior import IMAGE_SHAPE, make_flow

    mesh = parallel.make_mesh()
    programs = flow_programs.compile_programs(make_flow(model), mesh, IMAGE_SHAPE, 1e-4, None,
                                              1, 0.999999)
    points = []
    with tempfile.TemporaryDirectory(prefix="parrot-device-check-") as root:
        synthetic.write_synthetic_dataset(root, episodes)
        dataset = dataset_lib.load_dataset(root, in_memory=True)
        validation = jax.device_put(sampling.BatchSampler(dataset, batch, seed=99).batch(0),
                                    programs.eval_sharding)

        def nll(state):
            totals = programs.evaluate(state.params, validation)
            return float(totals["nll"]) / float(totals["count"])

        state = programs.init(jax.random.key(0))
        with Prefetcher(sampling.BatchSampler(dataset, batch, seed=0), programs.batch_sharding,
                        num_threads=2) as batches:
            state, _ = programs.update(state, next(batches))  # compile
            jax.block_until_ready(state)
            start, steps, next_point = time.perf_counter(), 1, 0.0
            points.append({"seconds": 0.0, "steps": steps, "nll": nll(state)})
            while True:
                state, _ = programs.update(state, next(batches))
                steps += 1
                elapsed = time.perf_counter() - start
                if elapsed >= next_point or elapsed >= seconds:
                    points.append({"seconds": elapsed, "steps": steps, "nll": nll(state)})
                    next_point = elapsed + max(seconds / 12, 1e-3)
                    if elapsed >= seconds:
                        break
    return {"model": model, "batch": batch, "dataset": f"synthetic, {episodes} episodes",
            "learning_rate": 1e-4, "points": points,
            "steps_per_s": points[-1]["steps"] / max(points[-1]["seconds"], 1e-9)}


def check(tiny: bool, curve_seconds: float, use_torch: bool, parts=PARTS, save=None,
          deadline: float = 0.0) -> dict:
    """Runs the machine description and ``parts``; returns the result (JSON-ready).

    ``save(result)`` is called after every part and every throughput section, so what
    finished survives a run cut short; with ``deadline`` > 0 nothing starts once that many
    seconds have passed, and what did not start is listed under ``skipped``.
    """
    import jax

    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; expected some of {PARTS}")
    suite = "quick" if tiny else "device"
    model = suites.TINY_FLOW if tiny else suites.PAPER_FLOW
    network = suites.TINY_SAC if tiny else suites.PAPER_SAC
    devices = jax.devices()
    result = {"suite": suite, "machine": common.machine(),
              "devices": {"platform": devices[0].platform, "count": len(devices),
                          "kind": devices[0].device_kind},
              "versions": common.versions("jax", "jaxlib", "flax", "optax", "distrax",
                                          "orbax-checkpoint", "numpy", "pybullet", "torch"),
              "part_seconds": {}, "errors": {}, "skipped": []}
    sections = ["peak", "flow", "sac", "acting", "seeds"]
    if importlib.util.find_spec("pybullet") is not None:
        sections += ["env", "e2e"]
    began = time.perf_counter()
    save = save or (lambda _: None)

    def late(name: str) -> bool:
        if deadline > 0 and time.perf_counter() - began > deadline:
            result["skipped"].append(name)
            return True
        return False

    def attempt(name: str, part, keep: bool = True) -> None:
        """Runs ``part()``, its value kept as ``result[name]`` (with ``keep``)."""
        start = time.perf_counter()
        try:
            value = part()
            if keep:
                result[name] = value
        except Exception as error:  # noqa: BLE001 (a lease must return the other parts)
            result["errors"][name] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        result["part_seconds"][name] = time.perf_counter() - start
        save(result)

    def throughput_section(section: str) -> None:
        measured = run.run_suite(suite, [section], use_torch)
        if "throughput" not in result:
            result["throughput"] = dict(measured, sections=[], section_seconds={},
                                        records=[])
        merged = result["throughput"]
        merged["sections"].append(section)
        merged["section_seconds"].update(measured["section_seconds"])
        merged["records"] += measured["records"]

    runners = {
        "correctness": lambda: correctness(model, network, 8 if tiny else 64),
        "breakdown": lambda: sac_breakdown.breakdown("tiny" if tiny else "paper",
                                                     4 if tiny else 256, 1 if tiny else 5,
                                                     variants=True),
        "kernels": lambda: kernel_profile.profile("tiny" if tiny else "paper",
                                                  4 if tiny else 256, "update",
                                                  2 if tiny else 20, 10 if tiny else 40),
        "prior_curve": lambda: prior_curve(model, 16 if tiny else 256, curve_seconds,
                                           20 if tiny else 400),
    }
    for name in (p for p in PARTS if p in parts):
        if name != "throughput":
            if not late(name):
                attempt(name, runners[name])
            continue
        for section in sections:  # one at a time: a failure or a timeout loses one
            if not late(f"throughput/{section}"):
                attempt(f"throughput/{section}", lambda s=section: throughput_section(s),
                        keep=False)
    return result


def markdown(result: dict) -> str:
    """The summary: machine, the correctness table, the goals and headline figures."""
    d = result["devices"]
    lines = [f"# Device check ({result['suite']} suite)", "",
             f"{d['count']} x {d['kind']} ({d['platform']}); "
             f"{result['machine']['cpu']}, {result['machine']['cores']} cores; "
             + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), ""]
    if "correctness" in result:
        lines += ["| check | max difference | tolerance | ok |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['value']:.3g} | {v['tolerance']:.0e} | {'yes' if v['ok'] else 'NO'} |"
                  for k, v in result["correctness"].items()]
        lines.append("")
    if "breakdown" in result:
        lines += ["```", sac_breakdown.format_table(result["breakdown"]), "```", ""]
    if "kernels" in result:
        lines += ["```", kernel_profile.format_summary(result["kernels"]), "```", ""]
    if "throughput" in result:
        lines += ["```", run.summary(result["throughput"]),
                  run.format_table(result["throughput"]["records"]), "```", ""]
    if "prior_curve" in result:
        curve = result["prior_curve"]
        lines += [f"Prior training ({curve['dataset']}, batch {curve['batch']}): "
                  f"{curve['steps_per_s']:.1f} steps/s", "",
                  "| seconds | steps | validation NLL |", "|---|---|---|"]
        lines += [f"| {p['seconds']:.1f} | {p['steps']} | {p['nll']:.3f} |"
                  for p in curve["points"]]
        lines.append("")
    for name, error in result["errors"].items():
        lines.append(f"**{name} failed**: {error}")
    if result.get("skipped"):
        lines.append("Skipped (past the deadline): " + ", ".join(result["skipped"]))
    lines.append("Seconds per part: " + ", ".join(
        f"{k} {v:.0f}" for k, v in result["part_seconds"].items()))
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    from experiments.common import quiet_orbax
    from parrot_jax import io

    quiet_orbax()
    use_torch = flags.FLAGS.torch and run.torch_available()
    os.makedirs(_OUT_DIR.value, exist_ok=True)
    paths = []

    def save(result: dict) -> None:  # atomic rewrites: a cut-short run leaves the last one
        if not paths:
            base = os.path.join(_OUT_DIR.value,
                                f"device_check_{result['devices']['platform']}")
            paths.append(base + ("_tiny" if _TINY.value else ""))
        io.write_json(paths[0] + ".json", result)
        io.write_text(paths[0] + ".md", markdown(result))

    result = check(_TINY.value, _CURVE_SECONDS.value, use_torch, _PARTS.value, save,
                   _DEADLINE.value)
    save(result)
    print(markdown(result))


if __name__ == "__main__":
    app.run(main)
