"""vaelib.drawing: drawings made MNIST-style.

Checked on shapes whose answer is known and on MNIST.
"""

import numpy as np
import pytest

from vaelib.drawing import area_weights, ink_box, mnist_style, round_half_up


def test_area_weights_average_whole_blocks_and_keep_ink():
    rng = np.random.default_rng(0)
    image = rng.random((12, 12))
    # 3 x 3 block means, by reshaping
    blocks = image.reshape(4, 3, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(
        area_weights(12, 4) @ image @ area_weights(12, 4).T, blocks
    )
    for n, m in [(7, 3), (3, 7), (280, 20), (19, 20)]:
        weights = area_weights(n, m)
        # each output pixel is an average
        np.testing.assert_allclose(weights.sum(axis=1), 1)
        # every input pixel counted in full
        np.testing.assert_allclose(weights.sum(axis=0), m / n)


def test_round_half_up_matches_javascript():
    assert [round_half_up(v) for v in (0.5, 1.5, 2.5, -0.5, -1.5, 2.4999)] == (
        [1, 2, 3, 0, -1, 2]
    )


def test_a_bar_is_fitted_to_twenty_pixels_and_centred():
    ink = np.zeros((280, 280))
    ink[40:240, 100:140] = 1  # 200 tall, 40 wide: 20 x 4 after fitting
    out = mnist_style(ink)
    top, bottom, left, right = ink_box(out)
    assert (bottom - top + 1, right - left + 1) == (20, 4)
    assert out.max() == pytest.approx(1) and out.sum() == pytest.approx(80)
    rows, cols = np.indices(out.shape)
    # centre of mass at (14, 14)
    assert abs((rows * out).sum() / out.sum() - 14) <= 0.5
    assert abs((cols * out).sum() / out.sum() - 14) <= 0.5


def test_a_lopsided_shape_is_centred_by_mass_not_by_its_box():
    ink = np.zeros((100, 100))
    ink[10:20, 10:90] = 1  # a heavy top bar ...
    ink[20:90, 35:70] = 0.5  # ... over a fainter stem, like a 7
    out = mnist_style(ink)
    # nothing cut off
    assert out.sum() == pytest.approx((10 * 80 + 70 * 35 * 0.5) / 16)
    rows, cols = np.indices(out.shape)
    centre = (rows * out).sum() / out.sum()
    top, bottom, _, _ = ink_box(out)
    assert abs(centre - 14) <= 0.5
    # the box hangs low, as MNIST's sevens do
    assert (top + bottom) / 2 > 14 + 2


def test_edges_inside_a_pixel_turn_grey():
    ink = np.zeros((200, 200))
    # an upside-down T: a stem 2 pixels wide after fitting ...
    ink[:, 90:110] = 1
    ink[185:, :] = 1  # ... on a foot 1.5 pixels tall
    out = mnist_style(ink)
    top, bottom, left, right = ink_box(out)
    small = out[top : bottom + 1, left : right + 1]
    assert small.shape == (20, 20) and out.sum() == pytest.approx(
        2 * 20 + 1.5 * 18
    )
    stem = np.zeros(20, bool)
    stem[9:11] = True
    np.testing.assert_allclose(small[19], 1)  # the foot's full row
    # half of this row is inked: grey
    np.testing.assert_allclose(small[18, ~stem], 0.5)
    np.testing.assert_allclose(small[:19, stem], 1)
    assert not small[:18, ~stem].any()


def test_empty_and_invalid_drawings():
    assert not mnist_style(np.zeros((50, 50))).any()
    with pytest.raises(ValueError, match="Scale 8-bit images by 1/255"):
        mnist_style(np.full((5, 5), 255.0))
    with pytest.raises(ValueError, match="2-D ink image"):
        mnist_style(np.zeros((1, 5, 5)))


def test_mnist_digits_come_back_unchanged(mnist):
    """Re-processing MNIST's test digits changes almost none of them.

    MNIST was made this way.
    """
    digits = mnist.test.images[:, 0].double().numpy()
    changed = np.array(
        [np.abs(mnist_style(d) - d).max() > 1e-12 for d in digits]
    )
    change = np.array(
        [np.abs(mnist_style(d) - d).mean() for d in digits[changed]]
    )
    print(
        f"\nre-processed MNIST test digits: "
        f"{changed.sum()} of {len(digits)} change, "
        f"by at most {change.max(initial=0):.3f} per pixel on average"
    )
    # measured: 3 of 10,000, the digits whose ink spans 19 pixels
    assert changed.mean() < 0.001
    assert change.max(initial=0) < 0.05  # measured: 0.045
