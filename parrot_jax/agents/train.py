"""``train(config, workdir)``: SAC-family agents learning a task from an env pool.

The loop, one pool step (``num_envs`` env steps) at a time:

    actions = act(params, obs, key_t)           # jitted; parrot: z ~ pi(. | s), a = f(z; s)
    state = update(state, K replay batches)     # jitted, dispatched asynchronously ...
    obs = pool.step(env actions)                # ... while the env workers step
    replay.add(policy actions, rewards, ...)    # parrot stores z

Updates start once ``start_steps`` env steps have been collected (with the policy itself:
for ``parrot`` at initialisation that is the prior) and run ``updates_per_env_step``
per env step: ``K = num_envs * ratio`` fused updates every pool step, or one update every
``1 / (num_envs * ratio)`` pool steps. Evaluation episodes run in a second pool every
``eval_every`` env steps, from fixed env seeds (``eval_seed + i``). An agent whose one
action is an H-step plan (``AgentSpec.plan``: ``trajrl``, ``spirl``) steps a pool of
``envs.chunks.ActionChunks`` envs: a pool step is ``num_envs * H`` env steps, every
count above is in env steps, and logging, evaluation and checkpoints happen at the first
pool step that reaches each multiple of their interval.

Checkpoints (``WORKDIR/checkpoints``, step = env steps) hold the whole SAC state
(parameters, target critic, optimizer states, temperature, rng, update count) and the
acting parameters (actor, critic, and the frozen prior for ``parrot``/``prior_explore``),
so ``experiments.evaluate`` needs only the workdir. The replay buffer is committed to
``WORKDIR/replay`` just before each checkpoint (``parrot_jax.data.replay_log``: what was
added since the last one).

``drive`` runs this loop for one run (``OneLearner``) or, in lockstep, for several runs
whose updates one program makes (``agents.together``).

Exact resume: a killed run rerun with the same command ends with the same parameters and
metrics as one never interrupted (bitwise on CPU). Everything random is a function of
the env-step count (acting keys, replay sampling, env seeds), and every checkpoint is an
episode boundary: after saving, the loop restarts the envs from episodes seeded by the
env-step count (the episodes cut short stay in the buffer, bootstrapped like a time
limit), which is where a resumed run starts them too. A checkpoint whose replay was not
saved (runs from before replay logs) resumes as before: an empty buffer refilled with
``start_steps`` env steps of the restored policy.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import time
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from parrot_jax import checkpoint, io, legacy, parallel, run_config
from parrot_jax.agents import bc, sac
from parrot_jax.agents.agent import LEARNERS, Agent, acting_params, box_bounds, learner_name, \
    make_agent, missing_pretrained, with_pretrained_trunk, with_reference
from parrot_jax.agents.networks import TRUNK_DTYPES
from parrot_jax.agents.programs import Programs, StartRecorder, act, compile_programs
from parrot_jax.agents.sac import SACState, optimizers
from parrot_jax.agents.spec import agents_where, spec_of
from parrot_jax.data import transitions
from parrot_jax.data.replay import ReplayBuffer
from parrot_jax.data.replay_log import ReplayLog
from parrot_jax.envs import check_env_id
from parrot_jax.envs.chunks import env_source
from parrot_jax.envs.pool import EnvPool
from parrot_jax.flows.evaluate import check_compatible, rollout_success
from parrot_jax.flows.prior import check_prior_dir, load_prior
from parrot_jax.metrics import MetricWriter
from parrot_jax.pretrained import cvae, saved, spirl, trajvae, vae
from parrot_jax.stats import wilson_interval

# Fields that define what a run learns; a rerun in the same workdir must agree on them
# (and on the agent's own sections of the config, ``AgentSpec.sections``).
RUN_DEFINING = ("agent", "learner", "env", "seed", "network", "sac", "num_envs",
                "batch_size", "updates_per_env_step", "prior_model", "offline",
                "pretrained_model")
REPLAY_DIRECTORY = "replay"  # the replay log (parrot_jax.data.replay_log), beside checkpoints
# config.pretrained's kind -> (its loader, the model's name in messages)
PRETRAINED_LOADERS = {"vae": (vae.load_vae, "VAE"), "cvae": (cvae.load_cvae, "cVAE"),
                      "trajvae": (trajvae.load_trajvae, "TrajVAE"),
                      "spirl": (spirl.load_skills, "SPiRL skill model")}
OFFLINE_METRICS = "offline_metrics.json"  # the offline phase's losses, every log_every updates


def pool_schedule(num_envs: int, ratio: float, horizon: int = 1) -> tuple[int, int]:
    """``(K, m)``: K fused updates every m pool steps, for ``ratio`` updates per env step
    (a pool step is ``num_envs * horizon`` env steps)."""
    per_pool_step = num_envs * horizon * ratio
    envs = f"num_envs={num_envs}" + (f" x {horizon}-step plans" if horizon > 1 else "")
    if per_pool_step >= 1:
        if abs(per_pool_step - round(per_pool_step)) > 1e-9:
            raise ValueError(f"updates_per_env_step={ratio} gives {per_pool_step} updates per "
                             f"pool step of {envs} envs; it must be a whole number")
        return int(round(per_pool_step)), 1
    every = 1.0 / per_pool_step if per_pool_step > 0 else float("inf")
    if abs(every - round(every)) > 1e-9:
        raise ValueError(f"updates_per_env_step={ratio} with {envs} gives one "
                         f"update every {every:.3g} pool steps; it must be a whole number")
    return 1, int(round(every))


def check_config(config: ml_collections.ConfigDict) -> None:
    """ValueError naming the first invalid setting (before any env or prior is loaded)."""
    parts = spec_of(config.agent)
    check_env_id(config.env)
    for name in ("num_envs", "total_env_steps", "batch_size", "replay_capacity", "eval_every",
                 "eval_episodes", "eval_num_envs", "log_every", "checkpoint_every",
                 "max_checkpoints"):
        if int(config[name]) < 1:
            raise ValueError(f"config.{name}={config[name]}; expected a positive integer")
    if config.checkpoint_every % config.log_every:
        raise ValueError(f"config.checkpoint_every={config.checkpoint_every} is not a multiple "
                         f"of config.log_every={config.log_every} (a resumed run would lose "
                         "the metrics of the interval it was killed in)")
    if config.start_steps < 0:
        raise ValueError(f"config.start_steps={config.start_steps}; expected >= 0")
    if not config.updates_per_env_step > 0:
        raise ValueError(f"config.updates_per_env_step={config.updates_per_env_step}; expected "
                         "a positive number")
    for name in ("total_env_steps", "log_every", "eval_every", "checkpoint_every"):
        if config[name] % config.num_envs:
            raise ValueError(f"config.{name}={config[name]} is not a multiple of "
                             f"config.num_envs={config.num_envs} (each pool step is num_envs "
                             "env steps)")
    if parts.plan is None:  # else checked once the plan's length is known
        pool_schedule(config.num_envs, config.updates_per_env_step)
    if parts.reads_prior and not config.prior:
        raise ValueError(f"agent {config.agent!r} needs a behavioral prior: pass "
                         "--config.prior=PRIOR_WORKDIR (written by experiments.train_prior)")
    if parts.pretrained and not config.pretrained:
        raise missing_pretrained(config.agent)
    if parts.starts_from == "bc" and not config.dataset:
        raise ValueError(f"agent {config.agent!r} clones the prior dataset: pass "
                         "--config.dataset=DIR (written by experiments.collect_data)")
    if not 0.0 <= config.prior_explore.epsilon <= 1.0:
        raise ValueError(f"config.prior_explore.epsilon={config.prior_explore.epsilon}; "
                         "expected a probability in [0, 1]")
    for name in ("seed", "eval_seed", "num_workers", "num_devices"):
        if int(config[name]) < 0:
            raise ValueError(f"config.{name}={config[name]}; expected an integer >= 0")
    for name in ("hidden", "channels"):
        run_config.check_layer_sizes(f"network.{name}", config.network[name])
    network = legacy.with_added_fields("network", config.network)
    if network["trunk_dtype"] not in TRUNK_DTYPES:
        raise ValueError(f"config.network.trunk_dtype={network['trunk_dtype']!r}; expected one "
                         f"of {tuple(TRUNK_DTYPES)}")
    if network["vmap_trunks"] and network["shared_trunk"]:
        raise ValueError("config.network.vmap_trunks=True stacks each Q's own trunk; it needs "
                         "config.network.shared_trunk=False")
    if int(config.network.num_qs) < 1:
        raise ValueError(f"config.network.num_qs={config.network.num_qs}; expected >= 1")
    if not config.network.log_std_min < config.network.log_std_max:
        raise ValueError(f"config.network.log_std_min={config.network.log_std_min} must be "
                         f"below config.network.log_std_max={config.network.log_std_max}")
    if parts.starts_from == "bc":
        for name in ("steps", "batch_size"):
            if int(config.bc[name]) < 1:
                raise ValueError(f"config.bc.{name}={config.bc[name]}; expected a positive "
                                 "integer")
        if not config.bc.learning_rate > 0:
            raise ValueError(f"config.bc.learning_rate={config.bc.learning_rate}; expected a "
                             "positive number")
    if not config.spirl.target_divergence >= 0 or not config.spirl.max_latent > 0:
        raise ValueError(f"config.spirl.target_divergence={config.spirl.target_divergence}, "
                         f"config.spirl.max_latent={config.spirl.max_latent}; expected a "
                         "divergence >= 0 (nats) and a bound > 0")
    if parts.latent and not config.parrot.target_kl >= 0:
        raise ValueError(f"config.parrot.target_kl={config.parrot.target_kl}; expected a "
                         "divergence >= 0 (nats)")
    try:  # the SAC hyperparameters' own checks, named by their config section
        sac.Hyperparams(**config.sac.to_dict())
    except (TypeError, ValueError) as error:
        raise ValueError(f"config.sac: {error}") from None
    learns_by = learner_name(config)
    if learns_by in LEARNERS:
        _, hp_class, section = LEARNERS[learns_by]
        try:
            hp_class.from_config(config.sac, config[section])
        except (TypeError, ValueError) as error:
            raise ValueError(f"config.{section}: {error}") from None
    check_offline(config)


def run_defining(config) -> tuple[str, ...]:
    """The config's fields a rerun in the same workdir must agree on: ``RUN_DEFINING``, the
    agent's own sections and its learner's."""
    learner_section = (learner_name(config),) if learner_name(config) in LEARNERS else ()
    return tuple(dict.fromkeys(RUN_DEFINING + spec_of(config.agent).sections
                               + learner_section))


def check_offline(config: ml_collections.ConfigDict) -> None:
    """ValueError naming the first invalid ``config.offline`` setting."""
    offline = config.offline
    if offline.rewards not in transitions.REWARDS:
        raise ValueError(f"config.offline.rewards={offline.rewards!r}; expected one of "
                         f"{transitions.REWARDS}")
    if int(offline.steps) < 0:
        raise ValueError(f"config.offline.steps={offline.steps}; expected an integer >= 0")
    if not 0.0 <= offline.mix <= 1.0:
        raise ValueError(f"config.offline.mix={offline.mix}; expected a fraction in [0, 1]")
    if (offline.steps or offline.mix) and not offline.dataset:
        raise ValueError(f"config.offline.steps={offline.steps} and config.offline.mix="
                         f"{offline.mix} need reward-labelled data: pass "
                         "--config.offline.dataset=DIR (experiments.collect_data "
                         "--config.keep=all) or minari:ID")
    if offline.dataset and spec_of(config.agent).acts_through != "env":
        raise ValueError(f"config.offline.dataset is for agents acting in the env's action "
                         f"space ({', '.join(agents_where(acts_through='env'))}); agent "
                         f"{config.agent!r} stores other actions in its buffer")


def check_inputs(config: ml_collections.ConfigDict) -> None:
    """``check_config``, and that the prior and the dataset it names exist: what a user
    can get wrong before training starts."""
    check_config(config)
    parts = spec_of(config.agent)
    if parts.reads_prior:
        check_prior_dir(config.prior)
    if parts.starts_from == "bc":
        run_config.check_datasets(config.dataset)
    if parts.pretrained:
        kind = parts.pretrained
        saved.read_config(config.pretrained, kind, PRETRAINED_LOADERS[kind][1])
    if config.offline.dataset:
        transitions.check_spec(config.offline.dataset)


def load_offline_data(config, pool: EnvPool) -> transitions.Transitions | None:
    """The run's reward-labelled data (``config.offline``), checked against the env: its
    task (unless ``rewards="zero"``), observation shape and dtype, action dimension."""
    if not config.offline.dataset:
        return None
    obs_space, act_space = pool.single_observation_space, pool.single_action_space
    data = transitions.load_transitions(config.offline.dataset, box_bounds(act_space))
    transitions.check_task(data, config.env, config.offline.rewards)
    transitions.check_spaces(data, obs_space.shape, obs_space.dtype, int(act_space.shape[0]))
    return data.with_zero_rewards() if config.offline.rewards == "zero" else data


def action_horizon(config, pretrained) -> int:
    """Env steps per agent action: the pretrained plan's horizon for an agent acting by
    plans (``AgentSpec.plan``)."""
    return int(pretrained.horizon) if spec_of(config.agent).plan is not None else 1


def run_env(description: dict[str, Any], frozen_params: Any = None):
    """What ``EnvPool`` takes for a run's env: its id, or ``ActionChunks`` of it for an
    agent acting ``action_horizon`` steps at a time, or ``LatentSkills`` for one acting
    through a closed-loop skill model (whose parameters, ``frozen_params``, its workers
    decode each step with)."""
    skills = None
    model = description.get("pretrained_model") or {}
    plan = spec_of(description["agent"]).plan
    if plan is not None and model.get("closed_loop"):
        if frozen_params is None:
            raise ValueError("a closed-loop skill model's env needs the model's parameters")
        decoder = spirl.StepDecoder(dict(model), tuple(description["pretrained_image_shape"]),
                                    int(description["pretrained_action_dim"]),
                                    jax.tree.map(np.asarray, frozen_params))
        bound = legacy.with_added_fields("spirl", description.get("spirl", {}))["max_latent"]
        skills = (decoder, int(model["latent_dim"]), float(bound))
    return env_source(description["env"], description.get("action_horizon", 1),
                      bool(plan), skills)


def describe_run(config, pool: EnvPool, prior, pretrained=None) -> dict[str, Any]:
    """``config.json``: the config plus the env's spaces and the prior's (or pretrained
    encoder's) model, which ``load_agent`` needs to rebuild the agent from the workdir
    alone."""
    description = run_config.to_json(config.to_dict())
    obs_space, act_space = pool.single_observation_space, pool.single_action_space
    description["spaces"] = {
        "observation_shape": list(obs_space.shape), "observation_dtype": obs_space.dtype.name,
        "action_shape": list(act_space.shape),
        "action_bounds": list(box_bounds(act_space))}
    description["prior_model"] = None
    if prior is not None:
        with open(os.path.join(config.prior, run_config.CONFIG_FILE)) as f:
            prior_config = json.load(f)
        description["prior_model"] = prior_config["model"]
        description["prior_image_shape"] = list(prior.image_shape)
        description["prior_source"] = {"workdir": os.path.abspath(config.prior),
                                       "step": prior.step}
    description["action_horizon"] = action_horizon(config, pretrained)
    description["pretrained_model"] = None
    if pretrained is not None:
        description.update(_pretrained_fields(pretrained))
        description["pretrained_source"] = {"workdir": os.path.abspath(config.pretrained),
                                            "step": pretrained.step}
    return description


def _pretrained_fields(pretrained) -> dict[str, Any]:
    """What ``run_env`` reads of a pretrained model before the run is described."""
    if pretrained is None:
        return {}
    return {"pretrained_model": pretrained.model_config,
            "pretrained_image_shape": list(pretrained.image_shape),
            # a decoder's one-step action (closed-loop skills: not the env's, which is z)
            "pretrained_action_dim": getattr(pretrained, "step_action_dim", None)}


def load_pretrained(config):
    """The model ``config.pretrained`` holds, for the agents that read one (else None)."""
    kind = spec_of(config.agent).pretrained
    return None if kind is None else PRETRAINED_LOADERS[kind][0](config.pretrained)


def agent_from_description(description: dict[str, Any]) -> Agent:
    spaces = description["spaces"]
    return make_agent(description, spaces["observation_shape"], spaces["observation_dtype"],
                      spaces["action_shape"], spaces["action_bounds"],
                      description.get("prior_model"), description.get("prior_image_shape"),
                      description.get("pretrained_model"),
                      description.get("pretrained_image_shape"))


@dataclasses.dataclass(frozen=True)
class Result:
    env_steps: int
    state: SACState  # the final SAC state
    params: dict[str, Any]  # acting parameters (actor, critic[, prior]) as checkpointed
    evaluation: dict[str, float]  # the last evaluation of this call (empty if none ran)


def train(config: ml_collections.ConfigDict, workdir: str) -> Result:
    """Trains (or resumes, or finds finished) the run in ``workdir``."""
    check_inputs(config)
    mesh = parallel.make_mesh(config.num_devices or None)
    parallel.check_batch_size(config.batch_size, mesh)
    with contextlib.ExitStack() as stack:
        run = open_run(config, workdir, mesh, stack)
        if isinstance(run, Result):
            return run
        return drive([run.loop], OneLearner(run.loop.programs, run.state), run.env_steps)[0]


@dataclasses.dataclass
class OpenRun:
    """A run ready for its online phase: its loop (pool, replay, checkpoints, metrics) and
    the state it continues from."""
    loop: "_Loop"
    state: SACState
    env_steps: int


def open_run(config, workdir: str, mesh, stack: contextlib.ExitStack,
             resume_at: int | None = None) -> OpenRun | Result:
    """Everything ``train`` does before its online loop: the env pool, the run's config
    check, the programs, the fresh (behaviour-cloned, offline-pretrained) or restored
    state. Its pool, checkpoints and metrics close with ``stack``. A finished run gives
    its ``Result``. ``resume_at``: restore no later than this env step (runs trained
    together resume from one step; ``agents.together``)."""
    parts = spec_of(config.agent)
    prior = load_prior(config.prior) if parts.reads_prior else None
    pretrained = load_pretrained(config)
    # what the acting parameters' "prior" holds: the flow, or the decoder acted through
    frozen = pretrained if parts.acts_through == "decoder" else prior
    horizon = action_horizon(config, pretrained)
    fused, every = pool_schedule(config.num_envs, config.updates_per_env_step, horizon)
    env = run_env({"env": config.env, "agent": config.agent, "action_horizon": horizon,
                   "spirl": config.spirl.to_dict(),
                   **_pretrained_fields(pretrained)},
                  None if frozen is None else frozen.params)
    pool = stack.enter_context(EnvPool(env, config.num_envs, config.num_workers or None))
    if frozen is not None:
        check_compatible(frozen, config.env, pool.single_observation_space,
                         pool.single_action_space)
    data = load_offline_data(config, pool)
    description = describe_run(config, pool, prior, pretrained)
    if data is not None:
        description["offline_data"] = transitions.describe(data)
    agent = agent_from_description(description)
    lead = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    if lead:
        run_config.check_and_write(workdir, description, run_defining(config),
                                   added=legacy.RL_FIELDS, missing=legacy.RL_FIELDS[legacy.TOP])
    obs_space = pool.single_observation_space
    programs = compile_programs(agent, mesh, tuple(obs_space.shape), obs_space.dtype.name,
                                fused, config.fast_compile)
    checkpoints = checkpoint.Checkpoints(os.path.join(workdir, checkpoint.DIRECTORY),
                                         config.max_checkpoints,
                                         keep_steps=(0,) if config.keep_first_checkpoint else ())
    stack.callback(checkpoints.close)
    if resume_at is not None:
        checkpoints.set_aside_after(resume_at, "ahead")
    fresh = checkpoints.latest_step() is None
    state, prior_params, env_steps = _initial_state(
        agent, programs, checkpoints, config, frozen,
        pretrained.params if parts.sees == "features" else None)
    if env_steps >= config.total_env_steps:
        logging.info("%s: finished at %d env steps; nothing to do", workdir, env_steps)
        return Result(env_steps, state, acting_params(state, prior_params), {})
    writer = stack.enter_context(MetricWriter(workdir, env_steps or None, enabled=lead))
    loop = _Loop(config, agent, programs, pool, checkpoints, writer, prior_params,
                 fused, every, os.path.join(workdir, REPLAY_DIRECTORY), data, env, horizon)
    if fresh:
        state = loop.pretrain_offline(state, workdir)
        loop.save(state, 0)  # BC and offline updates are not redone on resume
    return OpenRun(loop, state, env_steps)


def _initial_state(agent: Agent, programs: Programs, checkpoints, config, prior,
                   trunk_params=None) -> tuple[SACState, Any, int]:
    """Fresh state (its trunk from the prior, or from ``trunk_params`` where the agent reads
    a pretrained encoder; after behaviour cloning for bc_sac), or the latest checkpoint's.
    ``prior``: the frozen map the acting parameters hold as ``"prior"`` (or None)."""
    rng = jax.random.key(config.seed)
    step = checkpoints.latest_step()
    prior_params = None if prior is None else jax.device_put(prior.params, programs.replicated)
    if step is None:
        state = programs.init(rng)
        trunk_source = prior_params if trunk_params is None else trunk_params
        if trunk_source is not None:
            state = jax.device_put(with_pretrained_trunk(agent, state, trunk_source),
                                   programs.replicated)
        if agent.spec.starts_from == "bc":
            state = jax.device_put(_behaviour_cloning(agent, state, config), programs.replicated)
        if agent.networks.reference is not None:  # SPiRL: its skill prior, and the policy
            state = jax.device_put(with_reference(agent, state, prior_params["prior"],
                                                  bool(config.spirl.init_from_prior)),
                                   programs.replicated)
        return state, prior_params, 0
    abstract = {"sac": jax.eval_shape(programs.init, rng)}
    params_abstract = jax.eval_shape(lambda s: acting_params(s, prior_params), abstract["sac"])

    def restore(step):
        params = checkpoints.restore_params(step, params_abstract)
        return checkpoints.restore_state(step, abstract)["sac"], params

    (state, params), step = checkpoints.restore_newest_good(restore)
    if prior is not None:
        # on this run's devices (the checkpoint may come from a run with other devices)
        prior_params = jax.device_put(params["prior"], programs.replicated)
    logging.info("resuming from %s at env step %d", checkpoints.directory, step)
    return state, prior_params, step


def _behaviour_cloning(agent: Agent, state: SACState, config) -> SACState:
    from parrot_jax.data import load_dataset
    from parrot_jax.data.sampling import BatchSampler

    dataset = load_dataset(run_config.dataset_paths(config.dataset), in_memory=False)
    sampler = BatchSampler(dataset, config.bc.batch_size, config.seed)
    actor, critic, _ = bc.pretrain(
        agent.networks, state.actor_params, state.critic_params, sampler,
        steps=config.bc.steps, learning_rate=config.bc.learning_rate,
        entropy_weight=config.bc.entropy_weight, seed=config.seed,
        augment_pad=agent.hp.augment_pad, progress=config.progress)
    actor_opt, critic_opt, _ = optimizers(agent.hp)
    # The target gets buffers of its own: the update donates the state, and XLA refuses
    # (then crashes on) one buffer donated twice.
    target = jax.tree.map(lambda x: x.copy(), critic)
    return state.replace(actor_params=actor, critic_params=critic, target_critic_params=target,
                         actor_opt_state=actor_opt.init(actor),
                         critic_opt_state=critic_opt.init(critic))


@jax.jit
def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


def check_finite(state, env_steps: int, last_good: int | None) -> None:
    """FloatingPointError if the actor, critic, temperature or value network holds a NaN or
    an infinity: such a state must never become the newest checkpoint (a rerun would
    resume from it)."""
    learned = (state.actor_params, state.critic_params, getattr(state, "log_alpha", None),
               getattr(state, "value_params", None))
    if not bool(_all_finite(parallel.local(learned))):
        raise FloatingPointError(
            f"non-finite parameters at env step {env_steps}: not checkpointed (the newest "
            f"checkpoint stays step {last_good}); lower the learning rates or the reward scale")


def _seed(*values: int) -> int:
    return int(np.random.SeedSequence(list(values)).generate_state(1)[0] >> 1)


class _Loop:
    """The training loop's state between pool steps (module docstring)."""

    def __init__(self, config, agent, programs, pool, checkpoints, writer, prior_params,
                 fused, every, replay_directory, data=None, env=None, horizon: int = 1):
        self.config, self.agent, self.programs, self.pool = config, agent, programs, pool
        self.env = config.env if env is None else env  # what the evaluation pool steps
        self.pool_env_steps = config.num_envs * horizon  # env steps per pool step
        self.data = data  # reward-labelled transitions (config.offline), or None
        self.checkpoints, self.writer, self.prior_params = checkpoints, writer, prior_params
        self.fused, self.every = fused, every
        obs_space = pool.single_observation_space
        self.replay = ReplayBuffer(config.replay_capacity, config.num_envs, obs_space.shape,
                                   (agent.policy_dim,), obs_space.dtype)
        self.replay_log = ReplayLog(replay_directory, self.replay,
                                    write=jax.process_index() == 0)
        self.metrics = []  # device-side update metrics since the last log
        self.episode_returns = np.zeros(config.num_envs)
        self.episode_lifted = np.zeros(config.num_envs, bool)  # suite envs: held an object
        self.finished = collections.defaultdict(list)  # returns / successes since last log
        self._eval_pool = None
        self.last_eval: dict[str, float] = {}
        self.label = ""  # what the progress lines start with (several runs: the workdir)

    def save(self, state: SACState, env_steps: int) -> None:
        """The replay since the last save, then the checkpoint (the replay first: a kill
        between the two resumes from the previous checkpoint, whose replay is intact)."""
        check_finite(state, env_steps, self.checkpoints.latest_step())
        kept = self.checkpoints.all_steps()
        self.replay_log.commit(env_steps, min(kept) if kept else env_steps)
        # What the run holds besides its checkpoints (bounded). Not at step 0: a run
        # resumed from step 0 does not save it again, and its rows must match.
        if env_steps and self.replay_log.write:
            self.writer.write(env_steps, {"disk/replay_gb": self.replay_log.disk_bytes() / 1e9})
        self.checkpoints.save(env_steps, {"sac": state}, acting_params(state, self.prior_params))

    def _restart_episodes(self, env_steps: int):
        """Fresh episodes from env seeds given by the env-step count (run start and every
        checkpoint: where a resumed run starts)."""
        obs, _ = self.pool.reset(seed=_seed(self.config.seed, env_steps, 3))
        self.replay_log.start(obs)
        self.episode_returns[:] = 0.0
        self.episode_lifted[:] = False
        return obs

    def begin(self, env_steps: int) -> None:
        """The replay of a resumed run, fresh episodes: where the online phase starts."""
        self.collected = env_steps  # the replay of a resumed run is restored ...
        if not self.replay_log.restore(env_steps):
            logging.warning("%s has no replay saved for env step %d (a run from before "
                            "replay logs): refilling %d env steps before updates resume",
                            self.replay_log.directory, env_steps, self.config.start_steps)
            self.collected = 0  # ... unless it was not saved
        self.obs = self._restart_episodes(env_steps)
        self.key = jax.random.fold_in(jax.random.key(self.config.seed), 1)

    def act(self, params, env_steps: int):
        """(policy actions, env actions) for the pool's current observations."""
        policy_actions, env_actions = act(self.agent, params, self.obs,
                                          jax.random.fold_in(self.key, env_steps))
        return np.asarray(policy_actions), np.asarray(env_actions)

    def update_due(self, env_steps: int) -> bool:
        pool_steps = env_steps // self.pool_env_steps
        return self.collected >= self.config.start_steps and pool_steps % self.every == 0

    def advance(self, actions, env_steps: int) -> None:
        """Steps the pool with ``actions`` (from ``act`` at ``env_steps``)."""
        self.obs = self._step(*actions)
        self.collected += self.pool_env_steps

    def after_step(self, state: SACState, before: int, env_steps: int, bar) -> None:
        """Logging, evaluation and a checkpoint where the pool step from ``before`` to
        ``env_steps`` reached their intervals (``state``: the state after it)."""
        config = self.config
        if _reached(before, env_steps, config.log_every):
            self.clock = self._log(state, env_steps, self.clock, bar)
        if _reached(before, env_steps, config.eval_every) or env_steps >= config.total_env_steps:
            self._evaluate(state, env_steps, bar)
        if (_reached(before, env_steps, config.checkpoint_every)
                or env_steps >= config.total_env_steps):
            self.save(state, env_steps)
            if env_steps < config.total_env_steps:
                self.obs = self._restart_episodes(env_steps)

    def events_at(self, before: int, env_steps: int) -> bool:
        """Whether ``after_step`` has something to do for this pool step."""
        config = self.config
        return env_steps >= config.total_env_steps or any(
            _reached(before, env_steps, every)
            for every in (config.log_every, config.eval_every, config.checkpoint_every))

    def close(self) -> None:
        if self._eval_pool is not None:
            self._eval_pool.close()
            self._eval_pool = None

    def pretrain_offline(self, state, workdir: str):
        """``offline.steps`` updates on batches of the offline data alone (rounded up to a
        multiple of the K fused updates); their losses go to ``OFFLINE_METRICS`` and, last
        values, to the metrics at env step 0."""
        config = self.config
        if not config.offline.steps:
            return state
        history = []
        dispatches = -(-int(config.offline.steps) // self.fused)
        for k in tqdm.trange(dispatches, desc="offline updates", disable=not config.progress,
                             dynamic_ncols=True):
            rng = np.random.default_rng([config.seed, k, 4])
            state = self._apply(state, self._draw(self.data, rng, self.fused * config.batch_size))
            if (k + 1) * self.fused % config.log_every < self.fused or k + 1 == dispatches:
                row = self._summarise(self.metrics)
                self.metrics = []
                history.append({"update": int(state.step), **row})
                logging.info("offline update %d: %s", int(state.step),
                             ", ".join(f"{name} {v:.4g}" for name, v in row.items()))
        if jax.process_index() == 0:
            io.write_json(os.path.join(workdir, OFFLINE_METRICS), history)
        self.writer.write(0, {f"offline/{k}": v for k, v in history[-1].items()})
        return state

    def _draw(self, source, rng, size: int) -> dict[str, np.ndarray]:
        hp = self.agent.hp
        return source.sample(rng, size, hp.n_step, hp.discount)

    def draw_update(self, env_steps: int) -> dict[str, np.ndarray]:
        """The batch of the K fused updates due at ``env_steps``: one draw of K x B i.i.d.
        transitions (with ``offline.mix`` of each batch from the dataset), viewed as K
        batches with no per-batch copies, and this process's rows of each."""
        rng = np.random.default_rng([self.config.seed, env_steps, 2])
        size = self.fused * self.config.batch_size
        # the same number of dataset rows in each of the K batches
        from_data = 0 if self.data is None else self.fused * int(
            round(self.config.offline.mix * self.config.batch_size))
        batch = self._draw(self.replay, rng, size - from_data) if from_data < size else None
        if from_data:  # each of the K batches gets its share of dataset rows
            data = self._draw(self.data, rng, from_data)
            batch = data if batch is None else {
                k: np.concatenate([v.reshape((self.fused, -1) + v.shape[1:]),
                                   data[k].reshape((self.fused, -1) + v.shape[1:])],
                                  axis=1).reshape((size,) + v.shape[1:])
                for k, v in batch.items()}
        return self._rows(batch)

    def _rows(self, batch):
        """A global batch of K x B rows as K batches of this process's rows."""
        batch = {k: v.reshape((self.fused, -1) + v.shape[1:]) for k, v in batch.items()}
        # Every process holds the same buffer and draws the same global batch; each puts
        # its rows of it on its devices (all of them in a one-process run).
        share = self.config.batch_size // jax.process_count()
        rows = slice(jax.process_index() * share, (jax.process_index() + 1) * share)
        return {k: v[:, rows] if self.fused > 1 else v[0, rows] for k, v in batch.items()}

    def _apply(self, state, batch):
        """One dispatch of the K fused updates on a global batch of K x B rows."""
        state, metrics = self.programs.update(
            state, parallel.place_batch(self._rows(batch), self.programs.batch_sharding))
        self.metrics.append(metrics)
        return state

    @staticmethod
    def _summarise(metrics: list, where: str = "in the offline updates") -> dict[str, float]:
        """Per-update metrics averaged (NaN, a batch without what a metric averages, such
        as q_rewarded, is skipped); FloatingPointError on a non-finite critic loss."""
        stacked = {k: np.concatenate([np.atleast_1d(np.asarray(m[k])) for m in metrics])
                   for k in metrics[0]}
        if not np.isfinite(stacked["critic_loss"]).all():
            raise FloatingPointError(f"non-finite critic loss {where}; lower the learning "
                                     "rates or the reward scale")
        return {k: float(np.nanmean(v)) for k, v in stacked.items() if not np.isnan(v).all()}

    def _step(self, policy_actions, env_actions):
        obs, rewards, terminated, truncated, infos = self.pool.step(env_actions)
        self.replay_log.add(policy_actions, rewards, terminated, truncated, obs,
                            infos["final_obs"])
        self.episode_returns += rewards
        if "held" in infos:  # (num_envs, objects): an object held off the table
            self.episode_lifted |= np.asarray(infos["held"], bool).reshape(len(obs), -1).any(-1)
        for i in np.flatnonzero(terminated | truncated):
            self.finished["return"].append(self.episode_returns[i])
            if "success" in infos:
                self.finished["success"].append(float(infos["success"][i]))
            if "held" in infos:
                self.finished["lifted"].append(float(self.episode_lifted[i]))
            self.episode_returns[i], self.episode_lifted[i] = 0.0, False
        return obs

    def _log(self, state, env_steps, clock, bar):
        now = time.perf_counter()
        row = {"perf/env_steps_per_sec": (env_steps - clock[1]) / max(now - clock[0], 1e-9),
               "perf/updates": float(state.step),
               "perf/replay_transitions": float(len(self.replay))}
        if self.metrics:
            row.update({f"train/{k}": v for k, v in self._summarise(
                self.metrics, f"before env step {env_steps}").items()})
            self.metrics = []
        if self.finished["return"]:
            row["train/episode_return"] = float(np.mean(self.finished["return"]))
            row["train/episodes"] = float(len(self.finished["return"]))
        for name in ("success", "lifted"):
            if self.finished[name]:
                row[f"train/{name}"] = float(np.mean(self.finished[name]))
        self.finished.clear()
        self.writer.write(env_steps, row)
        _report(bar, env_steps, row, self.label)
        return now, env_steps

    def _evaluate(self, state, env_steps, bar=None):
        config = self.config
        if self._eval_pool is None:
            self._eval_pool = EnvPool(self.env, config.eval_num_envs,
                                      config.num_workers or None)
        params = parallel.local(acting_params(state, self.prior_params))
        policy = StartRecorder(self.agent, params, config.eval_deterministic)
        rollouts = rollout_success(self._eval_pool, policy, config.eval_episodes,
                                   config.eval_seed, discount=self.agent.hp.discount)
        successes = int(rollouts.successes.sum())
        low, high = wilson_interval(successes, config.eval_episodes)
        q_start = policy.q_start(config.eval_episodes)
        row = {"eval/return": float(rollouts.returns.mean()),
               "eval/success": successes / config.eval_episodes,
               "eval/success_ci_low": low, "eval/success_ci_high": high,
               # The critic's value of each episode's first action against the discounted
               # return that followed (the critic's also counts the regulariser's bonus).
               "eval/q_start": float(q_start.mean()),
               "eval/discounted_return": float(rollouts.discounted_returns.mean())}
        # Does the critic already tell, at the first step, the episodes that will succeed?
        for name, episodes in (("success", rollouts.successes), ("failure", ~rollouts.successes)):
            if episodes.any():
                row[f"eval/q_start_{name}"] = float(q_start[episodes].mean())
        if config.env.startswith("parrot/"):
            row["eval/lifted"] = float(rollouts.lifted.mean())
        self.last_eval = row
        self.writer.write(env_steps, row)
        _report(bar, env_steps, row, self.label)


class OneLearner:
    """One run's state and its update program (``drive``'s learner)."""

    def __init__(self, programs: Programs, state: SACState):
        self.programs, self.state = programs, state

    def states(self) -> list[SACState]:
        return [self.state]

    def acting(self, prior_params: list) -> list[dict[str, Any]]:
        return [parallel.local(acting_params(self.state, prior_params[0]))]

    def update(self, batches: list[dict[str, np.ndarray]]) -> list:
        self.state, metrics = self.programs.update(
            self.state, parallel.place_batch(batches[0], self.programs.batch_sharding))
        return [metrics]


def drive(loops: list[_Loop], learner, env_steps: int) -> list[Result]:
    """The online phase of ``loops`` in lockstep from ``env_steps`` (the module
    docstring's loop): each pool step every run acts, the learner's one update dispatch
    (all runs' batches) runs while the pools step, then each run logs, evaluates and
    saves at its intervals. ``learner`` (``OneLearner``, or ``agents.together``'s for
    several runs) holds the states: ``states()``, ``acting(prior_params)``,
    ``update(batches)``."""
    config = loops[0].config  # the schedule every run shares
    for loop in loops:
        loop.begin(env_steps)
    if env_steps == 0:
        for loop, state in zip(loops, learner.states()):
            loop._evaluate(state, 0)
    clock = (time.perf_counter(), env_steps)
    for loop in loops:
        loop.clock = clock
    step = loops[0].pool_env_steps
    try:
        with tqdm.tqdm(total=config.total_env_steps, initial=env_steps, unit="step",
                       dynamic_ncols=True, disable=not config.progress) as bar:
            while env_steps < config.total_env_steps:
                acting = learner.acting([loop.prior_params for loop in loops])
                actions = [loop.act(params, env_steps) for loop, params in zip(loops, acting)]
                if all(loop.update_due(env_steps) for loop in loops):  # runs during the steps
                    metrics = learner.update([loop.draw_update(env_steps) for loop in loops])
                    for loop, row in zip(loops, metrics):
                        loop.metrics.append(row)
                for loop, pair in zip(loops, actions):
                    loop.advance(pair, env_steps)
                before, env_steps = env_steps, env_steps + step
                bar.update(step)
                if loops[0].events_at(before, env_steps):
                    for loop, state in zip(loops, learner.states()):
                        loop.after_step(state, before, env_steps, bar)
    finally:
        for loop in loops:
            loop.close()
    return [Result(env_steps, state, acting_params(state, loop.prior_params), loop.last_eval)
            for loop, state in zip(loops, learner.states())]


def _reached(before: int, now: int, every: int) -> bool:
    """Whether the step from ``before`` to ``now`` env steps reached a multiple of
    ``every`` (for one-step agents ``now`` is itself that multiple)."""
    return now // every > before // every


def _report(bar, env_steps: int, row: dict[str, float], label: str = "") -> None:
    line = f"{label}env step {env_steps}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items())
    if bar is None or bar.disable:
        logging.info(line)
    else:
        bar.write(line)
