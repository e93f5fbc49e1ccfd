"""Morphometrics against shapes whose factors are known by construction.

Bars (parallelograms) from draw_bar have a known height, area, shear and
thickness; rings have a known stroke. Tolerances are the worst errors
measured on these shapes plus a small margin, with the reason beside each.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from vaelib.morpho import (
    FACTORS,
    INK_THRESHOLD,
    area,
    draw_bar,
    height,
    morphometrics,
    perimeter,
    shear,
    slant,
    thickness,
    width,
)

SHEARS = (-0.5, -0.3, -0.1, 0.1, 0.3, 0.5)
HALF_DIAGONAL = math.sqrt(2) / 2


def measure(image: torch.Tensor) -> dict[str, float]:
    """The factors of one (H, W) image as floats."""
    return {k: v.item() for k, v in morphometrics(image[None]).items()}


def ring(radius: float, stroke: float, size: int = 28) -> torch.Tensor:
    """A centred circle of the given stroke width: (size, size) in {0, 1}."""
    r = torch.arange(size, dtype=torch.float64)[:, None]
    c = torch.arange(size, dtype=torch.float64)[None, :]
    centre = (size - 1) / 2
    distance = ((r - centre) ** 2 + (c - centre) ** 2).sqrt()
    return ((distance - radius).abs() < stroke / 2).float()


def some_shapes() -> torch.Tensor:
    """Bars and rings of different sizes, shears and strokes: (N, 28, 28)."""
    bars = [draw_bar(h, t, s) for h, t, s in [(12, 2, 0.3), (20, 4, -0.5)]]
    rings = [ring(9, 2), ring(6, 3.5)]
    lone = torch.zeros(28, 28)
    lone[3, 25] = 1.0  # a single pixel: ink in one row, no slope
    return torch.stack([*bars, *rings, lone, draw_bar(1, 7)])


def test_factors_come_in_order_as_float64_vectors():
    images = some_shapes()
    result = morphometrics(images)
    assert tuple(result) == FACTORS
    for values in result.values():
        assert values.dtype == torch.float64 and values.shape == (6,)
        assert torch.isfinite(values).all()


@pytest.mark.parametrize("w", range(1, 7))
@pytest.mark.parametrize("h", [12, 17, 24])
def test_upright_rectangles_are_measured_exactly(w, h):
    m = measure(draw_bar(h, w))
    assert (m["area"], m["height"], m["width"]) == (w * h, h, w)
    assert m["slant"] == 0.0  # whole-number moments: exactly upright


@pytest.mark.parametrize("w", range(1, 7))
@pytest.mark.parametrize("h", [1, 12, 25])
def test_rectangle_perimeter_is_the_marching_squares_polygon(w, h):
    # The contour runs along the rectangle's pixel edges, except that each
    # of the 4 corners is cut by a half diagonal instead of two halves.
    known = 2 * (w + h) - 4 * (1 - HALF_DIAGONAL)
    assert perimeter(draw_bar(h, w)[None]).item() == pytest.approx(
        known, abs=1e-9
    )


def test_perimeter_of_tiny_shapes_by_hand():
    pixel = torch.zeros(1, 5, 5, dtype=torch.bool)
    pixel[0, 2, 2] = True  # four cut corners
    assert perimeter(pixel).item() == pytest.approx(4 * HALF_DIAGONAL)
    pair = pixel.clone()
    pair[0, 3, 3] = True  # touching diagonally: 6 cut corners + 2 at touch
    assert perimeter(pair).item() == pytest.approx(8 * HALF_DIAGONAL)


def test_thickness_of_long_rectangles_is_their_width():
    # The cut corners make P 4 - 2 sqrt 2 = 1.17 too short, which inflates
    # t by about 1.17 t / (2 (L - t)): worst measured 0.214 px over widths
    # 1..6 with length L >= 4 t (3 x 12). Stubby bars do worse (6 x 12:
    # +0.75 px), so they are left out here.
    errors = [
        thickness(draw_bar(h, w)[None]).item() - w
        for w in range(1, 7)
        for h in range(max(12, 4 * w), 27)
    ]
    assert max(errors) < 0.22
    assert min(errors) > 0  # always too thick, never too thin


def sheared_bars():
    for h in (12, 16, 20, 24):
        for t in (1, 2, 3, 4):
            for s in SHEARS:
                yield h, t, s


def test_sheared_bars_keep_area_and_height_exactly():
    for h, t, s in sheared_bars():
        m = measure(draw_bar(h, t, s))
        assert (m["area"], m["height"]) == (h * t, h), (h, t, s)


def test_slant_of_sheared_bars():
    # Each row's ink is rounded to whole pixels, which bends the fitted
    # line: worst measured 1.46 degrees (height 12), 0.27 at height 24.
    for h, t, s in sheared_bars():
        error = measure(draw_bar(h, t, s))["slant"] - math.degrees(
            math.atan(s)
        )
        assert abs(error) < 1.5, (h, t, s, error)


def test_deslanted_width_of_sheared_bars():
    # After de-slanting, the pixel centres of a sheared bar spread over t
    # rather than t - 1 (rows are rounded differently), so width = extent
    # + 1 reads up to 1 px wide; a slant error of 1.3 degrees over 12 rows
    # adds 0.25. Measured: t + 0.55 to t + 1.15.
    for h, t, s in sheared_bars():
        error = measure(draw_bar(h, t, s))["width"] - t
        assert 0.5 < error < 1.2, (h, t, s, error)


def test_thickness_of_sheared_bars_is_perpendicular():
    # A sheared edge is a staircase whose marching-squares contour is
    # longer than the edge, so P is too long and t mostly too small:
    # errors measured from -0.073 t (4 px, s = 0.5, height 12) to +0.025 t
    # for horizontal widths t = 1..4 px and |s| <= 0.5.
    for h, t, s in sheared_bars():
        known = t * math.cos(math.atan(s))
        error = measure(draw_bar(h, t, s))["thickness"] - known
        assert -0.08 * t < error < 0.03 * t, (h, t, s, error)


def test_translation_changes_nothing():
    images = some_shapes()[:4]  # bars and rings, with room to move
    moved = torch.roll(images, shifts=(2, -3), dims=(1, 2))
    assert moved.sum() == images.sum()  # nothing wrapped round the edge
    before, after = morphometrics(images), morphometrics(moved)
    for name in FACTORS:
        torch.testing.assert_close(
            after[name], before[name], rtol=0, atol=1e-12
        )


def test_mirroring_flips_slant_and_keeps_the_rest():
    images = some_shapes()
    before, after = morphometrics(images), morphometrics(images.flip(-1))
    torch.testing.assert_close(after["slant"], -before["slant"])
    for name in ("area", "height", "width", "thickness"):
        torch.testing.assert_close(after[name], before[name])
    assert (before["slant"][:2] != 0).all()  # the check is not vacuous


@pytest.mark.parametrize(
    "shape",
    [lambda t: draw_bar(20, t), lambda t: draw_bar(18, t, 0.4)]
    + [lambda t: ring(8, t)],
    ids=["bar", "sheared bar", "ring"],
)
def test_thicker_strokes_read_thicker(shape):
    values = [thickness(shape(t)[None]).item() for t in range(1, 6)]
    assert values == sorted(values) and len(set(values)) == 5, values


def test_a_batch_equals_one_image_at_a_time():
    images = some_shapes()
    batched = morphometrics(images)
    for name, function in zip(
        FACTORS, (area, height, width, slant, thickness)
    ):
        alone = torch.cat([function(image[None]) for image in images])
        torch.testing.assert_close(batched[name], alone, rtol=0, atol=1e-12)


def test_layouts_dtypes_and_canvas_size_do_not_matter():
    images = some_shapes()
    expected = morphometrics(images)
    # channel dim, bool ink, float64 grey levels, a wider non-square canvas
    padded = F.pad(images, (5, 9, 0, 3))  # (N, 31, 42)
    for variant in (
        images[:, None],
        images > INK_THRESHOLD,
        images.double(),
        padded,
    ):
        result = morphometrics(variant)
        for name in FACTORS:
            torch.testing.assert_close(result[name], expected[name])


def test_ink_is_strictly_above_the_threshold():
    bar = draw_bar(12, 3)
    faint = bar + (bar == 0) * INK_THRESHOLD  # background at exactly 0.5
    assert measure(faint) == measure(bar)
    assert shear(faint[None]).item() == 0.0


def test_a_blank_image_is_named_by_its_index():
    images = some_shapes()
    images[3] = 0.3  # grey, but nothing above the threshold
    images[5] = 0.0
    with pytest.raises(ValueError, match=r"2 of 6 images .* index 3"):
        morphometrics(images)


@pytest.mark.parametrize(
    "bad",
    [
        torch.rand(28, 28),  # one image without a batch dimension
        torch.rand(2, 3, 28, 28),  # colour
        torch.rand(2, 1, 1, 28, 28),
        torch.rand(2, 0, 28),
        (torch.rand(2, 28, 28) * 255).to(torch.uint8),  # 0-255 pixels
    ],
    ids=["2-D", "3 channels", "5-D", "empty", "uint8"],
)
def test_bad_inputs_are_refused_clearly(bad):
    with pytest.raises(ValueError, match="morphometrics expects"):
        morphometrics(bad)


def test_a_bar_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        draw_bar(26, 4, shear=1.0)
    with pytest.raises(ValueError, match="whole numbers"):
        draw_bar(12, 2.5)
