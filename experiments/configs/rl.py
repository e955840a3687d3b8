"""RL on a new task: SAC, PARROT (SAC over z through the prior) and the paper's baselines.

    python -m experiments.train_rl --config=experiments/configs/rl.py \
        --config.agent=parrot --config.env=parrot/PickUpCan-v0 \
        --config.prior=runs/prior --workdir=runs/rl/parrot_PickUpCan

Agents: ``parrot``, ``sac``, ``bc_sac`` (needs ``--config.dataset``), ``prior_explore``
(needs ``--config.prior``), ``vae_features``, ``hirl`` and ``trajrl`` (need
``--config.pretrained``, a VAE, a cVAE or a TrajVAE written by ``experiments.pretrain``;
``trajrl`` chooses one latent per episode and runs its decoded 25-step plan open-loop, so
each of its pool steps is ``num_envs * 25`` env steps), ``spirl`` (needs SPiRL's skill
model as ``--config.pretrained``; one skill of ``H`` = 5 env steps per decision), ``iql`` and ``awac`` (offline first with
``--config.offline.dataset=DIR|minari:ID --config.offline.steps=N``; any agent acting in the
env's action space can also draw ``offline.mix`` of its batches from that data). ``env`` is any gymnasium id with Box spaces (images (H, W, C)
uint8 or vectors); the suite's ids are ``parrot/...``. ``--config.learner=sac|iql|awac``
changes how an agent learns, not what it acts in: ``--config.agent=parrot
--config.learner=awac`` is PARROT with an advantage-weighted actor over ``z``
(``docs/rl_diagnosis.md``, Round 5).

Variants (``--config=experiments/configs/rl.py:VARIANT``):
- default: the paper (Table 1 and the original scripts): batch 256, separate conv
  trunks, heads 1024-512-256, 2,500 env steps before training, 1 update per env step,
  hard target copy every 1000 updates; a GPU's work;
- ``cpu``: the same algorithm sized for a 2-core CPU (shared trunk, heads 256-256,
  batch 64, 1 update per 4 env steps, target copy every 250 updates), with 5-step
  returns and a temperature that starts at 0.1 and learns at 1e-3: with one-step
  targets, a copy every 250 updates and 0.25 updates per env step, value reached the
  start of PickUpCan episodes only after ~20K env steps (Q(s_0, a_0) below 0 while the
  discounted return was 0.3-1.0), and alpha took the whole 40K-step budget to fall from
  1 to 0.06, so PARROT's policy stayed at N(0, I) (KL 0.001 at 9K env steps); measured
  in ``docs/rl_diagnosis.md``;
- ``vector``: vector observations (MLP 256-256, Polyak targets), e.g. ``Pendulum-v1``;
- ``tiny``: small networks and a few hundred steps, for tests and smoke runs.

``--config.network.trunk=prior_encoder`` (with ``shared_trunk``) makes the prior's image
encoder the trunk, from its trained parameters (``freeze_trunk``: not trained); measured
on PickUpCan in ``docs/rl_diagnosis.md`` (no climb either way).
"""

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.agent = "parrot"  # agents.AGENTS: parrot | sac | bc_sac | prior_explore | ...
    # How the agent learns (agents.LEARNER_NAMES): "" the agent's own (SAC; IQL and AWAC
    # for those agents), or "sac" | "iql" | "awac" for any agent but spirl; the learner's
    # settings are its section below (parrot with "awac": docs/rl_diagnosis.md Round 5).
    config.learner = ""
    config.env = "parrot/PickUpCan-v0"
    config.prior = ""  # workdir of experiments.train_prior (parrot, prior_explore)
    config.dataset = ""  # prior dataset DIR[,DIR] for bc_sac's behaviour cloning
    # workdir of experiments.pretrain: the VAE whose frozen encoder vae_features reads, or
    # the cVAE whose frozen decoder hirl acts through, or the TrajVAE whose trajrl plans by,
    # or the skill model spirl acts through
    config.pretrained = ""
    config.seed = 0

    config.num_envs = 4  # envs stepped together; each pool step is num_envs env steps
    config.num_workers = 0  # env processes (0: min(cores, num_envs))
    config.total_env_steps = 200_000
    config.start_steps = 2_500  # env steps collected (with the policy) before updates
    config.updates_per_env_step = 1.0
    config.batch_size = 256  # global: split over all devices
    config.replay_capacity = 200_000  # frames (48x48x3 uint8: 6.9 kB each)

    config.network = ml_collections.ConfigDict()
    config.network.shared_trunk = False  # True: one conv trunk, in the critic
    # "conv": the trunk above, trained by the critic; "prior_encoder" (shared trunk, agents
    # with a prior): the prior's image encoder psi, started from its trained parameters.
    config.network.trunk = "conv"
    config.network.freeze_trunk = False  # True: the shared trunk is not trained
    config.network.channels = (16, 16, 16)  # 3x3 convs, 2x2 max-pool after the first two
    # The conv trunks' compute type: "float32", or "bfloat16" (parameters, heads and
    # optimizer stay float32). On an H200 the paper update took 2.64 ms against 3.16 in one
    # process, 3.38 against 3.24 in another (cuDNN's kernel choice; README "Measured on an
    # H200").
    config.network.trunk_dtype = "float32"
    # True: the critic's per-head trunks as one vmapped module (parameters stacked under
    # "trunks"; checkpoints differ from the default's). On an H200 the paper update takes
    # 2.60 ms against 3.24 (2.50 with bf16 trunks); on a CPU the pair's forward + backward
    # 6.5x as long (grouped convolutions). Needs shared_trunk=False.
    config.network.vmap_trunks = False
    config.network.hidden = (1024, 512, 256)  # actor and Q heads
    config.network.num_qs = 2
    config.network.log_std_min = -10.0
    config.network.log_std_max = 2.0

    config.sac = ml_collections.ConfigDict()  # parrot_jax.agents.sac.Hyperparams
    config.sac.discount = 0.99
    config.sac.reward_scale = 1.0
    config.sac.actor_lr = 3e-4
    config.sac.critic_lr = 3e-4
    config.sac.alpha_lr = 3e-4
    config.sac.init_alpha = 1.0
    config.sac.target_entropy = ml_collections.config_dict.placeholder(float)  # None: -dim
    config.sac.target_update = "hard"  # hard | polyak
    config.sac.target_update_period = 1000
    config.sac.tau = 0.005
    config.sac.augment_pad = 4
    config.sac.n_step = 1  # n-step returns (the replay sums up to n rewards per target)

    config.parrot = ml_collections.ConfigDict()
    config.parrot.tanh_z = False  # True: the original code's z in (-1, 1) (ablation)
    # Unsquashed z: mean softly within +-z_mean_bound (None: unbounded), log std <= this
    # (0: std <= 1, the base distribution's). Both leave pi(z | s) = N(0, I) at init.
    config.parrot.z_mean_bound = 3.0
    config.parrot.z_log_std_max = 0.0
    # "kl_standard_normal": -KL(pi(z|s) || N(0, I)) in place of SAC's entropy bonus, with the
    # temperature tuned toward target_kl (parrot_jax.agents.sac); "entropy": plain SAC.
    config.parrot.regularizer = "kl_standard_normal"
    config.parrot.target_kl = 2.0
    # What the critic reads beside the image: "z" (the paper's Q(s, z)), "action" (the env
    # action the frozen prior makes of it, Q(s, f(z; s))) or "both" ([z, f(z; s)]).
    # docs/rl_diagnosis.md, Round 7: from the prior's first steps a critic ranks them
    # better from the action (held-out AUC 0.87 against 0.74 from 10,000 episodes).
    config.parrot.critic_input = "z"
    # SPiRL (agent "spirl"; S App. B.2, clvrai/spirl): KL(pi || skill prior) in place of the
    # entropy, its temperature tuned toward this divergence (S: 1 on the maze, 5 on block
    # stacking and the kitchen; 5 here, a manipulation task); skills z = max_latent *
    # tanh(u); the policy a copy of the trained skill prior at step 0 (False: S App. F's
    # ablation without the initialisation, the prior still the regularizer's reference).
    config.spirl = ml_collections.ConfigDict()
    config.spirl.target_divergence = 5.0
    config.spirl.max_latent = 2.0
    config.spirl.init_from_prior = True
    config.prior_explore = ml_collections.ConfigDict()
    config.prior_explore.epsilon = 0.9
    # iql and awac (parrot_jax.agents.iql / awac); discount, learning rates, targets,
    # augmentation and n-step come from the sac section, shared by every agent.
    config.iql = ml_collections.ConfigDict()
    config.iql.value_lr = 3e-4
    config.iql.expectile = 0.7  # tau: V(s) is the tau-expectile of Q(s, a) over the data
    config.iql.inverse_temperature = 3.0  # beta: actor weights min(exp(beta A), max_weight)
    config.iql.max_weight = 100.0
    config.awac = ml_collections.ConfigDict()
    config.awac.temperature = 2.0  # lambda: actor weights B softmax(A / lambda)
    # rlkit's stabilisers, off (None) by default: A clipped at max_advantage before the
    # softmax (rlkit: 0.5), bootstrapped values clipped at q_max (e.g. 0 where rewards <= 0)
    config.awac.max_advantage = ml_collections.config_dict.placeholder(float)
    config.awac.q_max = ml_collections.config_dict.placeholder(float)
    # Reward-labelled data (parrot_jax.data.transitions): offline updates before the first
    # env step, then a share of every online batch. Any agent acting in the env's action
    # space (sac, bc_sac, prior_explore, iql, awac) can use it.
    config.offline = ml_collections.ConfigDict()
    config.offline.dataset = ""  # DIR[,DIR] (experiments.collect_data) or minari:ID
    # "dataset": the data's own rewards (it must hold episodes of this task only); "zero":
    # every reward 0 (prior data of other tasks: IQL and AWAC then reduce to cloning).
    config.offline.rewards = "dataset"
    config.offline.steps = 0  # updates on dataset batches alone, before the first env step
    config.offline.mix = 0.0  # fraction of each online batch drawn from the dataset
    config.bc = ml_collections.ConfigDict()  # bc_sac's behaviour cloning
    config.bc.steps = 20_000
    config.bc.batch_size = 256
    config.bc.learning_rate = 3e-4
    config.bc.entropy_weight = 0.01

    config.eval_every = 10_000  # env steps
    config.eval_episodes = 50
    config.eval_num_envs = 8
    config.eval_deterministic = True  # the policy's mode (parrot: z = mean) in evaluation
    config.eval_seed = 1_000_000  # eval episode i starts from env seed eval_seed + i
    config.log_every = 1_000
    config.checkpoint_every = 10_000
    config.max_checkpoints = 3
    # Step 0 (the agent before any update) is kept besides the last max_checkpoints, so
    # `experiments.evaluate --step=0` can score the start against the end after a run.
    config.keep_first_checkpoint = True

    config.num_devices = 0  # 0: every device
    config.progress = True
    config.fast_compile = False  # XLA optimisations off: faster compiles, slower steps

    if variant == "cpu":
        config.network.shared_trunk = True
        config.network.hidden = (256, 256)
        config.batch_size = 64
        config.updates_per_env_step = 0.25
        config.start_steps = 1_000
        config.total_env_steps = 40_000
        config.replay_capacity = 100_000
        config.sac.target_update_period = 250
        config.sac.n_step = 5
        config.sac.init_alpha = 0.1
        config.sac.alpha_lr = 1e-3
        config.eval_every = 2_000
        config.eval_episodes = 40
        config.log_every = 500
        config.checkpoint_every = 2_000
        config.bc.steps = 2_000
        config.bc.batch_size = 64
        config.bc.learning_rate = 1e-3
    elif variant == "vector":
        config.env = "Pendulum-v1"
        config.agent = "sac"
        config.network.hidden = (256, 256)
        config.sac.target_update = "polyak"
        config.sac.augment_pad = 0
        config.start_steps = 1_000
        config.total_env_steps = 20_000
        config.eval_every = 2_000
        config.eval_episodes = 8
        config.log_every = 1_000
        config.checkpoint_every = 5_000
    elif variant == "tiny":
        config.network.channels = (4, 4)
        config.network.hidden = (32, 32)
        config.batch_size = 16
        config.num_envs = 2
        config.total_env_steps = 120
        config.start_steps = 40
        config.replay_capacity = 1_000
        config.sac.target_update_period = 10
        config.eval_every = 60
        config.eval_episodes = 2
        config.eval_num_envs = 2
        config.log_every = 20
        config.checkpoint_every = 60
        config.bc.steps = 5
        config.bc.batch_size = 16
        config.progress = False
        config.fast_compile = True
    elif variant:
        raise ValueError(f"unknown rl config variant {variant!r}; expected '', 'cpu', "
                         "'vector' or 'tiny'")
    return config
