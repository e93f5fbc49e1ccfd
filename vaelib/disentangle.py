"""Disentanglement scores: how one-to-one codes and known factors are.

Both scores compare a model's codes (posterior means, one row per image)
with factors measured on the same images (one column per factor), and both
are 1 when each factor is captured by exactly one code dimension and 0 when
no dimension stands out for any factor:

- MIG, the mutual information gap (Chen et al. 2018): for each factor, the
  mutual information of its best code dimension minus that of the second
  best, divided by the factor's entropy, averaged over factors. Codes and
  factors are discretised into equal-frequency bins, as MIG is usually
  computed; the plug-in estimate of a discrete mutual information is biased
  upwards by about (bins - 1)^2 / (2 N) nats for N images.
- SAP, the separated attribute predictability (Kumar et al. 2018): the same
  gap for the R^2 of a linear fit of the factor from one code dimension at a
  time (the squared correlation), averaged over factors.

`variance_share` asks Locatello et al.'s (2019) question of a table of
scores: how much of their spread a design choice explains, and how much is
left to the random seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

BINS = 20  # equal-frequency bins per code dimension and per factor for MIG


def _check_pair(codes: torch.Tensor, factors: torch.Tensor) -> None:
    """Raise a clear error unless codes (N, L) and factors (N, K) match."""
    if codes.ndim != 2 or factors.ndim != 2:
        raise ValueError(
            "codes and factors must be 2-D, one row per image; got shapes "
            f"{tuple(codes.shape)} and {tuple(factors.shape)}"
        )
    if len(codes) != len(factors) or len(codes) < 2:
        raise ValueError(
            "codes and factors need the same number of rows (images), at "
            f"least 2; got {len(codes)} and {len(factors)}"
        )
    if codes.shape[1] < 2:
        raise ValueError(
            "a gap between the best and second-best code dimension needs "
            f"at least 2 code dimensions; got {codes.shape[1]}"
        )


def discretize(x: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """Equal-frequency bin index of each value: (N,) -> (N,) int64.

    Ties stay in one bin, so a constant column has a single bin.
    """
    x = x.double().contiguous()
    levels = torch.linspace(0, 1, bins + 1, dtype=x.dtype)[1:-1]
    edges = torch.quantile(x, levels)
    return torch.bucketize(x, edges, right=True)


def entropy(a: torch.Tensor) -> float:
    """Plug-in entropy in nats of integer labels a (N,)."""
    p = torch.bincount(a).double() / len(a)
    p = p[p > 0]
    return -(p * p.log()).sum().item()


def mutual_info(a: torch.Tensor, b: torch.Tensor) -> float:
    """Plug-in mutual information in nats of integer labels a, b (N,)."""
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    joint = torch.bincount(a * nb + b, minlength=na * nb).double()
    joint = joint.view(na, nb) / len(a)
    outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    seen = joint > 0
    return (joint[seen] * (joint[seen] / outer[seen]).log()).sum().item()


def mutual_info_matrix(
    codes: torch.Tensor, factors: torch.Tensor, bins: int = BINS
) -> torch.Tensor:
    """MI (nats) of each code dimension with each factor: (L, K)."""
    _check_pair(codes, factors)
    z = [discretize(c, bins) for c in codes.T]
    v = [discretize(f, bins) for f in factors.T]
    return torch.tensor([[mutual_info(zj, vk) for vk in v] for zj in z])


def _gap(scores: torch.Tensor) -> torch.Tensor:
    """Best minus second-best row of each column: (L, K) -> (K,)."""
    top = torch.topk(scores, 2, dim=0).values
    return top[0] - top[1]


def mig(
    codes: torch.Tensor, factors: torch.Tensor, bins: int = BINS
) -> torch.Tensor:
    """Mutual information gap per factor, in [0, 1]: (N, L), (N, K) -> (K,).

    Average it over factors for the model's MIG. A factor without spread
    (entropy 0) is an error: it cannot be captured by anything.
    """
    mi = mutual_info_matrix(codes, factors, bins)
    h = torch.tensor(
        [entropy(discretize(f, bins)) for f in factors.T], dtype=mi.dtype
    )
    if (h == 0).any():
        raise ValueError(
            "factor column(s) "
            f"{torch.nonzero(h == 0).flatten().tolist()} are constant: "
            "MIG divides by the factor's entropy, so drop them first"
        )
    return _gap(mi) / h


def r2_matrix(codes: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """R^2 of a linear fit of each factor from each code dim: (L, K).

    For one predictor the R^2 is the squared Pearson correlation; a
    constant code dimension predicts nothing (R^2 = 0).
    """
    _check_pair(codes, factors)
    z = codes.double() - codes.double().mean(0)
    v = factors.double() - factors.double().mean(0)
    cov = z.T @ v / len(z)
    var_z, var_v = (z**2).mean(0), (v**2).mean(0)
    r2 = cov**2 / (var_z[:, None] * var_v[None, :])
    return torch.nan_to_num(r2, nan=0.0)


def sap(codes: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Separated attribute predictability per factor: (N, L), (N, K) -> (K,).

    Average it over factors for the model's SAP score.
    """
    return _gap(r2_matrix(codes, factors))


def variance_share(scores: Mapping[object, Sequence[float]]) -> float:
    """Share of the scores' variance that the grouping explains (eta^2).

    scores maps a design (e.g. a beta) to one score per seed; the result is
    the between-design sum of squares over the total: 1 means the seed does
    not matter at all, 0 means the design does not.
    """
    groups = [
        torch.tensor(list(s), dtype=torch.float64) for s in scores.values()
    ]
    if len(groups) < 2 or any(len(g) < 2 for g in groups):
        raise ValueError(
            "variance_share needs at least 2 designs with at least 2 seeds "
            f"each; got {[len(g) for g in groups]} seeds per design"
        )
    every = torch.cat(groups)
    total = ((every - every.mean()) ** 2).sum()
    if total == 0:
        raise ValueError("every score is the same: there is no variance")
    between = sum(len(g) * (g.mean() - every.mean()) ** 2 for g in groups)
    return (between / total).item()


def chance_variance_share(n_designs: int, n_runs: int) -> float:
    """The variance_share that scores unrelated to the design give on average.

    With n_runs scores in n_designs groups and no effect at all, the
    between-group sum of squares has n_designs - 1 of the n_runs - 1
    degrees of freedom: eta^2 = (n_designs - 1) / (n_runs - 1) on average.
    """
    if not 2 <= n_designs < n_runs:
        raise ValueError(
            f"need 2 <= n_designs < n_runs; got {n_designs} and {n_runs}"
        )
    return (n_designs - 1) / (n_runs - 1)


def max_mig_bias(n: int, bins: int = BINS) -> float:
    """Rough upward bias (nats) of a plug-in MI over bins x bins cells."""
    return (bins - 1) ** 2 / (2 * n)
