"""The seed-spread rule the book uses to call one design better."""

import numpy as np
import pytest

from vaelib.compare import fmt, margin, mean_sd, verdict


def test_mean_sd_matches_numpy_with_one_degree_of_freedom():
    values = [99.1, 100.3, 98.7]
    assert mean_sd(values) == pytest.approx(
        (np.mean(values), np.std(values, ddof=1))
    )
    assert (
        fmt(values) == f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"
    )


def test_a_difference_counts_only_beyond_twice_the_larger_spread():
    base = [100.0, 100.4, 99.6]  # sd 0.4
    assert margin(base, base) == pytest.approx(0.8)
    # 0.9 below: more than 0.8
    assert verdict([99.1, 99.1, 99.1 + 1e-9], base) == "lower"
    # 0.7 below
    assert verdict([99.3, 99.3, 99.3 + 1e-9], base) == "within spread"
    assert verdict([101.0, 101.0, 101.0 + 1e-9], base) == "higher"
    # its own spread (sd 1) is the larger
    assert verdict([98.0, 99.0, 100.0], base) == "within spread"


@pytest.mark.parametrize("bad", [[1.0], [], [1.0, float("nan")]])
def test_one_run_is_not_a_spread(bad):
    with pytest.raises(ValueError, match="at least two finite numbers"):
        mean_sd(bad)
