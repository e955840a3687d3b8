"""The suite's sizes: ``quick`` (tiny, for tests and smoke runs) and ``full`` (the paper's).

``full`` measures the paper's architectures (flow: 4 couplings of 256-256 on the conv
encoder with 1024-512-256 layers; SAC: separate conv trunks, heads 1024-512-256, two Qs)
at batch 256 (the flow also at 1024), the ``:cpu`` RL network at its batch of 64, and the
end-to-end loop with the ``:cpu`` agent network and the paper's prior. ``quick`` keeps
every section and the JSON schema with sizes that run in about a minute.
"""

from __future__ import annotations

import copy
import os

PAPER_FLOW = {"action_dim": 7}  # ConditionalRealNVP's defaults are the paper's model
TINY_FLOW = {"action_dim": 7, "num_couplings": 4, "hidden": (32, 32),
             "encoder_channels": (4, 4, 4), "encoder_hidden": (32,), "embedding": 16}
PAPER_SAC = {}  # experiments/configs/rl.py defaults are the paper's networks
CPU_SAC = {"shared_trunk": True, "hidden": (256, 256)}  # rl.py:cpu
TINY_SAC = {"channels": (4, 4), "hidden": (32, 32)}

_FULL = {
    "repeats": 5,
    "fast_compile": False,  # XLA's optimisations on, as training runs
    "peak": {"size": 2048, "steps": 5},
    "env": {"env": "parrot/PickPlaceTrain-v0", "steps": 800, "workers": None,  # 1..cores
            "envs_per_worker": 4},
    "data": {"episodes": 1000, "batch_size": 256, "batches": 50},
    "flow": [  # (label, model, batch, steps per repeat, fused steps per dispatch)
        ("paper", PAPER_FLOW, 256, 5, 1),
        ("paper", PAPER_FLOW, 256, 8, 4),
        ("paper", PAPER_FLOW, 1024, 2, 1),
    ],
    "sac": [  # (label, network, batch, updates per repeat, fused updates per dispatch)
        ("paper", PAPER_SAC, 256, 1, 1),
        ("cpu", CPU_SAC, 64, 5, 1),
        ("cpu", CPU_SAC, 64, 8, 4),
        ("cpu", CPU_SAC, 256, 2, 1),  # Figure 5's CPU recipe (README "Measured: Figure 5")
    ],
    "acting": {"network": CPU_SAC, "prior_model": PAPER_FLOW, "batches": (1, 4, 16, 256),
               "steps": 20},
    "e2e": {"env": "parrot/PickUpCan-v0", "num_envs": 16, "num_workers": 2,
            "prior_model": PAPER_FLOW, "network": CPU_SAC, "batch_size": 64,
            "updates_per_env_step": 1 / 64, "start_steps": 960, "total_env_steps": 2880,
            "log_every": 160, "replay_capacity": 20_000, "env_only_steps": 800},
    "scaling": {"flow_model": PAPER_FLOW, "flow_batch": 256, "sac_network": CPU_SAC,
                "sac_batch": 64, "steps": 3, "devices": (1, 2, 4)},
    # S independent SAC agents in one program (label, network, batch, updates per
    # repeat, S values, "vmap" | "map"): total updates/s against S x one agent's
    "seeds": [("cpu", CPU_SAC, 64, 5, (1, 2, 4), "vmap"),
              ("cpu", CPU_SAC, 64, 5, (1, 2, 4), "map")],
    "torch_threads": None,  # None: os.cpu_count()
}

_QUICK = {
    "repeats": 2,
    "fast_compile": True,  # XLA's backend optimisations off: compiles dominate here
    "peak": {"size": 256, "steps": 2},
    "env": {"env": "parrot/PickPlaceTrain-v0", "steps": 8, "workers": [1],
            "envs_per_worker": 2},
    "data": {"episodes": 40, "batch_size": 32, "batches": 4},
    "flow": [("tiny", TINY_FLOW, 16, 2, 1), ("tiny", TINY_FLOW, 16, 2, 2)],
    "sac": [("tiny", TINY_SAC, 16, 2, 1), ("tiny", TINY_SAC, 16, 2, 2)],
    "acting": {"network": TINY_SAC, "prior_model": TINY_FLOW, "batches": (1, 4), "steps": 3},
    "e2e": {"env": "parrot/PickUpCan-v0", "num_envs": 2, "num_workers": 1,
            "prior_model": TINY_FLOW, "network": TINY_SAC, "batch_size": 16,
            "updates_per_env_step": 0.5, "start_steps": 24, "total_env_steps": 48,
            "log_every": 8, "replay_capacity": 1_000, "env_only_steps": 8,
            "fast_compile": True},
    "scaling": {"flow_model": TINY_FLOW, "flow_batch": 16, "sac_network": TINY_SAC,
                "sac_batch": 16, "steps": 2, "devices": (1, 2), "fast_compile": True},
    "seeds": [("tiny", TINY_SAC, 16, 2, (1, 2), "vmap")],
    "torch_threads": None,
}

# One accelerator, for the device check (benchmarks/device_check.py; about 8 minutes on an
# H100/H200): the paper's flow and SAC at batch 256, fused, and at larger batches (the best
# batch); acting; the end-to-end loop with the pool on every core and more envs.
_DEVICE = copy.deepcopy(_FULL)
_DEVICE.update({
    "repeats": 5,
    "peak": {"size": 8192, "steps": 10},
    "env": {"env": "parrot/PickPlaceTrain-v0", "steps": 400, "workers": "doubling",
            "envs_per_worker": 4},
    "flow": [("paper", PAPER_FLOW, 256, 20, 1), ("paper", PAPER_FLOW, 256, 40, 8),
             ("paper", PAPER_FLOW, 1024, 10, 1), ("paper", PAPER_FLOW, 4096, 5, 1)],
    "sac": [("paper", PAPER_SAC, 256, 20, 1), ("paper", PAPER_SAC, 256, 40, 8),
            ("paper", PAPER_SAC, 1024, 10, 1), ("cpu", CPU_SAC, 64, 40, 8)],
    "acting": {"network": CPU_SAC, "prior_model": PAPER_FLOW, "batches": (1, 16, 256),
               "steps": 50},
    # three compiles: the curve's shape within the check's 8 minutes
    "seeds": [("paper", PAPER_SAC, 256, 10, (1, 4, 16), "vmap")],
})
_DEVICE["e2e"] = dict(_FULL["e2e"], num_envs=None, num_workers=None, start_steps=1920,
                      total_env_steps=5760, log_every=640)

SUITES = {"quick": _QUICK, "full": _FULL, "device": _DEVICE}


def get(name: str) -> dict:
    """A copy of the suite's settings (``ValueError`` naming the valid suites)."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; expected one of {sorted(SUITES)}")
    settings = copy.deepcopy(SUITES[name])
    cores = os.cpu_count() or 1
    if settings["env"]["workers"] is None:  # every count up to the cores
        settings["env"]["workers"] = list(range(1, cores + 1))
    elif settings["env"]["workers"] == "doubling":  # 1, 2, 4, ... and the cores
        settings["env"]["workers"] = sorted({2 ** i for i in range(cores.bit_length())
                                             if 2 ** i <= cores} | {cores})
    if settings["e2e"]["num_workers"] is None:  # the pool on every core, 4 envs each
        settings["e2e"]["num_workers"] = cores
        settings["e2e"]["num_envs"] = 4 * cores
    return settings
