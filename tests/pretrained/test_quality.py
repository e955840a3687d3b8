"""The pretrained models' quality report: its figures on hand-checkable decoders, and the
binary on the held-out split of a run's own dataset."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from parrot_jax.data.synthetic import write_synthetic_dataset
from parrot_jax.pretrained import quality
from parrot_jax.pretrained.cvae import write_initial_cvae
from parrot_jax.pretrained.trajvae import write_initial_trajvae
from parrot_jax.pretrained.vae import write_initial_vae

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_decode_report_figures():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(500, 3)).astype(np.float32)
    train_mean = np.array([0.5, 0.0, -0.5], np.float32)
    # A decoder that returns its latent: z = 0 leaves each target's square, and N(0, I)
    # samples independent of the targets add their variance (1) to the targets'.
    report = quality.decode_report(lambda z: z, targets, train_mean, latent_dim=3)
    assert report["samples"] == 500
    assert report["mse_z0"] == pytest.approx(np.mean(targets ** 2))
    assert report["mse_mean"] == pytest.approx(np.mean((targets - train_mean) ** 2))
    assert report["mse_normal"] == pytest.approx(np.mean(targets ** 2) + 1.0, rel=0.1)
    assert report["mse_shuffled"] == pytest.approx(2 * targets.var(0).mean(), rel=0.1)
    assert report["spread_z0"] == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(report["spread_normal"], 1.0, rtol=0.1)
    np.testing.assert_allclose(report["data_spread"], targets.std(0), rtol=1e-3)
    # A decoder that ignores z and returns the data: no error at all.
    exact = quality.decode_report(lambda z: targets, targets, train_mean, latent_dim=2)
    assert exact["mse_z0"] == exact["mse_normal"] == 0.0


def _run_dir(tmp_path, kind, write):
    data = tmp_path / "data"
    if not data.exists():
        write_synthetic_dataset(str(data), num_episodes=40, episode_length=25)
    workdir = write(str(tmp_path / kind))
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        config = json.load(f)
    # the fields experiments.pretrain records beside the model's
    config.update(dataset=str(data), max_episodes=0, validation_fraction=0.25, seed=0)
    with open(path, "w") as f:
        json.dump(config, f)
    return workdir


@pytest.mark.parametrize("kind", ["cvae", "trajvae", "vae"])
def test_binary_reports_on_the_held_out_episodes(tmp_path, kind):
    tiny = {"cvae": lambda d: write_initial_cvae(d, {
                "latent_dim": 7, "encoder_hidden": (16,), "decoder_hidden": (16,),
                "image_channels": (4, 4, 4), "image_hidden": (16,), "embedding": 8}),
            "trajvae": lambda d: write_initial_trajvae(d, {
                "latent_dim": 7, "horizon": 25, "encoder_hidden": (16,),
                "decoder_hidden": (16,)}),
            "vae": lambda d: write_initial_vae(d, {"channels": 4, "num_residual": 1,
                                                   "latent_dim": 4})}[kind]
    workdir = _run_dir(tmp_path, kind, tiny)
    done = subprocess.run([sys.executable, "-m", "experiments.pretrained_quality",
                           f"--workdir={workdir}", "--samples=64"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(workdir, "quality.json")) as f:
        report = json.load(f)
    assert report["kind"] == kind and report["step"] == 0
    assert report["validation_episodes"] == 10  # 25% of 40
    if kind == "vae":
        assert report["samples"] == 64
        assert 0 < report["pixel_mse_mean_image"] < report["pixel_mse_mu"]  # untrained
    else:
        assert report["samples"] == (10 if kind == "trajvae" else 64)  # plans or steps
        assert len(report["spread_normal"]) == 7
        # the synthetic actions are uniform in [-0.9, 0.9]: variance 0.27 per value
        assert report["mse_mean"] == pytest.approx(0.27, rel=0.15)
        assert report["mse_shuffled"] == pytest.approx(0.54, rel=0.15)


def test_other_runs_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json; pass the workdir of "
                                                "experiments.pretrain"):
        quality.held_out(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"kind": "spirl"}))
    with pytest.raises(ValueError, match="holds a 'spirl' run; the quality report covers "
                                         r"\('vae', 'cvae', 'trajvae'\)"):
        quality.report(str(tmp_path))
