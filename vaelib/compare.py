"""Comparing designs trained with several seeds.

Mean ± sd, and which differences exceed the spread. The book's rule: a
design is called better than another only if its mean is lower by more
than `SPREADS` times the larger of the two standard deviations over seeds.
Anything closer is "within the spread" and no claim is made.
"""

from __future__ import annotations

import math

import numpy as np

# a difference must exceed this many seed standard deviations to count
SPREADS = 2.0


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) of a few runs' numbers."""
    a = np.asarray(list(values), dtype=float)
    if a.ndim != 1 or len(a) < 2 or not np.all(np.isfinite(a)):
        raise ValueError(
            "mean_sd needs at least two finite numbers (one per seed); "
            f"got {a.tolist()}"
        )
    return float(a.mean()), float(a.std(ddof=1))


def margin(a, b) -> float:
    """The smallest difference of means that counts.

    That is SPREADS x the larger sd of the two groups.
    """
    return SPREADS * max(mean_sd(a)[1], mean_sd(b)[1])


def verdict(a, b) -> str:
    """'lower', 'higher' or 'within spread': runs `a` versus runs `b`."""
    diff = mean_sd(a)[0] - mean_sd(b)[0]
    if diff < -margin(a, b):
        return "lower"
    if diff > margin(a, b):
        return "higher"
    return "within spread"


def fmt(values, digits: int = 2) -> str:
    """'mean ± sd' of a few runs' numbers, for tables and prose."""
    mean, sd = mean_sd(values)
    return (
        f"{mean:.{digits}f} ± {sd:.{digits}f}"
        if math.isfinite(sd)
        else f"{mean:.{digits}f}"
    )
