"""Models pretrained from the prior dataset for the paper's baselines (``experiments.pretrain``).

    python -m experiments.pretrain --config=experiments/configs/pretrain.py:vae \
        --config.dataset=runs/data/prior --workdir=runs/vae

Variants ``KIND[,SCALE]``:
- ``vae``: the beta-VAE of VAE-features (paper section 5.1, appendix B: the "standard
  CIFAR-10 VAE", Adam lr 1e-3, batch 128, 1.5M updates). What the paper leaves open is
  ``../shared/BASELINES.md``'s assumption: 64 latent features, beta 1, squared-error
  reconstruction. The RL agent ``vae_features`` reads its frozen ``mu(s)``.
- ``cvae``: the conditional VAE of HIRL (paper appendix B: MLPs 512-256-128 and
  128-256-512, the flow prior's image encoder psi feeding both, beta 0.001 reached by a
  logistic anneal that passes half of it at 25K updates, Adam lr 1e-4, 500K updates). The
  latent has the action's dimension; the anneal's width (2,500 updates) and batch 256
  are assumptions. The RL agent ``hirl`` acts through its frozen decoder mean.
- ``trajvae``: the trajectory VAE of TrajRL (paper appendix B: a VAE over whole 25-step
  action trajectories, no image; MLPs 512-256-128 and 128-256-512, beta 0.001 with the
  cVAE's anneal, Adam lr 1e-4, 500K updates). The latent has the action's dimension
  (the paper's 8 is "the same as the behavioral prior"); batch 256 is an assumption. Its
  batches are the dataset's whole episodes (``model.horizon`` 25 steps), actions only.
- ``spirl``: SPiRL's skill model (S App. B.1; clvrai/spirl's image configs): LSTM
  encoder and decoder of 128 over ``model.horizon``-step windows (5: a 25-step episode
  holds 5 skills), latent 10, the skill prior a conv trunk (8, 16, 32) and 6 MLP layers
  of 128 on the window's first image, beta 0.01 (maze and block stacking), Adam lr 1e-3
  (the paper's RAdam), batch 128 (the code's; the paper says 16). The update budget is
  not given; 100K is assumed (about 33 passes over the 1.6M-step dataset's windows at
  batch 128). The RL agent ``spirl`` acts through its decoder with KL to its prior.
  ``--config.model.closed_loop=True``: the code's closed-loop variant (each step's action
  decoded from that step's image, ``parrot_jax.pretrained.spirl``).
- ``SCALE``: '' (the paper's sizes and budget; a GPU), ``cpu`` (VAE: 16 channels, 10K
  updates of 64 images; cVAE: the ``:cpu`` prior's strided encoder, 20K updates of 64 at
  Adam 1e-3, the anneal's midpoint at 5K; TrajVAE: as the cVAE's; SPiRL: 20K updates of
  64) or ``tiny`` (seconds; tests and smoke runs). On 2 CPU cores, with data
  collection sharing them, an update of 64 images ran at 1.9 per second with 32 channels
  and 5.9 with 16: the transposed convolutions' gradients cost about 8 times the forward
  pass on XLA:CPU.

The loop's fields (budget, logging, checkpoints, devices, prefetching) mean what they do
in ``experiments/configs/prior.py``.
"""

import ml_collections

from experiments.configs.loop import add_loop_fields, tiny_loop

KINDS = ("vae", "cvae", "trajvae", "spirl")


def get_config(variant: str = "vae") -> ml_collections.ConfigDict:
    kind, _, scale = (variant or "vae").partition(",")
    if kind not in KINDS or scale not in ("", "cpu", "tiny"):
        raise ValueError(f"unknown pretrain config variant {variant!r}; expected KIND[,SCALE] "
                         f"with KIND one of {KINDS} and SCALE '', 'cpu' or 'tiny'")
    config = ml_collections.ConfigDict()
    config.kind = kind
    config.dataset = ""  # required: DIR or DIR1,DIR2 (written by experiments.collect_data)
    config.max_episodes = 0  # 0: every episode; N: the dataset's first N
    config.in_memory = False  # read all images into RAM (small datasets: faster batches)
    config.validation_fraction = 0.05  # episodes held out for the validation losses
    config.seed = 0

    config.model = ml_collections.ConfigDict()
    config.beta = ml_collections.ConfigDict()  # the KL weight (losses.beta_schedule)
    config.beta.value = 1.0
    config.beta.midpoint = 0.0  # logistic anneal: value / 2 at this update ...
    config.beta.width = 0.0  # ... over this many updates; 0: constant
    config.learning_rate = 1e-3
    config.grad_clip_norm = ml_collections.config_dict.placeholder(float)  # None: off
    config.batch_size = 128
    config.num_steps = 1_500_000
    config.steps_per_dispatch = 1
    if kind == "vae":
        config.model.channels = 256
        config.model.num_residual = 2
        config.model.latent_dim = 64
    elif kind == "spirl":
        config.model.horizon = 5  # steps per skill
        config.model.latent_dim = 10
        config.model.lstm_size = 128
        config.model.prior_hidden = (128,) * 6
        config.model.prior_channels = (8, 16, 32)
        # True: the public code's closed-loop variant (a per-step decoder reading each
        # image, e(s_t) of state_features; MLP decoder_hidden)
        config.model.closed_loop = False
        config.model.state_features = 32
        config.model.decoder_hidden = (128, 128, 128)
    else:
        config.model.latent_dim = ml_collections.config_dict.placeholder(int)  # None: action's
        config.model.encoder_hidden = (512, 256, 128)
        config.model.decoder_hidden = (128, 256, 512)
    if kind == "trajvae":
        config.model.horizon = 25  # steps per trajectory: the suite's whole episode
    elif kind == "cvae":
        config.model.image_channels = (16, 16, 16)  # psi, as the flow prior's (paper)
        config.model.image_hidden = (1024, 512)
        config.model.embedding = 256
        config.model.image_pooled = 2
        config.model.image_strides = ml_collections.config_dict.placeholder(tuple)
    if kind == "spirl":
        config.beta.value = 1e-2
        config.batch_size = 128
        config.num_steps = 100_000
    elif kind != "vae":
        config.beta.value = 1e-3
        config.beta.midpoint = 25_000.0
        config.beta.width = 2_500.0
        config.learning_rate = 1e-4
        config.batch_size = 256
        config.num_steps = 500_000

    add_loop_fields(config, eval_batches=8)

    if scale == "cpu":
        config.in_memory = kind != "trajvae"  # the TrajVAE reads no image
        config.batch_size = 64
        config.num_steps = 10_000
        config.log_every = 500
        config.eval_every = 1000
        config.checkpoint_every = 2000
        if kind == "vae":
            config.model.channels = 16
        elif kind == "spirl":
            config.num_steps = 20_000
        else:  # the anneal scaled to the budget
            if kind == "cvae":  # psi as the :cpu prior's (strided, no pools)
                config.model.image_strides = (2, 2, 1)
                config.model.image_pooled = 0
            config.learning_rate = 1e-3
            config.num_steps = 20_000
            config.beta.midpoint = 5_000.0
            config.beta.width = 500.0
    elif scale == "tiny":
        if kind == "vae":
            config.model.channels = 4
            config.model.num_residual = 1
            config.model.latent_dim = 4
        elif kind == "spirl":
            config.model.latent_dim = 3
            config.model.lstm_size = 8
            config.model.prior_hidden = (16, 16)
            config.model.prior_channels = (4, 4)
            config.model.state_features = 4
            config.model.decoder_hidden = (16,)
        else:
            config.model.encoder_hidden = config.model.decoder_hidden = (16,)
            if kind == "cvae":
                config.model.image_channels = (4, 4, 4)
                config.model.image_hidden = (16,)
                config.model.embedding = 8
            config.beta.midpoint, config.beta.width = 10.0, 2.0
        config.batch_size = 16
        tiny_loop(config)
    return config
