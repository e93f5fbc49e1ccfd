"""AUROC and ROC curves against a brute-force count.

The count runs over every (normal, anomalous) pair.
"""

import numpy as np
import pytest
import torch

from vaelib.anomaly import auroc, roc_curve


def brute_force_auroc(neg, pos):
    """P(anomalous > normal) + 0.5 P(tie), over all pairs."""
    diff = np.asarray(pos, float)[:, None] - np.asarray(neg, float)[None, :]
    return (diff > 0).mean() + 0.5 * (diff == 0).mean()


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_the_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    # small integers: many ties
    neg = rng.integers(0, 12, size=rng.integers(1, 80))
    pos = rng.integers(3, 15, size=rng.integers(1, 80))
    assert auroc(neg, pos) == pytest.approx(
        brute_force_auroc(neg, pos), abs=1e-12
    )


def test_area_under_the_roc_curve_is_the_auroc():
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 300).round(1), rng.normal(1, 1, 200).round(1)
    fpr, tpr, thresholds = roc_curve(torch.tensor(neg), torch.tensor(pos))
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert (
        np.all(np.diff(fpr) >= 0)
        and np.all(np.diff(tpr) >= 0)
        and np.all(np.diff(thresholds) < 0)
    )
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    assert area == pytest.approx(auroc(neg, pos), abs=1e-12)
    # each point is the fraction of scores at or above its threshold
    t = thresholds[5]
    assert (fpr[5], tpr[5]) == ((neg >= t).mean(), (pos >= t).mean())


def test_extremes():
    assert auroc([1, 2, 3], [4, 5]) == 1.0
    assert auroc([4, 5], [1, 2, 3]) == 0.0
    assert auroc([2, 2], [2, 2, 2]) == 0.5


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0, 2.0]]])
def test_bad_scores_are_refused_clearly(bad):
    with pytest.raises(
        ValueError,
        match="anomalous must be a non-empty 1-D array of finite scores",
    ):
        auroc([0.0, 1.0], bad)


def test_anomaly_scores_agree_with_the_evaluation_functions():
    import vaelib

    model = vaelib.build_model(
        vaelib.VAEConfig(latent_dim=3, device="cpu")
    ).eval()
    x = torch.rand(30, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    scores = vaelib.anomaly.anomaly_scores(model, x, batch_size=7)
    terms = vaelib.per_image_terms(model, x, batch_size=7)
    assert torch.allclose(scores["neg_elbo"], terms.recon + terms.kl)
    with torch.no_grad():
        recon = model.decode(model.encode(x)[0])
    assert torch.allclose(
        scores["squared_error"],
        ((recon - x) ** 2).sum(dim=(1, 2, 3)),
        atol=1e-4,
    )
    floor = vaelib.bernoulli_entropy_floor(x).float()
    assert torch.allclose(scores["excess"], scores["neg_elbo"] - floor)
