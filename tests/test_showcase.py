"""Smoke run of the showcase binary with tiny settings: every output exists and parses."""

import json
import os
import subprocess
import sys

from PIL import Image

from parrot_jax.envs import ENV_IDS


def test_showcase_writes_outputs(tmp_path):
    cmd = [sys.executable, "-m", "experiments.showcase_envs", f"--workdir={tmp_path}",
           "--episodes=2", "--horizon=6", "--workers=2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr[-2000:]
    sheet = Image.open(tmp_path / "contact_sheet.png")
    rows = -(-len(ENV_IDS) // 5)  # five tasks per row
    assert sheet.width == 5 * 192 and sheet.height == rows * (192 + 14)
    gifs = sorted(os.listdir(tmp_path / "gifs"))
    assert len(gifs) == len(ENV_IDS)
    assert Image.open(tmp_path / "gifs" / gifs[0]).n_frames == 7  # reset frame + 6 steps
    table = json.loads((tmp_path / "scripted_success.json").read_text())
    assert [t["env_id"] for t in table["tasks"]] == list(ENV_IDS)
    assert all(t["episodes"] == 2 and 0 <= t["success_rate"] <= 1 for t in table["tasks"])
    assert "PickUpCan" in out.stdout
