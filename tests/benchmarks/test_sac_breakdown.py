"""The SAC update's breakdown: every part timed, with XLA's counts, and bad flags refused."""

import json
import subprocess
import sys

import jax
import numpy as np

from benchmarks import sac_breakdown
from parrot_jax.pretrained.loop import FAST_COMPILE

from tests.benchmarks.test_device_check import ROOT


def test_every_part_is_timed_and_counted():
    result = sac_breakdown.breakdown("tiny", 4, 1)
    parts = result["parts"]
    assert list(parts) == ["augment_both", "trunk_forward", "trunk_forward_backward",
                           "critic_forward_backward", "actor_forward_backward", "update"]
    assert tuple(parts) == sac_breakdown.BASE_PARTS
    assert all(p["seconds"] > 0 and len(p["repeats"]) == 1 for p in parts.values())
    # the update holds a critic and an actor backward pass, the trunk's backward its forward
    assert parts["update"]["flops"] > parts["critic_forward_backward"]["flops"] + \
        parts["actor_forward_backward"]["flops"]
    assert parts["trunk_forward_backward"]["flops"] > parts["trunk_forward"]["flops"] > 0
    text = sac_breakdown.format_table(result)
    assert "tiny networks, batch 4" in text and text.count("\n") == 7


def test_the_variants_do_the_same_work_in_other_layouts():
    found = sac_breakdown.parts(sac_breakdown.NETWORKS["tiny"], 4, variants=True)

    def run(name):  # jitted as the benchmark runs it (XLA's optimisations off: 3x faster
        fn, args = found[name]  # to compile than on, 2-3x faster than running op by op)
        return jax.jit(fn, compiler_options=FAST_COMPILE)(*args)

    twice, stacked = run("trunk_fwd_bwd_twice"), run("trunk_fwd_bwd_2B")
    # one pass over the 2B images: the sum of the two passes' parameter gradients
    np.testing.assert_allclose(jax.tree.leaves(stacked)[0],
                               jax.tree.leaves(twice[0])[0] + jax.tree.leaves(twice[1])[0],
                               rtol=1e-4, atol=1e-4)
    sequential, vmapped = run("trunks_sequential_fwd_bwd"), run("trunks_vmapped_fwd_bwd")
    for a, b in zip(jax.tree.leaves(sequential), jax.tree.leaves(vmapped)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    plain, bf16 = run("update")[0], run("update_precision_bf16")[0]
    assert int(bf16.step) == int(plain.step) == 1
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(bf16.critic_params))
    # the bf16 trunks' update: the same parameter tree, float32, a step taken
    trunks = run("update_bf16_trunks")[0]
    assert int(trunks.step) == 1
    assert jax.tree.map(lambda x: (x.shape, x.dtype), trunks.critic_params) == \
        jax.tree.map(lambda x: (x.shape, x.dtype), plain.critic_params)
    for name in ("update_vmapped_trunks", "update_bf16_vmapped_trunks"):
        state = run(name)[0]
        assert int(state.step) == 1 and "trunks" in state.critic_params
    grads = [run("trunk_forward_backward"), run("trunk_fwd_bwd_bf16_compute")]
    for a, b in zip(*map(jax.tree.leaves, grads)):  # bfloat16's 8-bit mantissa
        np.testing.assert_allclose(b, a, rtol=0.1, atol=0.05 * float(np.abs(a).max()))


def test_the_binary_writes_its_json_and_refuses_a_bad_batch(tmp_path):
    out = tmp_path / "b.json"
    cmd = [sys.executable, "-m", "benchmarks.sac_breakdown", "--network=tiny", "--batch=2",
           "--repeats=1", "--variants", f"--out={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["batch"] == 2 and result["variants"]
    assert {"trunk_fwd_bwd_2B", "update_precision_bf16"} <= set(result["parts"])
    done = subprocess.run(cmd[:3] + ["--batch=0"], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode != 0 and "--batch=0; expected a positive integer" in done.stderr
