import pytest

from parrot_jax import stats


def test_wilson_interval_known_values():
    lo, hi = stats.wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert stats.wilson_interval(0, 20)[0] == 0.0 and stats.wilson_interval(20, 20)[1] == 1.0


@pytest.mark.parametrize("s, n", [(1, 0), (-1, 5), (6, 5)])
def test_wilson_interval_rejects_bad_counts(s, n):
    with pytest.raises(ValueError):
        stats.wilson_interval(s, n)


def test_rank_auc():
    assert stats.rank_auc([3, 4], [1, 2]) == 1.0
    assert stats.rank_auc([1, 2], [3, 4]) == 0.0
    assert stats.rank_auc([1, 3], [2, 2]) == 0.5
    assert stats.rank_auc([2], [2, 1]) == 0.75  # one tie, one win
    assert stats.rank_auc([], [1]) is None and stats.rank_auc([1], []) is None


def test_more_successes_p():
    # the lady tasting tea: 3 of 4 against 1 of 4 by chance in 1 + 16 of C(8, 4) = 70 ways
    assert stats.more_successes_p(3, 4, 1, 4) == pytest.approx(17 / 70)
    assert stats.more_successes_p(36, 200, 15, 200) == pytest.approx(0.00122, abs=1e-5)
    assert stats.more_successes_p(1, 4, 3, 4) == pytest.approx(69 / 70)  # the other way
    with pytest.raises(ValueError, match="base_successes=5 of 4 trials"):
        stats.more_successes_p(1, 4, 5, 4)
