"""The prior with perfect perception (no flags: ``experiments.state_oracle`` is the binary).

The recipe's flow (8 couplings, log-scale bound 2, Adam 1e-3 with a cosine decay,
clipping at 10, batch 256) with an MLP on the simulator's state in place of the image
encoder, trained on scripted episodes (optionally DART-style: a share of the steps
executes a random translation while the scripted action is recorded,
``rollout.scripted_episode``'s rule) and rolled out. Separates "the encoder cannot see
it" from "imitating the scripted data this way fails" (``docs/prior_diagnosis.md``, "A
flow that sees the state").

The features (:func:`features`): end-effector position, gripper state, each object's
grasp point relative to the end effector and its height, objects ordered by y so that
the scripted policy's target is not given away (the image does not show it either).
"""

from __future__ import annotations

import multiprocessing as mp

import jax
import jax.numpy as jnp
import numpy as np
import optax

from parrot_jax.envs import make, rollout, scripted
from parrot_jax.flows.realnvp import ConditionalRealNVP
from parrot_jax.networks.mlp import MLP

ACTION_DIM = 7
MAX_ABS_ACTION = 0.999999  # as the prior's training clips before atanh


def features(info: dict) -> np.ndarray:
    """The state the oracle's flow sees (module docstring): (16,) or (19,) float32."""
    ee = np.asarray(info["ee_pos"], np.float64)
    centers, bottoms = np.asarray(info["object_pos"]), np.asarray(info["object_bottom"])
    points = scripted.grasp_point(centers, bottoms)
    order = np.argsort(points[:, 1])
    parts = [ee, [float(info["gripper_open"])], (points - ee)[order].ravel(),
             (2.0 * (centers[:, 2] - bottoms))[order]]
    if info["has_container"]:
        parts.append(np.asarray(info["container_pos"]) - ee)
    return np.concatenate(parts).astype(np.float32)


def _collect(args) -> list[tuple[np.ndarray, np.ndarray]]:
    env_id, seeds, perturb, policy_kwargs = args
    env = make(env_id).unwrapped
    kept = []
    try:
        for seed in seeds:
            states = []
            episode = rollout.scripted_episode(
                env, int(seed), keep_frames=False, perturb=perturb,
                on_step=lambda info: states.append(features(info)), **policy_kwargs)
            if episode.success:
                kept.append((np.stack(states), episode.actions))
    finally:
        env.close()
    return kept


def collect(env_id: str, episodes: int, perturb: float = 0.0, policy_kwargs=None,
            processes: int = 2, first_seed: int = 10_000):
    """Successful scripted episodes as (states (T, F), recorded actions (T, 7)) pairs."""
    if not 0.0 <= perturb < 1.0:
        raise ValueError(f"perturb={perturb}; expected a probability in [0, 1)")
    chunks = np.array_split(np.arange(first_seed, first_seed + episodes), max(1, 8 * processes))
    jobs = [(env_id, c, perturb, dict(policy_kwargs or {})) for c in chunks if len(c)]
    if processes > 1:
        with mp.get_context("spawn").Pool(processes) as pool:
            parts = pool.map(_collect, jobs)
    else:
        parts = [_collect(j) for j in jobs]
    return [e for part in parts for e in part]


class StateFlow(ConditionalRealNVP):
    """``ConditionalRealNVP`` whose "image" is a state vector, embedded by an MLP."""

    def setup(self):
        self.encoder = MLP((256, 256), self.embedding)
        self.conditioners = [MLP(self.hidden, 2 * self.action_dim, zero_init_output=True)
                             for _ in range(self.num_couplings)]


def train(episodes, steps: int, seed: int = 0, batch_size: int = 256):
    """Fits a ``StateFlow`` (the last 5% of episodes held out); returns (flow, params,
    normalise, curve) with ``curve`` the (step, train NLL, held-out NLL) rows."""
    held = max(1, len(episodes) // 20)
    def stack(eps):
        return (np.concatenate([e[0] for e in eps]),
                np.clip(np.concatenate([e[1] for e in eps]), -MAX_ABS_ACTION, MAX_ABS_ACTION))
    (xv, yv), (x, y) = stack(episodes[:held]), stack(episodes[held:])
    mu, sd = x.mean(0), x.std(0) + 1e-3

    def normalise(s):
        return (s - mu) / sd
    flow = StateFlow(action_dim=ACTION_DIM, num_couplings=8, log_scale_bound=2.0)
    params = flow.init(jax.random.key(seed), jnp.asarray(y[:2]), jnp.asarray(normalise(x[:2])))
    tx = optax.chain(optax.clip_by_global_norm(10.0),
                     optax.adam(optax.cosine_decay_schedule(1e-3, steps, 0.1)))
    opt_state = tx.init(params)

    def nll(p, s, a):
        return -flow.apply(p, a, s).mean()

    @jax.jit
    def step(p, o, s, a):
        loss, grads = jax.value_and_grad(nll)(p, s, a)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, loss

    held_out = jax.jit(nll)
    rng, curve = np.random.default_rng(seed), []
    for k in range(steps):
        i = rng.integers(0, len(x), batch_size)
        params, opt_state, loss = step(params, opt_state, normalise(x[i]), y[i])
        if k % 1000 == 0 or k == steps - 1:
            curve.append((k, float(loss), float(held_out(params, normalise(xv), yv))))
    return flow, params, normalise, curve


def rollouts(flow, params, normalise, env_id: str, episodes: int, mode: str, seed: int = 123):
    """The flow's rollouts on env seeds 0..episodes-1 (``mode``: "fresh" z per step or
    "zero"): task success, some object held at some step, and the first close's distance
    (3-D and horizontal, m) to the nearest grasp point in the episodes that never held one."""
    if mode not in ("fresh", "zero"):
        raise ValueError(f"mode={mode!r}; expected 'fresh' or 'zero'")
    env = make(env_id).unwrapped
    sample = jax.jit(lambda z, s: flow.apply(params, z, s, method="sample"))
    rng = np.random.default_rng(seed)
    task = held = 0
    misses = []
    try:
        for episode in range(episodes):
            _, info = env.reset(seed=episode)
            ever, first_close = False, None
            while True:
                z = (rng.normal(size=(1, ACTION_DIM)) if mode == "fresh"
                     else np.zeros((1, ACTION_DIM))).astype(np.float32)
                s = features(info)
                action = np.asarray(sample(z, normalise(s)[None]))[0]
                was_open = info["gripper_open"]
                offsets = s[4:13].reshape(3, 3)
                _, _, terminated, truncated, info = env.step(action.astype(np.float32))
                if was_open and not info["gripper_open"] and first_close is None:
                    first_close = (np.linalg.norm(offsets, axis=1).min(),
                                   np.linalg.norm(offsets[:, :2], axis=1).min())
                ever |= bool(np.any(info["held"]))
                if terminated or truncated:
                    break
            task += bool(info["success"])
            held += ever
            if not ever and first_close is not None:
                misses.append(first_close)
    finally:
        env.close()
    misses = np.asarray(misses).reshape(-1, 2)
    return {"mode": mode, "episodes": episodes, "task_success": task / episodes,
            "some_object_held": held / episodes,
            "missed_first_close_median_cm": (np.median(misses, 0) * 100).tolist()
            if len(misses) else None, "missed_episodes_that_closed": len(misses)}
