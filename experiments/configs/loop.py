"""The fields of the training loop every pretraining run shares (``parrot_jax.pretrained.loop``:
the flow prior's ``prior.py`` and the baselines' ``pretrain.py``), and their ``tiny`` values."""

import ml_collections


def add_loop_fields(config: ml_collections.ConfigDict, eval_batches: int) -> None:
    """Logging, evaluation, checkpoints, prefetching, devices and compilation."""
    config.log_every = 1000
    config.eval_every = 10_000
    config.eval_batches = eval_batches  # fixed validation batches of batch_size samples
    config.checkpoint_every = 10_000
    config.max_checkpoints = 3

    config.prefetch = 4  # batches built ahead, on the devices
    config.prefetch_threads = 2
    config.num_devices = 0  # 0: every device; N: the first N (tests compare meshes)
    config.distributed = False  # join a cluster-detected multi-host run (= --distributed)
    config.progress = True  # tqdm bar with steps/s and ETA
    config.fast_compile = False  # XLA optimisations off: ~3x faster compiles, slower steps


def tiny_loop(config: ml_collections.ConfigDict) -> None:
    """A few steps, evaluated and checkpointed, compiled fast: for tests and smoke runs."""
    config.num_steps = 20
    config.log_every = 10
    config.eval_every = 10
    config.eval_batches = 2
    config.checkpoint_every = 10
    config.prefetch = 2
    config.progress = False
    config.fast_compile = True
