"""What a pretrained baseline model gives an RL agent, on its own held-out episodes.

The training loop's validation (``metrics.jsonl``: reconstruction error and KL at
``z = mu``) says how well a model encodes the data. An agent acting through a frozen
decoder (HIRL's cVAE, TrajRL's TrajVAE) explores at first with ``z`` near ``N(0, I)``, so
what matters there is the decoded action for ``z = 0`` (the initial policy's mean) and for
``z ~ N(0, I)`` (its samples), against the actions taken in the data:

    mse(z)  = mean over held-out samples and values of (decode(z, s) - a)^2
    spread  = per action dimension, the standard deviation of decode(z, s)

beside two references that need no model: the training actions' mean (``mean``: the best
constant) and each held-out action against another one (``shuffled``: an action of the
data taken on another state, 2x the variance). For the VAE the same question is its
reconstruction at ``mu`` against the training images' mean image. The held-out episodes
are the pretraining run's own validation split (``validation_fraction``, ``seed``).
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import numpy as np

from parrot_jax.data.dataset import load_dataset
from parrot_jax.pretrained import cvae, trajvae, vae
from parrot_jax.pretrained.loop import first_episodes
from parrot_jax.run_config import CONFIG_FILE, dataset_paths

KINDS = ("vae", "cvae", "trajvae")


def held_out(workdir: str, dataset: str | None = None):
    """``(train, validation)``: the split the run in ``workdir`` trained and validated on
    (its dataset unless ``dataset`` is given)."""
    config = _config(workdir)
    data = first_episodes(load_dataset(dataset_paths(dataset or config["dataset"])),
                          config["max_episodes"])
    return data.split(config["validation_fraction"], config["seed"])


def _config(workdir: str) -> dict[str, Any]:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir}: no {CONFIG_FILE}; pass the workdir of "
                                f"experiments.pretrain")
    with open(path) as f:
        config = json.load(f)
    if config.get("kind") not in KINDS:
        raise ValueError(f"{workdir} holds a {config.get('kind', 'flow prior')!r} run; the "
                         f"quality report covers {KINDS} (SPiRL's prior NLL and KL are in "
                         f"its metrics.jsonl)")
    return config


def decode_report(decode: Callable[[np.ndarray], np.ndarray], targets: np.ndarray,
                  train_mean: np.ndarray, latent_dim: int, seed: int = 0) -> dict[str, Any]:
    """``decode(z)`` (N, latent_dim) -> actions shaped as ``targets`` (N, ..., A): the
    module docstring's figures, per value of the action (A its last axis)."""
    rng = np.random.default_rng(seed)
    n = len(targets)
    report = {"samples": n, "data_spread": _spread(targets),
              "mse_mean": float(np.mean((targets - train_mean) ** 2)),
              "mse_shuffled": _shuffled_mse(targets, rng)}
    for name, z in (("z0", np.zeros((n, latent_dim), np.float32)),
                    ("normal", rng.normal(size=(n, latent_dim)).astype(np.float32))):
        decoded = np.asarray(decode(z)).reshape(targets.shape)
        report[f"mse_{name}"] = float(np.mean((decoded - targets) ** 2))
        report[f"spread_{name}"] = _spread(decoded)
    return report


def _shuffled_mse(targets: np.ndarray, rng) -> float:
    """Each sample against another one (a random cyclic pairing: never itself)."""
    order = rng.permutation(len(targets))
    return float(np.mean((targets[order] - targets[np.roll(order, 1)]) ** 2))


def _spread(actions: np.ndarray) -> list[float]:
    return [round(float(s), 4) for s in actions.reshape(-1, actions.shape[-1]).std(0)]


def report(workdir: str, dataset: str | None = None, samples: int = 4096,
           seed: int = 0) -> dict[str, Any]:
    """The quality report of the pretrained model in ``workdir`` (module docstring)."""
    import jax

    kind = _config(workdir)["kind"]
    train, validation = held_out(workdir, dataset)
    rng = np.random.default_rng(seed)
    if kind == "trajvae":
        model = trajvae.load_trajvae(workdir)
        plans = lambda d: np.stack([d.actions[s:s + model.horizon] for s, n in zip(
            d.episode_starts, d.episode_lengths) if n >= model.horizon])
        targets, train_mean = plans(validation), plans(train).mean(0)
        out = decode_report(jax.jit(model.decode), targets, train_mean, model.latent_dim, seed)
    else:
        steps = np.sort(rng.choice(validation.num_steps, min(samples, validation.num_steps),
                                   replace=False))
        images = np.asarray(validation.observations[steps])
        if kind == "cvae":
            model = cvae.load_cvae(workdir)
            # The images go in as an argument: closed over, XLA would fold the first
            # convolution of all 4,096 of them at compile time (about 18 s).
            decode_on = jax.jit(model.decode)
            decode = lambda z: decode_on(z, images)
            out = decode_report(decode, validation.actions[steps], train.actions.mean(0),
                                model.latent_dim, seed)
        else:
            model = vae.load_vae(workdir)
            reference = _mean_image(train, samples, rng)
            pixels = images.astype(np.float32) / 255.0
            reconstruction = np.asarray(jax.jit(model.reconstruct)(images))
            out = {"samples": len(steps),
                   "pixel_mse_mu": float(np.mean((reconstruction - pixels) ** 2)),
                   "pixel_mse_mean_image": float(np.mean((reference - pixels) ** 2))}
    return {"kind": kind, "workdir": workdir, "step": model.step,
            "validation_episodes": validation.num_episodes, **out}


def _mean_image(train, samples: int, rng) -> np.ndarray:
    steps = np.sort(rng.choice(train.num_steps, min(4 * samples, train.num_steps),
                               replace=False))
    return (np.asarray(train.observations[steps], np.float32) / 255.0).mean(0)
