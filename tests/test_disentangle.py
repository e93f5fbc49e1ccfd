"""Disentanglement scores against codes whose answer is known."""

import itertools
import math

import pytest
import torch

from vaelib import disentangle

N = 5000  # images in the synthetic tests
# plug-in MI over BINS x BINS cells is biased up by about this (nats) ...
BIAS = disentangle.max_mig_bias(N)
# ... which, over a factor's entropy of log(BINS) nats, is the slack of a
# perfect score; 1.5x leaves room for sampling noise, not for a real error
SLACK = 1.5 * BIAS / math.log(disentangle.BINS)


@pytest.fixture
def factors():
    """Three independent uniform factors: (N, 3)."""
    return torch.rand(N, 3, generator=torch.Generator().manual_seed(0))


def noise(n_cols, seed=1):
    """Independent standard normal columns: (N, n_cols)."""
    return torch.randn(
        N, n_cols, generator=torch.Generator().manual_seed(seed)
    )


def brute_mutual_info(a, b):
    """MI of two label lists by the definition, one cell at a time."""
    n = len(a)
    total = 0.0
    for i, j in set(zip(a, b)):
        p_ij = sum(1 for x, y in zip(a, b) if x == i and y == j) / n
        p_i, p_j = a.count(i) / n, b.count(j) / n
        total += p_ij * math.log(p_ij / (p_i * p_j))
    return total


def test_mutual_info_matches_brute_force():
    g = torch.Generator().manual_seed(2)
    a = torch.randint(0, 4, (300,), generator=g)
    b = (a + torch.randint(0, 3, (300,), generator=g)) % 5
    assert disentangle.mutual_info(a, b) == pytest.approx(
        brute_mutual_info(a.tolist(), b.tolist()), abs=1e-12
    )


def test_mutual_info_known_values():
    b = torch.arange(8).repeat(10)
    # a copy of 8 equally likely values carries log 8 nats
    assert disentangle.mutual_info(b, b) == pytest.approx(math.log(8))
    # a function merging them in pairs keeps log 4
    assert disentangle.mutual_info(b // 2, b) == pytest.approx(math.log(4))
    # every combination once: independent, exactly 0
    a, c = zip(*itertools.product(range(4), range(5)))
    assert disentangle.mutual_info(
        torch.tensor(a), torch.tensor(c)
    ) == pytest.approx(0.0, abs=1e-12)


def test_discretize_equal_frequency_and_ties():
    x = torch.randn(2000, generator=torch.Generator().manual_seed(3))
    counts = torch.bincount(disentangle.discretize(x, 20))
    assert counts.tolist() == [100] * 20
    # ties share a bin: a constant column is one bin
    assert len(disentangle.discretize(torch.ones(50), 20).unique()) == 1
    assert disentangle.entropy(disentangle.discretize(x, 20)) == pytest.approx(
        math.log(20)
    )


def test_perfect_codes_score_one(factors):
    # each factor in its own dimension (shuffled, rescaled), plus noise dims
    codes = torch.cat([3 * factors[:, [2, 0, 1]] - 1, noise(4)], dim=1)
    assert disentangle.mig(codes, factors).min() > 1 - SLACK
    assert disentangle.sap(codes, factors).min() > 0.99


def test_duplicated_factor_has_no_gap(factors):
    # factor 0 twice: the best and second-best dimensions tie
    twin = factors[:, :1] + 1e-6 * noise(1)
    codes = torch.cat([factors, twin], dim=1)
    m, s = disentangle.mig(codes, factors), disentangle.sap(codes, factors)
    assert m[0] < 0.05 and s[0] < 0.01
    assert m[1:].min() > 1 - SLACK and s[1:].min() > 0.99


def test_rotated_factors_are_entangled(factors):
    # factors 0 and 1 mixed at 45 degrees: each is split equally over two
    # dimensions, so neither has a gap; factor 2 stays clean
    a, b = factors[:, 0], factors[:, 1]
    codes = torch.stack([a + b, a - b, factors[:, 2]], dim=1)
    m, s = disentangle.mig(codes, factors), disentangle.sap(codes, factors)
    assert m[:2].max() < 0.05 and s[:2].max() < 0.05
    assert m[2] > 1 - SLACK and s[2] > 0.99
    # the individual R^2 of a 45-degree mix is one half
    r2 = disentangle.r2_matrix(codes, factors)
    assert r2[:2, :2].flatten().tolist() == pytest.approx([0.5] * 4, abs=0.03)


def test_unrelated_codes_score_zero(factors):
    codes = noise(5)
    assert disentangle.mig(codes, factors).max() < SLACK
    assert disentangle.sap(codes, factors).max() < 0.01


def test_bad_input_is_explained(factors):
    with pytest.raises(ValueError, match="constant"):
        disentangle.mig(noise(3), torch.ones(N, 1))
    with pytest.raises(ValueError, match="same number of rows"):
        disentangle.sap(noise(3)[:10], factors)
    with pytest.raises(ValueError, match="at least 2 code dimensions"):
        disentangle.mig(noise(1), factors)


def test_variance_share_known_values():
    # worked by hand: grand mean 3.5, between 2*3*1.5^2 = 13.5, total 17.5
    share = disentangle.variance_share({0: [1, 2, 3], 1: [4, 5, 6]})
    assert share == pytest.approx(13.5 / 17.5)
    assert disentangle.variance_share({0: [1, 1], 1: [3, 3]}) == 1.0
    assert disentangle.variance_share({0: [1, 3], 1: [3, 1]}) == 0.0
    with pytest.raises(ValueError, match="at least 2 seeds"):
        disentangle.variance_share({0: [1.0], 1: [2.0]})
    with pytest.raises(ValueError, match="no variance"):
        disentangle.variance_share({0: [1, 1], 1: [1, 1]})


def test_chance_variance_share_matches_simulation():
    # scores that ignore the design: 4 designs x 3 seeds of pure noise
    g = torch.Generator().manual_seed(4)
    shares = [
        disentangle.variance_share(
            dict(enumerate(torch.randn(4, 3, generator=g).tolist()))
        )
        for _ in range(4000)
    ]
    mean = sum(shares) / len(shares)
    sd = (sum((s - mean) ** 2 for s in shares) / len(shares)) ** 0.5
    expected = disentangle.chance_variance_share(4, 12)
    assert expected == pytest.approx(3 / 11)
    # within 4 standard errors of the simulated mean
    assert abs(mean - expected) < 4 * sd / len(shares) ** 0.5
    with pytest.raises(ValueError, match="n_designs"):
        disentangle.chance_variance_share(5, 5)
