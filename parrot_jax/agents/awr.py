"""What AWAC and IQL share: advantage-weighted regression of the policy onto the batch's
actions, a TD critic, and their state.

Both extract the policy by weighted maximum likelihood of the batch's (dataset or
replay) actions,

    L_pi = -1/B sum_i w_i log pi(a_i | s_i),   w_i = w(A(s_i, a_i)) under stop_gradient,

so the policy is pulled toward actions the critic finds better than the policy's own,
and never toward actions the data does not hold (no maximisation of Q over actions
outside it). The actor is SAC's tanh-squashed Gaussian, whose batch actions are clipped
to ``[-max_abs_action, max_abs_action]`` where ``atanh`` is finite (as in behaviour
cloning, ``parrot_jax.agents.bc``), or an unsquashed Gaussian (PARROT's over ``z``,
``config.learner``), whose batch actions are taken as they are. With zero rewards everywhere the critic stays at 0, every
advantage is 0 and the weights are all equal: the extraction is behaviour cloning.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from parrot_jax.agents import sac

MAX_ABS_ACTION = 0.999  # batch actions are clipped here before log pi (tanh's range)


@dataclasses.dataclass(frozen=True)
class Hyperparams:
    """Settings AWAC and IQL share (hashable: a static argument of jit). Their defaults are
    the public implementations' (Polyak targets at 0.005 every update, Adam 3e-4)."""

    discount: float = 0.99
    reward_scale: float = 1.0
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    target_update: str = "polyak"
    target_update_period: int = 1000  # with target_update="hard"
    tau: float = 0.005
    augment_pad: int = 4
    n_step: int = 1

    def __post_init__(self):
        # SAC's checks cover the shared fields (its own fields at their defaults).
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(Hyperparams)}
        sac.Hyperparams(**shared)

    @classmethod
    def from_config(cls, sac_section, own_section) -> "Hyperparams":
        """From the run config's ``sac`` section (the fields shared with SAC) and the
        method's own section."""
        shared = {f.name: sac_section[f.name] for f in dataclasses.fields(Hyperparams)
                  if f.name in sac_section}
        return cls(**shared, **dict(own_section))


class State(flax.struct.PyTreeNode):
    """Everything a resumed AWAC or IQL run needs (``value_*``: IQL only, else None)."""

    step: jax.Array  # int32: gradient updates applied
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    rng: jax.Array
    value_params: Any = None
    value_opt_state: optax.OptState | None = None


def init_state(networks: sac.Networks, hp: Hyperparams, rng: jax.Array, observation,
               actor_params: Any = None, value_lr: float | None = None) -> State:
    """Step 0: SAC's fresh actor and critic (the actor is N(0, I) before the tanh), and a
    value network when ``networks.value`` is set (trained at ``value_lr``)."""
    init_rng, value_rng, rng = jax.random.split(rng, 3)
    fresh_actor, critic_params = sac.init_params(networks, init_rng, observation)
    actor_params = fresh_actor if actor_params is None else actor_params
    state = State(step=jnp.zeros((), jnp.int32), actor_params=actor_params,
                  critic_params=critic_params, target_critic_params=critic_params,
                  actor_opt_state=optax.adam(hp.actor_lr).init(actor_params),
                  critic_opt_state=optax.adam(hp.critic_lr).init(critic_params), rng=rng)
    if networks.value is None:
        return state
    obs = networks.features(critic_params, jnp.asarray(observation)[None])
    value_params = networks.value.init(value_rng, obs)["params"]
    return state.replace(value_params=value_params,
                         value_opt_state=optax.adam(value_lr).init(value_params))


def weighted_log_likelihood_loss(actor_params, critic_params, obs, actions, weights,
                                 networks: sac.Networks) -> tuple[jax.Array, dict]:
    """L_pi = -mean_i w_i log pi(clip(a_i) | s_i) (module docstring; no clip without a
    tanh)."""
    dist = networks.policy(actor_params, critic_params, obs)
    if networks.actor.squash:
        actions = jnp.clip(actions, -MAX_ABS_ACTION, MAX_ABS_ACTION)
    log_prob = dist.log_prob(actions)
    weights = jax.lax.stop_gradient(weights)
    return -jnp.mean(weights * log_prob), {"log_prob": jnp.mean(log_prob),
                                           **sac.policy_movement(dist)}


def td_loss(critic_params, obs, actions, targets, rewards,
            networks: sac.Networks) -> tuple[jax.Array, dict]:
    """sum_i mean (Q_i(s, a) - y)^2 over the critic's heads, with its diagnostics (Q of
    the rewarded transitions and of the rest, as SAC's)."""
    q = networks.q_values(critic_params, obs, actions)
    targets = jax.lax.stop_gradient(targets)
    loss = jnp.mean(jnp.square(q - targets), axis=-1).sum()
    return loss, {"critic_loss": loss, "q": q.mean(), "target_q": targets.mean(),
                  "td_error": jnp.mean(jnp.abs(q - targets)),
                  **sac.rewarded_q(q.min(0), rewards)}


def bootstrap(batch, next_value, hp: Hyperparams) -> jax.Array:
    """y = c r + gamma^m (1 - terminated) next_value (n-step batches carry gamma^m)."""
    not_done = 1.0 - batch["terminated"].astype(jnp.float32)
    discount = batch.get("discounts", hp.discount)
    return hp.reward_scale * batch["rewards"] + discount * not_done * next_value


def apply(optimizer: optax.GradientTransformation, grads, opt_state, params):
    """One optimizer step: (new params, new optimizer state)."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
