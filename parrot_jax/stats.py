"""Small statistics helpers for reporting success rates."""

from __future__ import annotations

import math

import numpy as np


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n
    successes, which is common for sparse-reward tasks.
    """
    if trials <= 0:
        raise ValueError(f"trials must be positive, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    phat = successes / trials
    denom = 1.0 + z * z / trials
    center = (phat + z * z / (2 * trials)) / denom
    half = z * math.sqrt(phat * (1 - phat) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def rank_auc(positives, negatives) -> float | None:
    """P(x > y) + P(x = y) / 2 for x from ``positives`` and y from ``negatives`` (the area
    under the ROC curve of a score; 0.5: it does not rank them apart). None if either is
    empty."""
    x, y = np.asarray(positives, float).ravel(), np.asarray(negatives, float).ravel()
    if not len(x) or not len(y):
        return None
    greater = np.mean(x[:, None] > y[None, :])
    ties = np.mean(x[:, None] == y[None, :])
    return float(greater + 0.5 * ties)


def more_successes_p(successes: int, trials: int, base_successes: int,
                     base_trials: int) -> float:
    """One-sided Fisher exact p-value that ``successes / trials`` is a higher rate than
    ``base_successes / base_trials``: the hypergeometric probability of at least
    ``successes`` of the pooled successes landing in the first group by chance."""
    for s, n, name in ((successes, trials, "successes"),
                       (base_successes, base_trials, "base_successes")):
        if n <= 0 or not 0 <= s <= n:
            raise ValueError(f"{name}={s} of {n} trials: expected 0 <= {name} <= trials "
                             "and trials > 0")
    from scipy.stats import fisher_exact  # only the reports need scipy

    table = [[successes, trials - successes], [base_successes, base_trials - base_successes]]
    return float(fisher_exact(table, alternative="greater").pvalue)
