"""Where a prior's density departs from the data: per action dimension, against the
data's own noise floor.

The scripted policies act ``a = clip(mu(s, target) + eps, -c, c)`` with
``eps ~ N(0, sigma^2 I)`` and a known noise-free action ``mu`` (recorded by
:meth:`parrot_jax.envs.scripted.ScriptedGrasp.act`). Given the state and the target,
the data's density of an unclipped component is ``N(a_d; mu_d, sigma^2)``, so its
expected NLL is ``0.5 log(2 pi e sigma^2)`` nats per dimension (-0.884 for sigma = 0.1);
a clipped component is a point mass at ``+-c`` (density unbounded): its share is
reported. The image does not show which object the trajectory chose, so the data's
density given the image alone is a mixture over targets and its entropy can only be
higher: this floor is a lower bound.

A real NVP gives the joint density only, so per dimension this module compares
*marginals* with one estimator for both sides: a Gaussian kernel density estimate of
``p(a_d | s)`` at the data value from ``K`` samples, drawn from the prior and from the
data's own conditional ``clip(mu + eps)``. The gap between the two estimates is the
prior's excess NLL in that dimension (the estimator's bias is shared).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from parrot_jax.envs.manipulation import GRIPPER_THRESHOLD  # |a_6| beyond it acts
from parrot_jax.flows.prior import BehavioralPrior
from parrot_jax.flows.realnvp import coupling_masks

GRIPPER = 6  # the gripper's action dimension in the suite


def encoder_health(prior: BehavioralPrior, images: np.ndarray) -> dict:
    """Is the image encoder alive? For each ReLU layer of psi (``conv*``, and ``fc*``
    unless the encoder's dense layers use ELU), the
    share of its units (channels) whose pre-activation is <= 0 at every position of every
    image given: dead units pass nothing, for any image, and no gradient either. Plus the
    spread of the embedding over the images (its per-dimension std, averaged): near 0,
    the prior no longer depends on the image. A learning rate too high for the encoder
    kills its fully connected units (README, "Diagnosing the prior")."""
    _, state = prior.flow.apply({"params": prior.params}, jnp.asarray(images), method="embed",
                                capture_intermediates=True, mutable=["intermediates"])
    layers = state["intermediates"]["encoder"]
    relu = ("conv", "fc") if prior.flow.encoder_activation == "relu" else ("conv",)
    dead = {}
    for name in sorted(layers, key=lambda n: (not n.startswith("conv"),
                                               int("".join(filter(str.isdigit, n)) or 0))):
        if name.startswith(relu):  # an ELU unit below 0 still passes values and gradient
            (out,) = layers[name]["__call__"]
            units = np.asarray(out).reshape(-1, out.shape[-1])
            dead[name] = float((units.max(axis=0) <= 0).mean())
    (embedding,) = layers["__call__"]
    return {"dead_units": dead,
            "embedding_std": float(np.asarray(embedding).std(axis=0).mean()),
            "num_images": int(len(images))}


def gaussian_nll_floor(noise: float) -> float:
    """Expected NLL of N(0, noise^2) in nats: 0.5 log(2 pi e noise^2)."""
    return 0.5 * float(np.log(2 * np.pi * np.e * noise ** 2))


def kde_nll(samples: np.ndarray, values: np.ndarray, bandwidth: float) -> np.ndarray:
    """-log of a Gaussian KDE of each marginal: samples (N, K, D), values (N, D) -> (N, D).

    ``p(v_nd) = 1/K sum_k N(v_nd; samples_nkd, bandwidth^2)``, in a log-sum-exp.
    """
    return np.asarray(_kde_nll(jnp.asarray(samples, jnp.float32),
                               jnp.asarray(values, jnp.float32), bandwidth))


@functools.partial(jax.jit, static_argnums=2)
def _kde_nll(samples, values, bandwidth):
    d = (values[:, None, :] - samples) / bandwidth
    log_k = -0.5 * d ** 2 - jnp.log(bandwidth * jnp.sqrt(2 * jnp.pi))
    return -(jax.nn.logsumexp(log_k, axis=1) - jnp.log(samples.shape[1]))


def prior_samples(prior: BehavioralPrior, images: np.ndarray, num_samples: int,
                  key: jax.Array, chunk: int = 512) -> np.ndarray:
    """``num_samples`` actions ``a = tanh(f(z; s))``, ``z ~ N(0, I)``, per image:
    (N, num_samples, action_dim), one encoder pass per image."""
    out = []
    for i in range(0, len(images), chunk):
        out.append(np.asarray(_sample(prior.flow, prior.params, jnp.asarray(images[i:i + chunk]),
                                      jax.random.fold_in(key, i), num_samples)))
    return np.concatenate(out) if out else np.zeros((0, num_samples, prior.action_dim))


@functools.partial(jax.jit, static_argnums=(0, 4))
def _sample(flow, params, images, key, num_samples):
    embedding = flow.apply({"params": params}, images, method="embed")
    n, d = images.shape[0], flow.action_dim
    z = jax.random.normal(key, (n * num_samples, d))
    repeated = jnp.repeat(embedding, num_samples, axis=0)
    actions = flow.apply({"params": params}, z, repeated, method="sample_given")
    return actions.reshape(n, num_samples, d)


def data_samples(means: np.ndarray, noise: float, clip: float, num_samples: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Draws from the data's conditional ``clip(mu + eps)``: (N, num_samples, D)."""
    eps = rng.normal(0.0, noise, size=(len(means), num_samples, means.shape[-1]))
    return np.clip(means[:, None, :] + eps, -clip, clip)


@dataclasses.dataclass(frozen=True)
class Likelihood:
    """Per-dimension and joint fit of a prior on states with known noise-free actions."""

    num_states: int
    noise: float
    clip: float
    bandwidth: float
    clipped_share: np.ndarray  # (D,) data components exactly at +-clip
    floor_nll: np.ndarray  # (D,) exact NLL of the unclipped data components given mu
    data_kde_nll: np.ndarray  # (D,) KDE estimate from the data's own conditional
    prior_kde_nll: np.ndarray  # (D,) KDE estimate from the prior's samples
    prior_zero_error: np.ndarray  # (D,) mean |a(z = 0) - clip(mu)|
    data_error: np.ndarray  # (D,) mean |a - clip(mu)| of the data (the noise, clipped)
    joint_nll: float  # the prior's mean -log p(a | s), nats per action
    joint_nll_unclipped: float  # ... over actions with no clipped component
    joint_floor_unclipped: float  # the exact floor over those actions
    unclipped_actions: int
    gripper: dict  # scripted gripper command -> {"states", "prior_close", "data_close", ...}
    log_scale_saturated: np.ndarray  # (couplings, D) share of |l_k| > 0.95 bound (NaN: pass-through)
    log_scale_mean_abs: np.ndarray  # (couplings, D) mean |l_k|
    encoder: dict  # encoder_health on the states
    offset_readout: dict | None = None  # offset_readout on the states (flows with the head)

    def as_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = (np.where(np.isnan(v), None, v).tolist()
                           if isinstance(v, np.ndarray) else v)
        return out


def likelihood(prior: BehavioralPrior, images: np.ndarray, actions: np.ndarray,
               means: np.ndarray, gripper_open: np.ndarray, noise: float, clip: float,
               seed: int = 0, num_samples: int = 64, bandwidth: float = 0.05,
               max_abs_action: float = 0.999999,
               object_distance: np.ndarray | None = None,
               object_offset: np.ndarray | None = None) -> Likelihood:
    """The prior's fit on states ``images`` (N, H, W, C) where the scripted policy took
    ``actions`` (N, D) with noise-free ``means`` (N, D) and the gripper was open
    (``gripper_open``, (N,)) before acting; ``object_distance`` (N,), the end effector's
    distance to the nearest object, splits the gripper decisions into near and far
    states; ``object_offset`` (N, 3), the offset itself, scores a flow's offset head
    (``offset_readout``). See the module docstring."""
    if not (len(images) == len(actions) == len(means) == len(gripper_open)) or not len(images):
        raise ValueError(f"images, actions, means and gripper_open must have the same "
                         f"non-zero length, got {len(images)}, {len(actions)}, {len(means)}, "
                         f"{len(gripper_open)}")
    if not GRIPPER_THRESHOLD < clip < 1.0:
        raise ValueError(f"clip={clip}; expected a bound in ({GRIPPER_THRESHOLD}, 1)")
    actions = np.asarray(actions, np.float64)
    means = np.asarray(means, np.float64)
    clipped = np.abs(actions) >= clip - 1e-6
    expected = np.clip(means, -clip, clip)  # the action without noise, as executed
    samples = prior_samples(prior, images, num_samples, jax.random.key(seed))
    reference = data_samples(means, noise, clip, num_samples, np.random.default_rng(seed))
    gauss = 0.5 * ((actions - means) / noise) ** 2 + np.log(noise * np.sqrt(2 * np.pi))
    floor = np.where(clipped, np.nan, gauss)
    zero = _batched(prior, images, np.zeros_like(actions, np.float32), "sample")
    logp = _batched(prior, images, np.clip(actions, -max_abs_action, max_abs_action)
                    .astype(np.float32), "log_prob")
    free = ~clipped.any(axis=1)
    scales = _log_scales(prior, images, np.clip(actions, -max_abs_action, max_abs_action))
    active = ~np.stack([np.asarray(m) for m in coupling_masks(  # (couplings, D): moved dims
        prior.action_dim, prior.flow.num_couplings)])
    bound = 0.95 * prior.flow.log_scale_bound
    saturated = np.where(active, (np.abs(scales) > bound).mean(axis=0), np.nan)
    mean_abs = np.where(active, np.abs(scales).mean(axis=0), np.nan)
    return Likelihood(
        num_states=len(images), noise=noise, clip=clip, bandwidth=bandwidth,
        clipped_share=clipped.mean(axis=0),
        floor_nll=np.nanmean(floor, axis=0),
        data_kde_nll=kde_nll(reference, actions, bandwidth).mean(axis=0),
        prior_kde_nll=kde_nll(samples, actions, bandwidth).mean(axis=0),
        prior_zero_error=np.abs(zero - expected).mean(axis=0),
        data_error=np.abs(actions - expected).mean(axis=0),
        joint_nll=float(-logp.mean()),
        joint_nll_unclipped=float(-logp[free].mean()) if free.any() else float("nan"),
        joint_floor_unclipped=float(gauss[free].sum(axis=1).mean()) if free.any()
        else float("nan"),
        unclipped_actions=int(free.sum()),
        gripper=gripper_decisions(samples, means, np.asarray(gripper_open, bool), noise,
                                  object_distance),
        log_scale_saturated=saturated, log_scale_mean_abs=mean_abs,
        encoder=encoder_health(prior, images[:512]),
        offset_readout=(offset_readout(prior, images, object_offset)
                        if prior.flow.offset_head and object_offset is not None else None))


NEAR = 0.06  # metres: "near" an object for the gripper decisions
OFFSET_BANDS = (("within 6 cm", 0.0, NEAR), ("6-15 cm", NEAR, 0.15),
                ("15 cm or farther", 0.15, np.inf))


def offset_readout(prior: BehavioralPrior, images: np.ndarray, offsets: np.ndarray) -> dict:
    """How well a flow's offset head reads the end effector's offset to the nearest object
    from ``images``: per distance band (``OFFSET_BANDS``), the number of states and the
    mean absolute error on x, y, z in cm, beside that of a constant (the mean offset of
    all the given states, which a head that ignores the image could learn). A head no
    better than the constant on x and y says the embedding does not localise the
    gripper horizontally, whatever the flow does with it."""
    offsets = np.asarray(offsets, np.float64)
    if offsets.shape != (len(images), 3):
        raise ValueError(f"offsets have shape {offsets.shape}; expected ({len(images)}, 3)")
    predict = _apply_to_images(prior.flow, "predict_offsets")
    predicted = np.concatenate([np.asarray(predict(prior.params, jnp.asarray(images[i:i + 512])))
                                for i in range(0, len(images), 512)])
    head = 100 * np.abs(predicted - offsets)
    constant = 100 * np.abs(offsets - offsets.mean(axis=0))
    distance = np.linalg.norm(offsets, axis=-1)
    bands = {}
    for name, low, high in OFFSET_BANDS:
        sel = (distance >= low) & (distance < high)
        bands[name] = {"states": int(sel.sum()),
                       "head_cm": head[sel].mean(axis=0).tolist() if sel.any() else None,
                       "constant_cm": constant[sel].mean(axis=0).tolist() if sel.any() else None}
    return bands


def gripper_decisions(samples: np.ndarray, means: np.ndarray, gripper_open: np.ndarray,
                      noise: float, object_distance: np.ndarray | None = None) -> dict:
    """How often the prior would close (``a_6 < -0.5``) or open (``> 0.5``) where the
    scripted policy commanded close, open or keep, split by the gripper's state (and, with
    ``object_distance``, the open gripper's "keep" states by whether an object is within
    ``NEAR``: far from every object a close is never right, so the prior's close
    probability there is pure leakage, not ambiguity); beside the data's own
    probabilities ``Phi((-0.5 - mu) / sigma)`` and ``1 - Phi((0.5 - mu) / sigma)``
    (clipping at ``+-clip`` moves no mass across +-0.5 when ``clip > 0.5``, which
    ``likelihood`` checks)."""
    from scipy.stats import norm

    command = np.where(means[:, GRIPPER] < -GRIPPER_THRESHOLD, "close",
                       np.where(means[:, GRIPPER] > GRIPPER_THRESHOLD, "open", "keep"))
    g = samples[..., GRIPPER]
    prior_close, prior_open = (g < -GRIPPER_THRESHOLD).mean(1), (g > GRIPPER_THRESHOLD).mean(1)
    data_close = norm.cdf((-GRIPPER_THRESHOLD - means[:, GRIPPER]) / noise)
    data_open = norm.sf((GRIPPER_THRESHOLD - means[:, GRIPPER]) / noise)
    groups = []
    for state, mask in (("open", gripper_open), ("closed", ~gripper_open)):
        for c in ("close", "open", "keep"):
            name, sel = f"gripper {state}, scripted {c}", mask & (command == c)
            groups.append((name, sel))
            if object_distance is not None and state == "open" and c != "close":
                near = np.asarray(object_distance) < NEAR
                groups += [(f"{name}, within {100 * NEAR:.0f} cm of an object", sel & near),
                           (f"{name}, farther", sel & ~near)]
    out = {}
    for name, sel in groups:
        if sel.any():
            out[name] = {"states": int(sel.sum()),
                         "prior_close": float(prior_close[sel].mean()),
                         "data_close": float(data_close[sel].mean()),
                         "prior_open": float(prior_open[sel].mean()),
                         "data_open": float(data_open[sel].mean())}
    return out


def _batched(prior: BehavioralPrior, images, x, method: str, chunk: int = 512) -> np.ndarray:
    fn = _apply(prior.flow, method)
    return np.concatenate([np.asarray(fn(prior.params, jnp.asarray(x[i:i + chunk]),
                                         jnp.asarray(images[i:i + chunk])))
                           for i in range(0, len(images), chunk)]).astype(np.float64)


def _log_scales(prior: BehavioralPrior, images, actions, chunk: int = 512) -> np.ndarray:
    fn = _apply(prior.flow, "coupling_log_scales")
    return np.concatenate([np.asarray(fn(prior.params,
                                         jnp.asarray(actions[i:i + chunk], jnp.float32),
                                         jnp.asarray(images[i:i + chunk])))
                           for i in range(0, len(images), chunk)])


@functools.lru_cache(maxsize=None)
def _apply_to_images(flow, method: str):
    return jax.jit(lambda params, images: flow.apply({"params": params}, images, method=method))


@functools.lru_cache(maxsize=None)
def _apply(flow, method: str):
    return jax.jit(lambda params, x, images: flow.apply({"params": params}, x, images,
                                                        method=method))
