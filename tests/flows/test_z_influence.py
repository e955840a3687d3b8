"""One step's z against the outcome: the variance split and test by hand, branches that
follow the z they took (a stand-in env), replay on the suite's env, the binary."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from parrot_jax.envs.pool import EnvPool
from parrot_jax.flows import z_influence
from parrot_jax.flows.prior import load_prior
from tests.flows.prior_workdir import write_prior

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
DECISIVE_STEP = 2


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory):
    return write_prior(tmp_path_factory.mktemp("prior"))  # a = tanh(z)


@pytest.fixture(scope="module")
def prior(prior_dir):
    return load_prior(prior_dir)


class DecisivePool:
    """``num_envs`` envs of 5 steps whose image is their step count: an episode succeeds
    iff the action at step 2 pushes x right (``a[0] > 0``). ``diverge``: env 1 sees
    another image from step 1 on, as an env that does not replay would."""

    def __init__(self, num_envs: int, diverge: bool = False):
        self.num_envs, self.diverge = num_envs, diverge
        self.t, self.right = 0, np.zeros(num_envs, bool)

    def _obs(self):
        obs = np.full((self.num_envs, 48, 48, 3), self.t, np.uint8)
        if self.diverge and self.t >= 1:
            obs[1] += 100
        return obs

    def reset(self, seed):
        assert len(seed) == self.num_envs
        self.t, self.right = 0, np.zeros(self.num_envs, bool)
        return self._obs(), {}

    def step(self, actions):
        if self.t == DECISIVE_STEP:
            self.right = np.asarray(actions)[:, 0] > 0
        self.t += 1
        end = np.full(self.num_envs, self.t == 5)
        success = end & self.right
        return (self._obs(), success.astype(float), success, end & ~success,
                {"success": success})


def test_variance_split_and_homogeneity_by_hand():
    decisive = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    between, total = z_influence.variance_split(decisive)
    assert between == pytest.approx(1 / 3)  # var(1, 1, 0, 0) with ddof 1, no binomial noise
    assert total == pytest.approx(0.25)
    same = np.array([[1, 1, 0, 0]] * 4)
    between, total = z_influence.variance_split(same)
    assert between == pytest.approx(-0.25 / 3)  # var 0 minus mean 0.5 * 0.5 / (4 - 1)
    assert total == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    assert z_influence.homogeneity_p_value(decisive, rng) < 0.01
    assert z_influence.homogeneity_p_value(same, rng) == 1.0
    assert z_influence.homogeneity_p_value(np.zeros((4, 4)), rng) == 1.0
    with pytest.raises(ValueError, match=r"shape \(1, 4\).*candidates >= 2"):
        z_influence.variance_split(np.ones((1, 4)))
    # the best on one half, scored on the other: candidate 1 leads on both halves
    table = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]])
    assert z_influence.chosen_rate(table) == pytest.approx((0.5 + 1.0) / 2)
    assert z_influence.chosen_rate(decisive[::-1]) == 1.0
    # ties go to the first candidate: chosen on [0, 0] -> candidate 0 scores 1; on [1, 0]
    # -> candidate 0 scores 0
    assert z_influence.chosen_rate(np.array([[0, 1], [0, 0]])) == 0.5


def test_branches_follow_the_z_they_took(prior):
    key = jax.random.key(3)
    result = z_influence.branch(prior, DecisivePool(4), seed=0, step=DECISIVE_STEP,
                                candidates=4, continuations=3, key=key)
    # a = tanh(z): candidate j succeeds in all its continuations iff z_j[0] > 0
    expected = np.repeat((result.candidates[:, 0] > 0)[:, None], 3, axis=1)
    np.testing.assert_array_equal(result.successes, expected)
    assert 0 < expected[:, 0].sum() < 4  # this key's candidates go both ways
    record = result.as_dict(np.random.default_rng(0))
    assert record["between"] > 0.2 and record["p_value"] < 0.05
    # At a step after the decisive one, the candidate's z does not matter: the prefix
    # (the same for every branch) decided it
    late = z_influence.branch(prior, DecisivePool(4), seed=0, step=3, candidates=4,
                              continuations=3, key=key)
    assert len(np.unique(late.successes)) == 1
    assert z_influence.branch(prior, DecisivePool(4), seed=0, step=5, candidates=2,
                              continuations=2, key=key) is None  # the episode is over
    with pytest.raises(RuntimeError, match=r"step 2: branches \[1\] of wave 0.*deterministic"):
        z_influence.branch(prior, DecisivePool(4, diverge=True), seed=0, step=2, candidates=2,
                           continuations=2, key=key)
    with pytest.raises(ValueError, match="= 6 is not a multiple of the pool's 4 envs"):
        z_influence.branch(prior, DecisivePool(4), seed=0, step=1, candidates=2,
                           continuations=3, key=key)
    with pytest.raises(ValueError, match="candidates=1"):
        z_influence.branch(prior, DecisivePool(4), seed=0, step=1, candidates=1,
                           continuations=4, key=key)


def test_a_critic_scores_the_candidates(prior):
    """A stand-in critic that prefers z pushing right picks a successful candidate and ranks
    the candidates as the simulator does; its opposite picks a failure."""
    pool = DecisivePool(4)
    scores = [z_influence.critic_score("right", lambda obs, z: z[:, 0]),
              z_influence.critic_score("left", lambda obs, z: -z[:, 0])]
    result = z_influence.branch(prior, pool, seed=0, step=DECISIVE_STEP, candidates=4,
                                continuations=2, key=jax.random.key(3))
    assert result.observation.shape == (48, 48, 3)
    right, left = (s(result)["critics"] for s in scores)
    assert right["right"]["choice_rate"] == 1.0 and left["left"]["choice_rate"] == 0.0
    # rates are 0 or 1 (ties): a perfect ranking correlates by sqrt(0.6) = 0.77
    assert right["right"]["rank_corr"] > 0.7 and left["left"]["rank_corr"] < -0.7
    record = result.as_dict(np.random.default_rng(0)) | {"critics": right | left}
    rows = z_influence.summarize([record])
    assert rows[0]["critics"]["right"] == dict(choice_rate=1.0, rank_corr=right["right"]["rank_corr"],
                                               ranked_states=1)
    table = z_influence.markdown(rows, 4, 2)
    assert f"| {DECISIVE_STEP} | right | 1.000 |" in table and "| left | 0.000 |" in table


def test_suite_env_replays_and_repeats(prior):
    key = jax.random.key(0)
    with EnvPool("parrot/PickUpCan-v0", num_envs=2, num_workers=1) as pool:
        a = z_influence.branch(prior, pool, seed=5, step=4, candidates=2, continuations=2, key=key)
        b = z_influence.branch(prior, pool, seed=5, step=4, candidates=2, continuations=2, key=key)
    assert a.successes.shape == (2, 2) and a.candidates.shape == (2, 7)
    np.testing.assert_array_equal(a.successes, b.successes)
    np.testing.assert_array_equal(a.candidates, b.candidates)


def test_summary_by_step():
    records = [dict(step=0, success_rate=0.5, between=0.1, total=0.25, p_value=0.01,
                    chosen_rate=0.75),
               dict(step=0, success_rate=0.0, between=-0.02, total=0.0, p_value=1.0,
                    chosen_rate=0.0),
               dict(step=5, success_rate=0.0, between=0.0, total=0.0, p_value=1.0,
                    chosen_rate=0.0)]
    rows = z_influence.summarize(records)
    assert rows[0] == dict(step=0, states=2, success_rate=0.25, between=pytest.approx(0.04),
                           total=0.125, share=pytest.approx(0.32), chosen_rate=0.375,
                           rejected=1)
    assert rows[1]["share"] is None
    table = z_influence.markdown(rows, 8, 16)
    assert "| 0 | 2 | 0.250 | 0.0400 | 0.1250 | 0.320 | 0.375 | 1 |" in table
    assert "| 5 | 1 | 0.000 | 0.0000 | 0.0000 | - | 0.000 | 0 |" in table


def _run(*flags):
    return subprocess.run([sys.executable, "-m", "experiments.z_influence", *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_binary_writes_json_and_table(tmp_path, prior_dir):
    out = tmp_path / "out"
    proc = _run(f"--prior={prior_dir}", "--seeds=1", "--steps=0,30", "--candidates=2",
                "--continuations=2", "--num_envs=2", "--workers=1", f"--workdir={out}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "z_influence.json").read_text())
    assert [r["step"] for r in result["states"]] == [0]
    assert result["skipped"] == [{"seed": 1_000_000, "step": 30}]  # past the 25-step horizon
    assert len(result["states"][0]["candidate_rates"]) == 2
    assert np.shape(result["states"][0]["successes"]) == (2, 2)
    assert np.shape(result["states"][0]["candidates"]) == (2, 7)
    assert result["config"]["env"] == "parrot/PickUpCan-v0" and result["config"]["steps"] == [0, 30]
    assert "| 0 | 1 |" in (out / "z_influence.md").read_text()


def test_binary_scores_a_parrot_runs_critic(tmp_path, prior_dir):
    run = str(tmp_path / "run")
    subprocess.run([sys.executable, "-m", "experiments.train_rl",
                    "--config=experiments/configs/rl.py:tiny", f"--config.prior={prior_dir}",
                    "--config.total_env_steps=60", f"--workdir={run}"], cwd=ROOT, check=True,
                   capture_output=True)
    out = tmp_path / "out"
    proc = _run(f"--prior={prior_dir}", "--seeds=1", "--steps=0", "--candidates=2",
                "--continuations=2", "--num_envs=2", "--workers=1", f"--critics={run}",
                "--labels=tiny", f"--workdir={out}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "z_influence.json").read_text())
    scored = result["states"][0]["critics"]["tiny"]
    assert len(scored["q"]) == 2 and np.all(np.isfinite(scored["q"]))
    assert scored["choice_rate"] in result["states"][0]["candidate_rates"]
    assert set(result["by_step"][0]["critics"]) == {"tiny"}
    assert "| 0 | tiny |" in (out / "z_influence.md").read_text()
    sac = tmp_path / "sac"
    sac.mkdir()
    (sac / "config.json").write_text(json.dumps({"agent": "sac", "spaces": {}}))
    proc = _run(f"--prior={prior_dir}", f"--critics={sac}", f"--workdir={tmp_path / 'no'}")
    assert proc.returncode == 2 and "is a 'sac' run; expected a 'parrot' run" in proc.stderr


@pytest.mark.parametrize("flags, message", [
    (["--num_envs=3"], "--num_envs=3 does not divide --candidates * --continuations = 4"),
    (["--steps=0,x"], "--steps='0,x'; expected integers >= 0"),
    (["--steps=-1"], "--steps='-1'; expected integers >= 0"),
    (["--env=all"], "--env='all'; expected one env id"),
    (["--env=parrot/NoSuchTask-v0"], "unknown env id 'parrot/NoSuchTask-v0'"),
    (["--critics=a,b", "--labels=x"], "1 --labels for 2 --critics"),
    (["--critics=/no/such/run"], "no RL run here"),
])
def test_binary_errors(tmp_path, prior_dir, flags, message):
    proc = _run(f"--prior={prior_dir}", "--candidates=2", "--continuations=2", "--num_envs=2",
                f"--workdir={tmp_path / 'out'}", *flags)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_binary_refuses_a_missing_prior(tmp_path):
    proc = _run(f"--prior={tmp_path / 'none'}", f"--workdir={tmp_path / 'out'}")
    assert proc.returncode == 2 and "error:" in proc.stderr and "none" in proc.stderr
