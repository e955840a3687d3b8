"""Where a SAC update's time goes: its parts timed one by one on the default device.

    python -m benchmarks.sac_breakdown [--network=paper|cpu] [--batch=256] [--variants] \
        [--out=FILE]

Each part is one jitted function on the paper's (or the ``:cpu``) networks at ``--batch``:
the random-shift augmentation of both image batches, the conv trunk forward and forward +
backward (parameters' gradient), the critic's and the actor's forward + backward, and the
whole update (critic, actor, temperature, target). Per part: the median seconds per call
(after a compile and a warm-up, each repeat ended by ``block_until_ready``), XLA's FLOP
and byte counts, and the rates they imply, so a part far below the device's matmul rate
and its memory bandwidth shows where the update is bound (launches, layout, algorithm).

``--variants`` adds the same work laid out in fewer or cheaper kernels, to say what a
change to the update would gain before making it:

- ``trunk_fwd_bwd_twice`` against ``trunk_fwd_bwd_2B``: the trunk over ``obs`` and
  ``next_obs`` as two passes of B, or as one pass over the 2B stacked images;
- ``trunks_sequential_fwd_bwd`` against ``trunks_vmapped_fwd_bwd``: the paper critic's two
  trunks one after the other (the layout it uses) or as one ``vmap`` (a grouped
  convolution);
- ``trunk_fwd_bwd_precision_bf16`` and ``update_precision_bf16``: the trunk's forward +
  backward and the whole update traced under ``jax.default_matmul_precision("bfloat16")``
  (convolutions and matmuls asked for bfloat16 inputs; parameters and accumulation stay
  float32; whether a backend honours it for convolutions is what the time says);
- ``trunk_fwd_bwd_bf16_compute`` and ``update_bf16_trunks``: the trunk, and the whole
  update with every trunk, at ``network.trunk_dtype="bfloat16"`` (convolutions, pools and
  ReLUs computed in bfloat16 from float32 parameters; features back in float32);
- ``update_vmapped_trunks`` and ``update_bf16_vmapped_trunks`` (networks with a trunk
  per head): the whole update with ``network.vmap_trunks``, in float32 and bfloat16.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks import common, learner, suites
from parrot_jax.agents import sac
from parrot_jax.agents.networks import make_trunk
from parrot_jax.networks.augment import random_crop

NETWORKS = {"paper": suites.PAPER_SAC, "cpu": suites.CPU_SAC, "tiny": suites.TINY_SAC}


def time_jitted(fn, args, repeats: int) -> dict:
    """Median seconds per call of the jitted ``fn(*args)`` and XLA's cost counts."""
    jitted = jax.jit(fn)
    compiled = jitted.lower(*args).compile()
    cost = learner.cost_analysis(compiled)
    jax.block_until_ready(compiled(*args))  # warm-up

    def run(n: int) -> float:
        start = time.perf_counter()
        out = None
        for _ in range(n):
            out = compiled(*args)
        jax.block_until_ready(out)
        return time.perf_counter() - start

    steps = common.calibrate(run, 1)
    seconds = [run(steps) / steps for _ in range(repeats)]
    median = statistics.median(seconds)
    flops, moved = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
    return {"seconds": median, "repeats": seconds, "flops": flops, "bytes": moved,
            "flops_per_s": flops / median, "bytes_per_s": moved / median}


# the parts timed without ``variants``
BASE_PARTS = ("augment_both", "trunk_forward", "trunk_forward_backward",
              "critic_forward_backward", "actor_forward_backward", "update")


def _update(network: dict, batch: int):
    """(networks, update function, (state, batch)) of a SAC agent with ``network``'s
    networks on one batch of random data."""
    agent = learner.make_agent(learner.rl_config_for("sac", network))
    networks, hp = agent.networks, agent.hp
    data = jax.device_put(learner.sac_batch(batch, agent.policy_dim))
    state = sac.init_state(networks, hp, jax.random.key(0), data["observations"][0])
    return (networks, lambda s, b: sac.update_step(s, b, networks=networks, hp=hp),
            (state, data))


def parts(network: dict, batch: int, variants: bool = False) -> dict:
    """{part: (fn, args)}: the update's pieces on one batch of random data (with
    ``variants``, also the layouts of the module docstring)."""
    networks, update, (state, data) = _update(network, batch)
    key = jax.random.key(1)
    obs, next_obs, actions = data["observations"], data["next_observations"], data["actions"]
    channels = networks.critic.channels
    trunk = make_trunk(True, channels)
    trunk_params = trunk.init(jax.random.key(2), obs[:1])["params"]

    def trunk_loss(params, images):
        return jnp.sum(jnp.square(trunk.apply({"params": params}, images)))

    def critic_loss(params, obs, actions):
        return networks.q_values(params, obs, actions).sum()

    def actor_loss(params, critic_params, obs, key):
        _, log_prob = networks.policy(params, critic_params, obs).sample_and_log_prob(seed=key)
        return log_prob.sum()

    found = {
        "augment_both": (lambda k, o, n: (random_crop(k, o, 4),
                                          random_crop(jax.random.fold_in(k, 1), n, 4)),
                         (key, obs, next_obs)),
        "trunk_forward": (lambda p, o: trunk.apply({"params": p}, o), (trunk_params, obs)),
        "trunk_forward_backward": (jax.grad(trunk_loss), (trunk_params, obs)),
        "critic_forward_backward": (jax.grad(critic_loss),
                                    (state.critic_params, obs, actions)),
        "actor_forward_backward": (jax.grad(actor_loss),
                                   (state.actor_params, state.critic_params, obs, key)),
        "update": (update, (state, data)),
    }
    if not variants:
        return found
    two = jax.tree.map(lambda *p: jnp.stack(p), trunk_params,
                       trunk.init(jax.random.key(3), obs[:1])["params"])

    def sequential_loss(stacked, images):
        return sum(trunk_loss(jax.tree.map(lambda p, i=i: p[i], stacked), images)
                   for i in range(2))

    def vmapped_loss(stacked, images):
        return jax.vmap(trunk_loss, in_axes=(0, None))(stacked, images).sum()

    bf16_trunk = make_trunk(True, channels, dtype="bfloat16")

    def bf16_loss(params, images):
        return jnp.sum(jnp.square(bf16_trunk.apply({"params": params}, images)))

    def in_bf16(fn):
        def traced(*args):
            with jax.default_matmul_precision("bfloat16"):
                return fn(*args)
        return traced

    found.update({
        "trunk_fwd_bwd_twice": (lambda p, o, n: (jax.grad(trunk_loss)(p, o),
                                                 jax.grad(trunk_loss)(p, n)),
                                (trunk_params, obs, next_obs)),
        "trunk_fwd_bwd_2B": (lambda p, o, n: jax.grad(trunk_loss)(p, jnp.concatenate([o, n])),
                             (trunk_params, obs, next_obs)),
        "trunks_sequential_fwd_bwd": (jax.grad(sequential_loss), (two, obs)),
        "trunks_vmapped_fwd_bwd": (jax.grad(vmapped_loss), (two, obs)),
        "trunk_fwd_bwd_precision_bf16": (in_bf16(jax.grad(trunk_loss)), (trunk_params, obs)),
        "update_precision_bf16": (in_bf16(found["update"][0]), (state, data)),
        "trunk_fwd_bwd_bf16_compute": (jax.grad(bf16_loss), (trunk_params, obs)),
        "update_bf16_trunks": _update({**network, "trunk_dtype": "bfloat16"}, batch)[1:],
    })
    if network.get("shared_trunk"):
        return found
    found.update({
        "update_vmapped_trunks": _update({**network, "vmap_trunks": True}, batch)[1:],
        "update_bf16_vmapped_trunks": _update({**network, "vmap_trunks": True,
                                               "trunk_dtype": "bfloat16"}, batch)[1:],
    })
    return found


def breakdown(network_name: str, batch: int, repeats: int, variants: bool = False) -> dict:
    devices = jax.devices()
    result = {"network": network_name, "batch": batch, "variants": variants,
              "machine": common.machine(),
              "devices": {"platform": devices[0].platform, "kind": devices[0].device_kind},
              "versions": common.versions("jax", "jaxlib", "flax"), "parts": {}}
    for name, (fn, args) in parts(NETWORKS[network_name], batch, variants).items():
        result["parts"][name] = time_jitted(fn, args, repeats)
    return result


def format_table(result: dict) -> str:
    lines = [f"SAC update parts, {result['network']} networks, batch {result['batch']}, "
             f"{result['devices']['kind']}",
             f"{'part':<28}{'ms':>9}{'GFLOP':>9}{'TFLOP/s':>9}{'MB':>9}{'GB/s':>9}"]
    for name, p in result["parts"].items():
        lines.append(f"{name:<28}{p['seconds'] * 1e3:>9.3f}{p['flops'] / 1e9:>9.2f}"
                     f"{p['flops_per_s'] / 1e12:>9.2f}{p['bytes'] / 1e6:>9.1f}"
                     f"{p['bytes_per_s'] / 1e9:>9.0f}")
    return "\n".join(lines)


def main(argv):
    del argv
    f = flags.FLAGS
    if f.batch < 1:
        raise app.UsageError(f"--batch={f.batch}; expected a positive integer")
    result = breakdown(f.network, f.batch, f.repeats, f.variants)
    print(format_table(result))
    if f.out:
        common.write_result(f.out, result)


if __name__ == "__main__":
    # defined here, not at import: benchmarks.run (imported beside this module by the
    # tests) defines --out too
    flags.DEFINE_enum("network", "paper", list(NETWORKS), "The SAC networks.")
    flags.DEFINE_integer("batch", 256, "Batch size.")
    flags.DEFINE_integer("repeats", 5, "Timed repeats (the median is reported).")
    flags.DEFINE_bool("variants", False, "Also time the layouts of the module docstring.")
    flags.DEFINE_string("out", None, "JSON file to write (atomically).")
    app.run(main)
