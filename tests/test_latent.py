import numpy as np
import pytest
import torch

import vaelib
from vaelib import (
    interpolate,
    knn_accuracy,
    knn_predict,
    nearest_neighbours,
    prior_grid,
    traversals,
)


def test_prior_grid_sits_at_the_prior_quantiles():
    z = prior_grid(5, tail=0.1)
    assert z.shape == (25, 2)
    cdf = torch.distributions.Normal(0.0, 1.0).cdf(z[:5, 0].double())
    torch.testing.assert_close(
        cdf,
        torch.linspace(0.1, 0.9, 5, dtype=torch.float64),
        atol=1e-6,
        rtol=0,
    )
    # top-left: small z1, large z2
    assert z[0, 1] == z[:, 1].max() and z[0, 0] == z[:, 0].min()


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_interpolation_ends_at_both_codes(method):
    z0, z1 = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([-1.0, 3.0, 0.5])
    path = interpolate(z0, z1, 7, method)
    assert path.shape == (7, 3)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)


def test_slerp_keeps_the_norm_between_codes_of_equal_norm_and_linear_does_not():  # noqa: E501
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    torch.testing.assert_close(
        interpolate(z0, z1, 9, "slerp").norm(dim=1), torch.full((9,), 3.0)
    )
    # the midpoint cuts the corner
    assert interpolate(z0, z1, 9, "linear").norm(dim=1)[4] < 2.2
    with pytest.raises(ValueError, match="method must be 'linear' or 'slerp'"):
        interpolate(z0, z1, 3, "cubic")


def test_traversals_change_one_dimension_at_a_time():
    z, values = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([-2.0, 0.0, 2.0])
    codes = traversals(z, values)
    assert codes.shape == (9, 3)
    for d in range(3):
        block = codes[3 * d : 3 * d + 3]
        torch.testing.assert_close(block[:, d], values)
        others = [i for i in range(3) if i != d]
        torch.testing.assert_close(block[:, others], z[others].expand(3, 2))


def brute_force_knn(train_z, train_y, test_z, k):
    d = ((test_z[:, None, :] - train_z[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.array(
        [np.bincount(train_y[row], minlength=10).argmax() for row in nearest]
    )


def test_knn_and_nearest_neighbours_match_brute_force_numpy():
    rng = np.random.default_rng(0)
    train_z, test_z = rng.normal(size=(300, 3)), rng.normal(size=(100, 3))
    train_y = rng.integers(0, 10, 300)
    ours = knn_predict(
        torch.tensor(train_z, dtype=torch.float32),
        torch.tensor(train_y),
        torch.tensor(test_z, dtype=torch.float32),
        k=5,
    )
    assert np.array_equal(
        ours.numpy(), brute_force_knn(train_z, train_y, test_z, 5)
    )
    idx, dist = nearest_neighbours(
        torch.tensor(test_z), torch.tensor(train_z), batch_size=7
    )
    d = np.sqrt(((test_z[:, None] - train_z[None]) ** 2).sum(-1))
    assert np.array_equal(idx.numpy(), d.argmin(1))
    # float32 distances
    np.testing.assert_allclose(dist.numpy(), d.min(1), rtol=0, atol=1e-5)


def test_knn_accuracy_on_separated_clusters_and_bad_k():
    centres = torch.arange(10.0)[:, None] * 100
    train_z, train_y = (
        centres.repeat(5, 1) + torch.rand(50, 1),
        torch.arange(10).repeat(5),
    )
    assert (
        knn_accuracy(train_z, train_y, centres, torch.arange(10), k=3) == 1.0
    )
    with pytest.raises(
        ValueError,
        match="k must be between 1 and the number of training points",
    ):
        knn_predict(train_z, train_y, centres, k=51)


def test_entropy_floor_is_the_smallest_possible_reconstruction_cost():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 784, generator=g, dtype=torch.float64)
    floor = vaelib.bernoulli_entropy_floor(x)
    # reached at p = x
    torch.testing.assert_close(floor, vaelib.bernoulli_nll(torch.logit(x), x))
    for _ in range(5):
        assert torch.all(
            vaelib.bernoulli_nll(
                torch.logit(x)
                + 0.3 * torch.randn(3, 784, generator=g, dtype=torch.float64),
                x,
            )
            > floor
        )
    # black and white cost nothing
    assert torch.all(
        vaelib.bernoulli_entropy_floor(torch.tensor([[0.0, 1.0, 1.0]])) == 0
    )


def test_layer_table_accounts_for_every_parameter():
    model = vaelib.VAE()
    table = vaelib.layer_table(model, torch.rand(4, 1, 28, 28))
    assert (
        table["parameters"].sum() == vaelib.count_parameters(model) == 470_804
    )
    assert (table.iloc[-1]["output shape"] == (4, 784)) and (
        table.iloc[0]["output shape"] == (4, 256)
    )


def test_prior_mismatch_is_zero_for_prior_samples_and_exact_for_scaled_ones():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200_000, 3, generator=g)
    assert vaelib.latent.prior_mismatch(z) < 0.02
    # Cov[2 z] = 4 I, so Cov - I = 3 I with Frobenius norm 3 * sqrt(3)
    assert abs(vaelib.latent.prior_mismatch(2 * z) - 3 * 3**0.5) < 0.05
    with pytest.raises(ValueError, match="shape"):
        vaelib.latent.prior_mismatch(torch.zeros(1, 3))


def test_mean_abs_correlation_matches_numpy():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 1, generator=g)
    z = torch.cat(
        [
            a,
            -a + 0.1 * torch.randn(500, 1, generator=g),
            torch.randn(500, 1, generator=g),
        ],
        dim=1,
    )
    c = np.abs(np.corrcoef(z.numpy().T))
    expected = (c.sum() - np.trace(c)) / 6
    assert vaelib.latent.mean_abs_correlation(z) == pytest.approx(
        expected, abs=1e-9
    )
    assert vaelib.latent.mean_abs_correlation(
        torch.cat([a, a], dim=1)
    ) == pytest.approx(1.0)
