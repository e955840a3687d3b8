"""Can an image encoder read, from one 48x48 frame, where the gripper is relative to the
objects? (no flags: ``experiments.probe_encoder`` is the binary).

A supervised probe of the prior's perception, apart from the flow: on the scripted
policies' states of the training tasks, an encoder (``ConvEncoder`` with any of its
fields) and two linear heads are trained from scratch to predict
- the offset ``g - e`` from the end effector ``e`` to the nearest object's grasp point
  ``g`` (``scripted.grasp_point``), in cm, with a Huber loss (delta 1 cm), and
- whether the scripted policy closes the gripper at this state (logistic loss, on the
  states where the gripper is open),
with random shifts and Adam under a cosine decay, as the prior is trained. With
``positions``, a third linear head also reads the end effector's position and every
object's grasp point relative to it (objects ordered by y, which the image shows): the
offset to the nearest grasp point is one of those, chosen by an argmin that switches
between objects, so the per-object offsets say whether a poor offset comes from reading
where things are or from that choice. With ``state_heads``, three more heads read what a
position head does not ask for (``docs/prior_diagnosis.md``: a frozen positions encoder
lacks it): whether the gripper is open and whether some object is held (logistic losses on
every state), and the container's position relative to the end effector (Huber in cm, on
the states of tasks with a container). (Random shifts move the whole image by up to
``augment_pad`` pixels, about 1 cm each, so the end effector's absolute position can be
read only through what the shift leaves behind, such as the replicated edges; offsets
are unaffected. ``augment_pad=0`` trains without shifts.) Held-out
episodes give the mean absolute error per axis by distance band, beside a constant (the
training mean), and the mean predicted P(close) at close and at keep states within
``NEAR`` of an object. A probe that beats the constant by little on x and y says the
encoder (at this data and budget) cannot place the gripper horizontally, whatever the
flow on top of it does. ``docs/prior_diagnosis.md`` reports the recipe encoder's probe.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from parrot_jax import io
from parrot_jax.envs import ENV_IDS, TRAIN_ENV_IDS, make, rollout, scripted
# the same near/far split and distance bands as the diagnosis
from parrot_jax.flows.diagnostics import NEAR
from parrot_jax.flows.diagnostics import OFFSET_BANDS as BANDS
from parrot_jax.networks import saved_encoder
from parrot_jax.networks.augment import random_crop
from parrot_jax.networks.encoder import ConvEncoder

CM = 100.0
ENCODER_DIR = "encoder"  # WORKDIR/encoder: the trained encoder (networks.saved_encoder)


@dataclasses.dataclass(frozen=True)
class States:
    """Scripted states: frames (N, H, W, 3) uint8, offsets (N, 3) m, closes (N,) bool
    (the scripted policy closes here), opened (N,) bool (the gripper is open), env (N,)
    (index into the env ids), episode (N,) (a number unique over all envs), ee (N, 3) m
    (the end effector's position), objects (N, K, 3) m (every object's grasp point,
    ordered by y: ``offsets`` is the nearest of them minus ``ee``), held (N,) bool (some
    object is held: ``info["held"]``), container (N, 3) m (the container's top centre minus
    ``ee``; zero where the task has none) and has_container (N,) bool."""

    frames: np.ndarray
    offsets: np.ndarray
    closes: np.ndarray
    opened: np.ndarray
    env: np.ndarray
    episode: np.ndarray
    ee: np.ndarray
    objects: np.ndarray
    held: np.ndarray
    container: np.ndarray
    has_container: np.ndarray

    def positions(self) -> np.ndarray:
        """(N, 1 + K, 3) m: the end effector's position, then each object's grasp point
        minus it (``offsets`` is the shortest of those)."""
        return np.concatenate([self.ee[:, None], self.objects - self.ee[:, None]], axis=1)

    def container_mean(self) -> np.ndarray:
        """(3,) m: the mean container offset over the states that have one (zero if none)."""
        has = self.has_container
        return self.container[has].mean(axis=0) if has.any() else np.zeros(3, np.float32)


def collect_states(episodes: int, seed: int = 0,
                   env_ids: tuple[str, ...] = TRAIN_ENV_IDS, perturb: float = 0.0) -> States:
    """``episodes`` scripted episodes per env (env seeds ``seed``, ``seed + 1``, ...;
    ``rollout.scripted_episode``, so the same episodes as the diagnosis's); ``perturb``:
    that share of the steps executes a random translation instead (DART-style, as
    ``experiments.collect_data --config.perturb``), so the states include those off the
    scripted path."""
    eps, envs, index, ee, objects, held, container, has_container = ([] for _ in range(8))

    def record(info):
        points = scripted.grasp_point(info["object_pos"], info["object_bottom"])
        ee.append(np.asarray(info["ee_pos"]))
        objects.append(points[np.argsort(points[:, 1], kind="stable")])
        held.append(bool(np.any(info["held"])))
        has_container.append(bool(info["has_container"]))
        container.append(np.asarray(info["container_pos"]) - ee[-1] if has_container[-1]
                         else np.zeros(3))

    for k, env_id in enumerate(env_ids):
        env = make(env_id).unwrapped
        try:
            for i in range(episodes):
                eps.append(rollout.scripted_episode(env, seed + i, perturb=perturb,
                                                    on_step=record))
                envs.append(np.full(len(eps[-1].actions), k))
                index.append(np.full(len(eps[-1].actions), k * episodes + i))
        finally:
            env.close()
    return States(np.concatenate([e.frames[:-1] for e in eps]),
                  np.concatenate([e.object_offset for e in eps]).astype(np.float32),
                  np.concatenate([e.closes for e in eps]),
                  np.concatenate([e.gripper_open for e in eps]),
                  np.concatenate(envs), np.concatenate(index),
                  np.asarray(ee, np.float32), np.asarray(objects, np.float32),
                  np.asarray(held), np.asarray(container, np.float32),
                  np.asarray(has_container))


class Probe(nn.Module):
    """The encoder with a 3-D offset head (cm), a close logit, with ``positions`` > 0 a
    head for that many 3-D positions (cm, about the training mean) and with
    ``state_heads`` a ``(open logit, held logit, container (cm, about its training
    mean))`` triple (else None)."""

    encoder: dict
    positions: int = 0
    state_heads: bool = False

    @nn.compact
    def __call__(self, images):
        h = nn.relu(ConvEncoder(**self.encoder)(images))
        where = (nn.Dense(3 * self.positions, name="positions")(h).reshape(
            h.shape[:-1] + (self.positions, 3)) if self.positions else None)
        state = ((nn.Dense(1, name="open")(h)[..., 0], nn.Dense(1, name="held")(h)[..., 0],
                  nn.Dense(3, name="container")(h)) if self.state_heads else None)
        return nn.Dense(3, name="offset")(h), nn.Dense(1, name="close")(h)[..., 0], where, state


def train(states: States, encoder: dict, steps: int, batch_size: int = 64,
          learning_rate: float = 1e-3, augment_pad: int = 4, seed: int = 0,
          positions: bool = False, state_heads: bool = False):
    """Fits the probe on ``states``; returns ``predict(images) -> (offsets m, P(close),
    positions m (N, 1 + K, 3) or None, state or None)``, the last training losses and the
    encoder's trained parameters. ``positions``: the third head is trained too (Huber in
    cm beside the offset's, equal weight per axis). ``state_heads``: so are the gripper's
    state, an object held (each a logistic loss of weight 1) and the container's offset
    (Huber in cm, averaged over the states that have a container); ``state`` is then
    ``{"p_open", "p_held", "container" m}``."""
    targets = states.positions() if positions else np.zeros((len(states.frames), 0, 3))
    mean = targets.mean(axis=0) * CM  # the positions head predicts about the mean
    has = states.has_container
    container_mean = states.container_mean() * CM
    model = Probe(encoder, targets.shape[1], state_heads)
    params = model.init(jax.random.key(seed), states.frames[:1])
    tx = optax.chain(optax.clip_by_global_norm(10.0),
                     optax.adam(optax.cosine_decay_schedule(learning_rate, steps, 0.1)))
    opt_state = tx.init(params)

    def loss_fn(p, images, offsets, closes, opened, where, held, container, has):
        pred, logit, where_pred, state = model.apply(p, images)
        fit = optax.huber_loss(pred, offsets * CM, delta=1.0).mean()
        if where_pred is not None:
            fit = fit + where.shape[1] * optax.huber_loss(
                where_pred, where * CM - mean, delta=1.0).mean()
        if state is not None:
            open_logit, held_logit, container_pred = state
            fit = fit + optax.sigmoid_binary_cross_entropy(open_logit, opened).mean()
            fit = fit + optax.sigmoid_binary_cross_entropy(held_logit, held).mean()
            miss = optax.huber_loss(container_pred, container * CM - container_mean,
                                    delta=1.0).mean(-1)
            fit = fit + (miss * has).sum() / jnp.maximum(has.sum(), 1.0)
        bce = optax.sigmoid_binary_cross_entropy(logit, closes)
        return fit + (bce * opened).sum() / jnp.maximum(opened.sum(), 1.0)

    @jax.jit
    def step(p, opt_state, key, images, *batch):
        images = random_crop(key, images, augment_pad)
        loss, grads = jax.value_and_grad(loss_fn)(p, images, *batch)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    key = jax.random.key(seed + 1)
    losses = []
    for k in range(steps):
        i = rng.integers(0, len(states.frames), batch_size)
        params, opt_state, loss = step(
            params, opt_state, jax.random.fold_in(key, k), states.frames[i], states.offsets[i],
            states.closes[i].astype(np.float32), states.opened[i].astype(np.float32),
            targets[i].astype(np.float32), states.held[i].astype(np.float32),
            states.container[i], has[i].astype(np.float32))
        losses.append(loss)
    apply = jax.jit(model.apply)

    def predict(images: np.ndarray):
        out = [jax.tree.map(np.asarray, apply(params, images[s:s + 256]))
               for s in range(0, len(images), 256)]
        offsets = np.concatenate([o[0] for o in out]) / CM
        p_close = _sigmoid(np.concatenate([o[1] for o in out]))
        where = (np.concatenate([o[2] for o in out]) + mean) / CM if positions else None
        state = None
        if state_heads:
            state = {"p_open": _sigmoid(np.concatenate([o[3][0] for o in out])),
                     "p_held": _sigmoid(np.concatenate([o[3][1] for o in out])),
                     "container": (np.concatenate([o[3][2] for o in out]) + container_mean)
                     / CM}
        return offsets, p_close, where, state

    return predict, [float(x) for x in losses[-100:]], params["params"]["ConvEncoder_0"]


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def split(states: States, held_out: float) -> tuple[States, States]:
    """By episode: the last ``held_out`` share of each env's episodes (its highest env
    seeds) is held out."""
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out={held_out}; expected a share in (0, 1)")
    test = set()
    for env in np.unique(states.env):
        episodes = np.unique(states.episode[states.env == env])
        test.update(episodes[int(round(len(episodes) * (1 - held_out))):].tolist())
    mask = np.isin(states.episode, list(test))
    if mask.all() or not mask.any():
        raise ValueError(f"{len(np.unique(states.episode))} episodes cannot be split at "
                         f"held_out={held_out}")

    return _take(states, ~mask), _take(states, mask)


def _take(states: States, index: np.ndarray) -> States:
    """The states at ``index`` (a mask or indices)."""
    return States(*(getattr(states, f.name)[index] for f in dataclasses.fields(States)))


def errors(train_states: States, test: States, pred_offsets: np.ndarray,
           p_close: np.ndarray, pred_positions: np.ndarray | None = None,
           pred_state: dict | None = None) -> dict:
    """Held-out errors (cm, per axis) by band beside the constant, and the close decision.

    With ``pred_positions`` (N, 1 + K, 3) m (:meth:`States.positions`), each band also has
    ``positions``: the end effector's error and the objects' offsets' (averaged over the
    K), each beside its training mean. With ``pred_state`` (``train``'s ``state``),
    ``out["state"]`` has the gripper's state and an object held, each as the mean
    predicted probability where it is true and where it is not and the accuracy at 0.5,
    and the container's offset error (cm, on the states with a container) beside its
    training mean.
    """
    distance = np.linalg.norm(test.offsets, axis=-1)
    constant = train_states.offsets.mean(axis=0)
    if pred_positions is not None:
        truth, position_constant = test.positions(), train_states.positions().mean(axis=0)
    out = {"bands": {}}
    for name, low, high in BANDS:
        m = (distance >= low) & (distance < high)
        out["bands"][name] = band = {
            "states": int(m.sum()),
            "probe_mae_cm": (np.abs(pred_offsets[m] - test.offsets[m]).mean(0) * CM).tolist()
            if m.any() else None,
            "constant_mae_cm": (np.abs(constant - test.offsets[m]).mean(0) * CM).tolist()
            if m.any() else None}
        if pred_positions is not None:
            probe = np.abs(pred_positions[m] - truth[m]) * CM
            flat = np.abs(position_constant - truth[m]) * CM
            band["positions"] = {
                part: {"probe_mae_cm": probe[:, parts].mean((0, 1)).tolist() if m.any() else None,
                       "constant_mae_cm": flat[:, parts].mean((0, 1)).tolist() if m.any() else None}
                for part, parts in (("end_effector", slice(0, 1)), ("objects", slice(1, None)))}
    near = test.opened & (distance < NEAR)
    close, keep = near & test.closes, near & ~test.closes
    out["close_decision"] = {
        "close_states": int(close.sum()), "keep_states": int(keep.sum()),
        "p_close_at_close": float(p_close[close].mean()) if close.any() else None,
        "p_close_at_keep": float(p_close[keep].mean()) if keep.any() else None}
    if pred_state is not None:
        out["state"] = _state_errors(train_states, test, pred_state)
    return out


def _state_errors(train_states: States, test: States, pred: dict) -> dict:
    """:func:`errors`'s ``state`` part."""
    def binary(p, truth):
        return {"true_states": int(truth.sum()), "false_states": int((~truth).sum()),
                "p_at_true": float(p[truth].mean()) if truth.any() else None,
                "p_at_false": float(p[~truth].mean()) if (~truth).any() else None,
                "accuracy": float(((p > 0.5) == truth).mean()) if len(truth) else None}

    has, constant = test.has_container, train_states.container_mean()
    return {"gripper_open": binary(pred["p_open"], test.opened),
            "held": binary(pred["p_held"], test.held),
            "container": {
                "states": int(has.sum()),
                "probe_mae_cm": (np.abs(pred["container"][has] - test.container[has]).mean(0)
                                 * CM).tolist() if has.any() else None,
                "constant_mae_cm": (np.abs(constant - test.container[has]).mean(0)
                                    * CM).tolist() if has.any() else None}}


def markdown(result: dict) -> str:
    lines = ["# Encoder probe", "",
             f"Encoder {json.dumps(result['encoder'])}, {result['steps']} steps, random shifts "
             f"of up to {result.get('augment_pad', 4)} pixels; {result['train_states']} "
             f"training and {result['test_states']} held-out states ({result['episodes']} "
             f"scripted episodes per training task).", "", "## Held-out episodes", ""]
    lines += _tables(result)
    if "on_training_states" in result:
        fit = result["on_training_states"]
        lines += [f"## {fit['states']} of the training states (fit against generalisation)", ""]
        lines += _tables(fit)
    for env_id, scores in result.get("test_envs", {}).items():
        lines += [f"## {env_id}: {scores['states']} states of {scores['episodes']} scripted "
                  "episodes (a scene the probe never saw)", ""]
        lines += _tables(scores)
    return "\n".join(lines)


def _tables(scores: dict) -> list[str]:
    """The markdown of one :func:`errors` result."""
    def cells(v):
        return " / ".join(f"{x:.2f}" for x in v) if v is not None else "-"

    def number(x):
        return f"{x:.2f}" if x is not None else "-"

    lines = ["Mean absolute error of the offset to the nearest grasp point, cm (x / y / z):", "",
             "| states | probe | constant (training mean) |", "|---|---|---|"]
    for name, band in scores["bands"].items():
        lines.append(f"| {name} ({band['states']}) | {cells(band['probe_mae_cm'])} | "
                     f"{cells(band['constant_mae_cm'])} |")
    if any("positions" in band for band in scores["bands"].values()):
        lines += ["", "What the offset is made of: the end effector's position and every object's "
                  "grasp point relative to it (mean over the objects), cm (x / y / z):", "",
                  "| states | end effector: probe | constant | objects from it: probe | constant |",
                  "|---|---|---|---|---|"]
        for name, band in scores["bands"].items():
            ee, objects = band["positions"]["end_effector"], band["positions"]["objects"]
            lines.append(f"| {name} | {cells(ee['probe_mae_cm'])} | {cells(ee['constant_mae_cm'])}"
                         f" | {cells(objects['probe_mae_cm'])} | "
                         f"{cells(objects['constant_mae_cm'])} |")
    c = scores["close_decision"]
    lines += ["", f"Scripted close, gripper open within {NEAR * CM:.0f} cm: mean P(close) "
              f"{number(c['p_close_at_close'])} at the {c['close_states']} close states, "
              f"{number(c['p_close_at_keep'])} at the {c['keep_states']} keep states.", ""]
    if "state" in scores:
        state = scores["state"]
        lines += ["The state heads: mean predicted probability where it is true / false "
                  "(accuracy at 0.5):", ""]
        for name, label in (("gripper_open", "gripper open"), ("held", "some object held")):
            b = state[name]
            lines.append(f"- {label}: {number(b['p_at_true'])} at {b['true_states']} / "
                         f"{number(b['p_at_false'])} at {b['false_states']} "
                         f"({number(b['accuracy'])})")
        k = state["container"]
        lines += [f"- the container from the end effector, cm (x / y / z), on its "
                  f"{k['states']} states: {cells(k['probe_mae_cm'])} (constant "
                  f"{cells(k['constant_mae_cm'])})", ""]
    return lines


def _score_on(env_id: str, episodes: int, seed: int, train_states: States, predict) -> dict:
    """:func:`errors` on ``episodes`` scripted episodes of ``env_id`` (env seeds ``seed``,
    ``seed + 1``, ...; the constant is still the training states' mean)."""
    states = collect_states(episodes, seed, env_ids=(env_id,))
    return {"episodes": episodes, "states": len(states.frames),
            **errors(train_states, states, *predict(states.frames))}


def run(workdir: str, episodes: int = 500, steps: int = 6000, encoder: dict | None = None,
        held_out: float = 0.15, batch_size: int = 64, seed: int = 0,
        positions: bool = False, augment_pad: int = 4, perturb: float = 0.0,
        test_envs: tuple[str, ...] = (), test_episodes: int = 100,
        train_envs: tuple[str, ...] = TRAIN_ENV_IDS, state_heads: bool = False) -> dict:
    """Collects, trains, evaluates; writes ``probe.json``, ``probe.md`` and the trained
    encoder (``WORKDIR/encoder``, ``parrot_jax.networks.saved_encoder``: a prior can start
    from it, ``experiments.train_prior --config.encoder_init``); returns the JSON.
    ``positions``: also train and score the positions head (module docstring);
    ``augment_pad``: the random shifts' range in pixels (0: none); ``perturb``: the share
    of DART-style perturbed steps in the collected episodes (:func:`collect_states`);
    ``test_envs``: also score the probe, trained on the training tasks only, on
    ``test_episodes`` scripted episodes of each of these envs (novel objects and
    containers: does the encoder's reading of the scene carry over?), under
    ``result["test_envs"][env_id]``; ``train_envs``: the envs whose scripted episodes it
    is trained on (e.g. one of ``envs.TRAINING_SETS``); ``state_heads``: also train and
    score the gripper's state, an object held and the container's offset (module
    docstring)."""
    encoder = dict(encoder if encoder is not None else {"strides": (2, 2, 1), "pooled": 0})
    unknown = set(encoder) - {f.name for f in dataclasses.fields(ConvEncoder)}
    if unknown:
        raise ValueError(f"unknown encoder fields {sorted(unknown)}; expected ConvEncoder's")
    if episodes < 2 or steps < 1:
        raise ValueError(f"episodes={episodes}, steps={steps}; expected >= 2 and >= 1")
    if augment_pad < 0:
        raise ValueError(f"augment_pad={augment_pad}; expected >= 0 pixels")
    if not 0.0 <= perturb < 1.0:
        raise ValueError(f"perturb={perturb}; expected a share of the steps in [0, 1)")
    if not train_envs:
        raise ValueError("train_envs is empty; expected at least one suite env to train on")
    unknown_envs = [e for e in (*train_envs, *test_envs) if e not in ENV_IDS]
    if unknown_envs:  # before the training, not after it
        raise ValueError(f"env ids {unknown_envs}: not the suite's; expected some of "
                         f"{', '.join(ENV_IDS)} (the scripted policies' states are scored)")
    if test_envs and test_episodes < 1:
        raise ValueError(f"test_episodes={test_episodes}; expected >= 1 per test env")
    start = time.perf_counter()
    states = collect_states(episodes, seed, tuple(train_envs), perturb=perturb)
    train_states, test = split(states, held_out)
    predict, losses, encoder_params = train(train_states, encoder, steps, batch_size,
                                            augment_pad=augment_pad, seed=seed,
                                            positions=positions, state_heads=state_heads)
    # as many training states as held-out ones, scored the same way: fit against
    # generalisation (an encoder that memorises its scenes reads these far better)
    fit = _take(train_states, np.random.default_rng(seed).permutation(
        len(train_states.frames))[:len(test.frames)])
    result = {"encoder": encoder, "steps": steps, "episodes": episodes, "positions": positions,
              "train_envs": list(train_envs),
              "augment_pad": augment_pad, "perturb": perturb,
              "train_states": len(train_states.frames), "test_states": len(test.frames),
              "final_train_loss": float(np.mean(losses)),  # over the last 100 steps
              "state_heads": state_heads,
              **errors(train_states, test, *predict(test.frames)),
              "on_training_states": {"states": len(fit.frames),
                                     **errors(train_states, fit, *predict(fit.frames))},
              "test_envs": {env_id: _score_on(env_id, test_episodes, seed, train_states,
                                              predict) for env_id in test_envs},
              "seconds": time.perf_counter() - start}
    os.makedirs(workdir, exist_ok=True)
    saved_encoder.save_encoder(
        os.path.join(workdir, ENCODER_DIR), encoder, encoder_params,
        extra={"trained_by": "experiments.probe_encoder",
               **{k: result[k] for k in ("steps", "episodes", "positions", "state_heads",
                                          "augment_pad", "perturb", "train_states",
                                          "train_envs")}},
        image_shape=states.frames.shape[1:])
    io.write_json(os.path.join(workdir, "probe.json"), result)
    io.write_text(os.path.join(workdir, "probe.md"), markdown(result))
    return result
