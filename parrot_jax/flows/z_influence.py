"""How much one step's ``z`` decides an episode's outcome under the prior.

PARROT's critic must learn, from sparse successes, which ``z`` at which state leads to a
success. This measures how much there is to learn, with the simulator instead of a
critic: from a state ``s_t`` reached by the prior (env seed ``seed``, the prior with
``z ~ N(0, I)`` for steps ``0 .. t-1``, a path of its own for every ``(seed, t)``, the
same actions replayed in every branch), ``M``
candidate ``z_j ~ N(0, I)`` are each taken at step ``t`` and followed by ``K``
continuations of the prior with fresh ``z``. With ``p_j`` the success rate of candidate
``j`` (``K`` outcomes) and ``p = mean_j p_j``:

- ``between``: an unbiased estimate of ``Var_z[P(success | s_t, z_t = z)]``,
  ``Var_j(p_j) - mean_j p_j (1 - p_j) / (K - 1)`` (the sample variance of the ``p_j``
  minus their binomial noise; it can be negative where there is no signal);
- ``total``: ``p (1 - p)``, the variance of one episode's outcome from ``s_t``;
- their ratio, averaged over states (``mean between / mean total``), is the share of the
  outcome's variance that the choice of ``z`` at one step explains (a first-order Sobol
  index). A learner comparing ``z``'s by their outcomes needs about ``total / between``
  episodes per ``z`` to tell a good one from a typical one by one standard deviation;
- ``chosen_rate``: the success rate of the candidate that did best on one half of its
  continuations, scored on the other half (both ways, averaged): what choosing ``z_t`` by
  its outcomes gains from ``s_t``, without the upward bias of the best rate itself;
- ``p_value``: a parametric bootstrap test of "every ``z_j`` succeeds equally often"
  (binomial ``K, p`` draws for every candidate; the share of draws whose ``Var_j(p_j)`` is
  at least the observed one).

``measure(..., score=fn)`` adds ``fn(branches)`` to each state's record: e.g. a trained
critic's ``Q(s_t, z_j)`` of the candidates, so that its ranking can be read against the
simulator's (``experiments.z_influence --critics``); ``summarize`` then reports, per step
and critic, the mean rank correlation between ``Q`` and the candidates' success rates
and ``P(success)`` with the candidate of highest ``Q`` (no selection bias: ``Q`` never saw
these outcomes).

Determinism is checked, not assumed: every branch of a state must observe the same image
at step ``t`` (the suite's envs reset the whole simulation from the seed), or a
``RuntimeError`` says which state diverged.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import numpy as np
from scipy import stats

from parrot_jax.envs.pool import EnvPool
from parrot_jax.flows import evaluate
from parrot_jax.flows.prior import BehavioralPrior


@dataclasses.dataclass(frozen=True)
class Branches:
    """The outcomes of ``M`` candidate ``z`` at step ``step`` of the episode from env seed
    ``seed``: ``successes`` (M, K) bool; ``candidates`` (M, action_dim); ``observation``
    the image at ``s_t`` every branch saw."""
    seed: int
    step: int
    candidates: np.ndarray
    successes: np.ndarray
    observation: np.ndarray

    @property
    def rates(self) -> np.ndarray:
        return self.successes.mean(axis=1)

    def as_dict(self, rng: np.random.Generator) -> dict:
        between, total = variance_split(self.successes)
        return {"seed": self.seed, "step": self.step, "success_rate": float(self.rates.mean()),
                "candidate_rates": self.rates.tolist(), "between": between, "total": total,
                "chosen_rate": chosen_rate(self.successes),
                "p_value": homogeneity_p_value(self.successes, rng),
                "successes": self.successes.astype(int).tolist(),
                "candidates": self.candidates.tolist()}


def variance_split(successes) -> tuple[float, float]:
    """``(between, total)`` of an (M, K) table of outcomes (module docstring)."""
    outcomes = np.asarray(successes, float)
    if outcomes.ndim != 2 or outcomes.shape[0] < 2 or outcomes.shape[1] < 2:
        raise ValueError(f"outcomes of shape {outcomes.shape}; expected (candidates >= 2, "
                         "continuations >= 2)")
    k = outcomes.shape[1]
    rates = outcomes.mean(axis=1)
    between = rates.var(ddof=1) - np.mean(rates * (1 - rates)) / (k - 1)
    mean = rates.mean()
    return float(between), float(mean * (1 - mean))


def chosen_rate(successes) -> float:
    """The held-out success rate of the best candidate on the other half (module
    docstring); ties go to the first candidate (candidates are i.i.d., so a tie is a
    random choice)."""
    outcomes = np.asarray(successes, float)
    half = outcomes.shape[1] // 2 if outcomes.ndim == 2 else 0
    if half < 1:
        raise ValueError(f"outcomes of shape {outcomes.shape}; expected (candidates, "
                         "continuations >= 2)")
    first, second = outcomes[:, :half].mean(axis=1), outcomes[:, half:2 * half].mean(axis=1)
    return float((second[np.argmax(first)] + first[np.argmax(second)]) / 2)


def homogeneity_p_value(successes, rng: np.random.Generator, draws: int = 2000) -> float:
    """P(Var_j(p_j) >= the observed one | every candidate succeeds with the pooled rate),
    by ``draws`` binomial tables (1.0 where every outcome is the same)."""
    outcomes = np.asarray(successes, float)
    m, k = outcomes.shape
    observed = outcomes.mean(axis=1).var()
    pooled = outcomes.mean()
    if pooled in (0.0, 1.0):
        return 1.0
    null = (rng.binomial(k, pooled, size=(draws, m)) / k).var(axis=1)
    return float(np.mean(null >= observed - 1e-12))


def branch(prior: BehavioralPrior, pool: EnvPool, seed: int, step: int, candidates: int,
           continuations: int, key: jax.Array, max_steps: int = 1000) -> Branches | None:
    """The ``Branches`` of one state (module docstring), or None if the prior's episode
    from ``seed`` ended before ``step``. ``candidates * continuations`` must be a multiple
    of ``pool.num_envs`` (the branches run in waves of the pool's size)."""
    n = pool.num_envs
    total = candidates * continuations
    if candidates < 2 or continuations < 2:
        raise ValueError(f"candidates={candidates}, continuations={continuations}; expected "
                         "both >= 2")
    if step < 0:
        raise ValueError(f"step={step}; expected >= 0")
    if total % n:
        raise ValueError(f"candidates * continuations = {total} is not a multiple of the "
                         f"pool's {n} envs")
    z = np.asarray(jax.random.normal(jax.random.fold_in(key, 0), (candidates, prior.action_dim)))
    owner = np.repeat(np.arange(candidates), continuations)  # branch i takes z[owner[i]]
    prefix, branch_obs, successes = None, None, np.zeros(total, bool)
    for wave in range(total // n):
        obs, _ = pool.reset(seed=[seed] * n)
        if prefix is None:  # the prior's own path to s_t, replayed in every later wave
            prefix = []
            for t in range(step):
                z_t = jax.random.normal(jax.random.fold_in(key, 1 + t), (1, prior.action_dim))
                action = evaluate.prior_actions(prior, obs[:1], np.asarray(z_t))[0]
                prefix.append(action)
                obs, _, terminated, truncated, _ = pool.step(np.tile(action, (n, 1)))
                if terminated[0] or truncated[0]:
                    return None
        else:
            for action in prefix:
                obs, *_ = pool.step(np.tile(action, (n, 1)))
        if branch_obs is None:
            branch_obs = obs[0].copy()
        diverged = np.flatnonzero(np.any(obs != branch_obs, axis=tuple(range(1, obs.ndim))))
        if len(diverged):
            raise RuntimeError(f"env seed {seed}, step {step}: branches {diverged.tolist()} "
                               f"of wave {wave} observe another image than the first branch; "
                               "the env does not replay deterministically")
        mine = owner[wave * n:(wave + 1) * n]
        done, outcome = np.zeros(n, bool), np.zeros(n, bool)
        wave_key = jax.random.fold_in(jax.random.fold_in(key, 10_000), wave)
        actions = evaluate.prior_actions(prior, obs, z[mine])
        for t in range(max_steps):
            obs, _, terminated, truncated, infos = pool.step(actions)
            ended = ~done & (terminated | truncated)
            if "success" in infos:
                outcome[ended] = np.asarray(infos["success"], bool)[ended]
            done |= ended
            if done.all():
                break
            fresh = jax.random.normal(jax.random.fold_in(wave_key, t), (n, prior.action_dim))
            actions = evaluate.prior_actions(prior, obs, np.asarray(fresh))
        else:
            raise RuntimeError(f"env seed {seed}: branches did not end within {max_steps} steps")
        successes[wave * n:(wave + 1) * n] = outcome
    return Branches(seed, step, z, successes.reshape(candidates, continuations), branch_obs)


def summarize(records: list[dict]) -> list[dict]:
    """Per branching step: states, mean success rate from ``s_t``, mean between and total,
    their ratio (the share of the outcome's variance one step's ``z`` explains), the mean
    held-out rate of the chosen candidate, and how many states reject homogeneity at 5%."""
    rows = []
    for step in sorted({r["step"] for r in records}):
        group = [r for r in records if r["step"] == step]
        between = float(np.mean([r["between"] for r in group]))
        total = float(np.mean([r["total"] for r in group]))
        rows.append({"step": step, "states": len(group),
                     "success_rate": float(np.mean([r["success_rate"] for r in group])),
                     "between": between, "total": total,
                     "share": between / total if total > 0 else None,
                     "chosen_rate": float(np.mean([r["chosen_rate"] for r in group])),
                     "rejected": int(sum(r["p_value"] < 0.05 for r in group))})
        labels = dict.fromkeys(label for r in group for label in r.get("critics", {}))
        if labels:
            rows[-1]["critics"] = {label: critic_summary(
                [r["critics"][label] for r in group if label in r.get("critics", {})])
                for label in labels}
    return rows


def critic_summary(scores: list[dict]) -> dict:
    """The mean over states of one critic's ``critic_score``s: ``choice_rate``,
    ``rank_corr`` (over the states where it is defined) and how many those are."""
    corrs = [s["rank_corr"] for s in scores if s["rank_corr"] is not None]
    return {"choice_rate": float(np.mean([s["choice_rate"] for s in scores])),
            "rank_corr": float(np.mean(corrs)) if corrs else None, "ranked_states": len(corrs)}


def critic_score(label: str, q_fn) -> Callable[[Branches], dict]:
    """A ``score`` for ``measure``: ``q_fn(observations (M, ...), z (M, d)) -> (M,)`` a
    critic's values of the candidates; records them, their Spearman correlation with the
    candidates' success rates (None where the rates or the values are all equal) and the
    success rate of the candidate of highest value, under ``critics[label]``."""
    def score(branches: Branches) -> dict:
        m = len(branches.candidates)
        q = np.asarray(q_fn(np.repeat(branches.observation[None], m, axis=0),
                            branches.candidates), float)
        rates = branches.rates
        corr = None
        if np.ptp(rates) > 0 and np.ptp(q) > 0:
            corr = float(stats.spearmanr(q, rates).statistic)
        return {"critics": {label: {"q": q.tolist(), "rank_corr": corr,
                                    "choice_rate": float(rates[np.argmax(q)])}}}

    return score


def markdown(rows: list[dict], candidates: int, continuations: int) -> str:
    """``summarize``'s rows as a table per step (and one per step and critic)."""
    lines = [f"| step t | states | P(success) from s_t | Var over z_t of P(success \\| s_t, z_t) "
             f"| outcome variance p(1 - p) | share explained by z_t | P(success) with the "
             f"best of {candidates} z_t (chosen on half the continuations, scored on the "
             f"other) | states where the {candidates} z_t differ (p < 0.05) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share = "-" if r["share"] is None else f"{r['share']:.3f}"
        lines.append(f"| {r['step']} | {r['states']} | {r['success_rate']:.3f} | "
                     f"{r['between']:.4f} | {r['total']:.4f} | {share} | "
                     f"{r['chosen_rate']:.3f} | {r['rejected']} |")
    lines.append(f"\n{candidates} candidate z_t per state, {continuations} continuations "
                 "each (the prior with fresh z).")
    labels = list(dict.fromkeys(label for r in rows for label in r.get("critics", {})))
    if labels:
        lines += ["", "| step t | critic | P(success) with its highest-Q z_t | mean rank "
                  "correlation of Q with the z_t's success rates (states ranked) |",
                  "|---|---|---|---|"]
        for r in rows:
            for label, c in r.get("critics", {}).items():
                corr = "-" if c["rank_corr"] is None else f"{c['rank_corr']:.2f}"
                lines.append(f"| {r['step']} | {label} | {c['choice_rate']:.3f} | {corr} "
                             f"({c['ranked_states']}) |")
    return "\n".join(lines) + "\n"


def measure(prior: BehavioralPrior, env_id: str, seeds: list[int], steps: list[int],
            candidates: int, continuations: int, num_envs: int, num_workers: int | None,
            seed: int = 0, progress=print, score=None) -> dict:
    """Branches every (env seed, step) pair and returns ``{"states": [...], "skipped":
    [...], "by_step": [...]}``; ``score(branches) -> dict`` adds to each state's record."""
    rng = np.random.default_rng(seed)
    records, skipped = [], []
    with EnvPool(env_id, num_envs, num_workers) as pool:
        evaluate.check_compatible(prior, env_id, pool.single_observation_space,
                                  pool.single_action_space)
        for env_seed in seeds:
            for step in steps:
                start = time.time()
                key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), env_seed), step)
                result = branch(prior, pool, env_seed, step, candidates, continuations, key)
                if result is None:
                    skipped.append({"seed": env_seed, "step": step})
                    progress(f"env seed {env_seed}, step {step}: the episode ended before it")
                    continue
                records.append(result.as_dict(rng) | (score(result) if score else {}))
                rates = " ".join(f"{r:.2f}" for r in result.rates)
                progress(f"env seed {env_seed}, step {step}: rates {rates} "
                         f"(p = {records[-1]['p_value']:.3f}, {time.time() - start:.0f} s)")
    return {"states": records, "skipped": skipped, "by_step": summarize(records)}
