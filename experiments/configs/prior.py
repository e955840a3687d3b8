"""Behavioral prior training (paper section 4.1 and appendix B).

    python -m experiments.train_prior --config=experiments/configs/prior.py \
        --config.dataset=runs/data/prior --workdir=runs/prior

Variants (``--config=experiments/configs/prior.py:VARIANT``):
- default: the paper's model and schedule (Adam lr 1e-4, batch 256, 500K steps; a GPU);
- ``cpu``: the CPU recipe (see the variant's comments and the README, "Diagnosing the
  prior"): a strided encoder, 8 couplings with a wider log-scale bound, random shifts,
  clipped gradients, 48K steps of 64 at Adam 1e-3 with a cosine decay; 22 minutes on 2
  CPU cores; on 12K scripted trajectories the validation NLL reaches -8.7 nats per
  action;
- ``tiny``: a small model for a few steps, for tests and smoke runs (seconds).

``--config.dataset`` takes one dataset directory or a comma-separated list.
"""

import ml_collections

from experiments.configs.loop import add_loop_fields, tiny_loop


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.dataset = ""  # required: DIR or DIR1,DIR2 (written by experiments.collect_data)
    config.max_episodes = 0  # 0: every episode; N: the dataset's first N (Figure 6)
    config.in_memory = False  # read all images into RAM (small datasets: faster batches)
    config.validation_fraction = 0.05  # episodes held out for the validation NLL
    config.seed = 0  # initialisation, batch order and the validation split

    config.model = ml_collections.ConfigDict()  # ConditionalRealNVP fields
    config.model.num_couplings = 4
    config.model.hidden = (256, 256)  # each coupling's conditioner MLP
    config.model.encoder_channels = (16, 16, 16)  # 3x3 convs, 2x2 max-pool after two
    config.model.encoder_hidden = (1024, 512)
    config.model.embedding = 256  # the image embedding every coupling sees
    config.model.encoder_pooled = 2  # 2x2 max-pools after the first convolutions
    # Per-convolution strides; None: all 1 (the paper). (2, 2, 1) with encoder_pooled=0
    # reaches the same 12 x 12 x 16 features twice as fast on a CPU.
    config.model.encoder_strides = ml_collections.config_dict.placeholder(tuple)
    config.model.encoder_head = "flatten"  # or "keypoints" (spatial softmax)
    config.model.encoder_activation = "relu"  # of the encoder's dense layers; or "elu"
    config.model.log_scale_bound = 1.0  # |log-scale| bound of each coupling (1: tanh, paper)
    # True: a linear read-out of the embedding learns the end effector's offset to the
    # nearest object beside the likelihood (weight offset_loss_weight, Huber in cm); the
    # dataset must store the offsets (collections made since 2026-12 do). Not in the paper;
    # at weight 1 it made the prior worse (README, "Diagnosing the prior").
    config.model.offset_head = False
    # action_dim comes from the dataset (config.json records it).

    config.learning_rate = 1e-4
    # "constant" (paper) or "cosine": down to final_lr_fraction * learning_rate at num_steps
    # (extending a cosine run stretches the rest of its curve to the new num_steps).
    config.lr_schedule = "constant"
    config.final_lr_fraction = 0.1
    config.grad_clip_norm = ml_collections.config_dict.placeholder(float)  # None: off
    config.batch_size = 256  # global: split over all devices (and processes)
    config.num_steps = 500_000
    config.max_abs_action = 0.999999  # actions are clipped to this before atanh
    config.augment_pad = 0  # >0: random shifts of up to this many pixels (0: none, paper)
    config.offset_loss_weight = 1.0  # of the offset head's loss (with model.offset_head)
    # A saved encoder (parrot_jax.networks.saved_encoder: experiments.probe_encoder writes
    # one to WORKDIR/encoder, trained on the simulator's positions) to start the flow's
    # encoder from; "" : a fresh one. Its architecture must be config.model's encoder.
    config.encoder_init = ""
    # True: the encoder is not trained (with encoder_init: the pretrained features as they
    # are; without: fixed random features, a control). Not in the paper.
    config.freeze_encoder = False
    config.steps_per_dispatch = 1  # >1 fuses that many updates into one lax.scan dispatch

    add_loop_fields(config, eval_batches=16)

    if variant == "cpu":
        # The CPU recipe (README, "Diagnosing the prior"), each change measured there:
        # - strided convolutions (48 -> 24 -> 12, no max-pools): the paper's 12 x 12 x 16
        #   features for less compute (the whole recipe: about 37 steps/s at batch 64 on 2
        #   cores; the paper's model: 21);
        # - 8 couplings with log-scales bounded by 2: the paper's 4 tanh-bounded ones sat at
        #   their bound on 43-100% of states (the data's 0.1 noise is narrower than they
        #   can reach); validation NLL -6.2 -> -6.8 at 24K steps on 4K trajectories;
        # - random shifts of up to 4 pixels: without them the model memorised its 4K
        #   trajectories (train NLL -6.8, validation -5.3 at 24K steps);
        # - gradients clipped at norm 10: a run without clipping lost every unit of the
        #   encoder's dense layers (the prior then ignored the image);
        # - a cosine decay to a tenth of Adam's 1e-3.
        # 48K steps take 22 minutes; on 12K trajectories the validation NLL reaches -8.7.
        config.in_memory = True
        config.model.encoder_strides = (2, 2, 1)
        config.model.encoder_pooled = 0
        config.model.num_couplings = 8
        config.model.log_scale_bound = 2.0
        config.augment_pad = 4
        config.grad_clip_norm = 10.0
        config.learning_rate = 1e-3
        config.lr_schedule = "cosine"
        config.batch_size = 64
        config.num_steps = 48_000
        config.log_every = 500
        config.eval_every = 1000
        config.checkpoint_every = 4000
    elif variant == "tiny":
        config.model.hidden = (32, 32)
        config.model.encoder_channels = (4, 4, 4)
        config.model.encoder_hidden = (32,)
        config.model.embedding = 16
        config.learning_rate = 1e-3
        config.batch_size = 32
        tiny_loop(config)
    elif variant:
        raise ValueError(f"unknown prior config variant {variant!r}; expected '', 'cpu' or "
                         "'tiny'")
    return config
