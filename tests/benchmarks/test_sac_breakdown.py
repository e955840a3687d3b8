"""The SAC update's breakdown: every part timed, with XLA's counts, and bad flags refused."""

import json
import subprocess
import sys

from benchmarks import sac_breakdown

from tests.benchmarks.test_device_check import ROOT


def test_every_part_is_timed_and_counted():
    result = sac_breakdown.breakdown("tiny", 4, 1)
    parts = result["parts"]
    assert list(parts) == ["augment_both", "trunk_forward", "trunk_forward_backward",
                           "critic_forward_backward", "actor_forward_backward", "update"]
    assert all(p["seconds"] > 0 and len(p["repeats"]) == 1 for p in parts.values())
    # the update holds a critic and an actor backward pass, the trunk's backward its forward
    assert parts["update"]["flops"] > parts["critic_forward_backward"]["flops"] + \
        parts["actor_forward_backward"]["flops"]
    assert parts["trunk_forward_backward"]["flops"] > parts["trunk_forward"]["flops"] > 0
    text = sac_breakdown.format_table(result)
    assert "tiny networks, batch 4" in text and text.count("\n") == 7


def test_the_binary_writes_its_json_and_refuses_a_bad_batch(tmp_path):
    out = tmp_path / "b.json"
    cmd = [sys.executable, "-m", "benchmarks.sac_breakdown", "--network=tiny", "--batch=2",
           "--repeats=1", f"--out={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.read_text())["batch"] == 2
    done = subprocess.run(cmd[:3] + ["--batch=0"], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode != 0 and "--batch=0; expected a positive integer" in done.stderr
