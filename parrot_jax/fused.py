"""K updates in one dispatch: ``lax.scan`` of an update over K stacked batches.

XLA:CPU runs the body of a rolled loop several times slower than the same computation
outside a loop (the paper's flow step at batch 64: 437 ms per step in a rolled loop of 4,
and as slow in a loop of 1, against 39.4 ms unrolled and 45 ms alone; README
"Performance"), so a scan of up to ``MAX_UNROLL`` steps is unrolled into straight-line
code. Longer scans stay rolled: an unrolled body is compiled K times (K = 100 took
minutes).
"""

from __future__ import annotations

from typing import Any, Callable

import jax

MAX_UNROLL = 8


def scan_steps(step: Callable[[Any, Any], tuple[Any, Any]], state: Any,
               batches: Any) -> tuple[Any, Any]:
    """``step(state, batch) -> (state, metrics)`` over the leading axis of ``batches``;
    returns the last state and the metrics stacked (leading axis K)."""
    k = jax.tree.leaves(batches)[0].shape[0]
    return jax.lax.scan(step, state, batches, unroll=k <= MAX_UNROLL)
