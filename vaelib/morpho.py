"""Morphometrics of digit images: area, height, width, slant and thickness.

In the spirit of Morpho-MNIST (Castro et al. 2019, "Morpho-MNIST:
Quantitative Assessment and Diagnostics for Representation Learning"), these
measure how a digit is drawn, so that latent codes can be compared with
interpretable factors. The definitions are simplified: they work on the
28 x 28 image binarised at INK_THRESHOLD, with no upsampling and no skeleton.
Slant comes from the second moments of the ink's coordinates rather than
from a shear search, width is measured after removing that slant, and
thickness comes from a ribbon model (area and marching-squares perimeter)
rather than from distances to the skeleton. Everything is in pixels (slant
in degrees) and vectorised over the batch. Each measure takes a boolean ink
mask (N, H, W) or grey-level images, as ink_mask does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

INK_THRESHOLD = 0.5  # a pixel is ink when its grey level is above this
FACTORS = ("area", "height", "width", "slant", "thickness")

HALF_DIAGONAL = math.sqrt(2) / 2  # a contour segment cutting off a corner
# Marching-squares contour length inside one 2 x 2 cell of pixel centres,
# indexed by its corners' ink bits: 1 top-left, 2 top-right, 4 bottom-right,
# 8 bottom-left. One or three corners in: one cut corner; two adjacent: a
# straight unit segment; two diagonal (5, 10): two cut corners.
SEGMENT_LENGTH = (
    (0.0, HALF_DIAGONAL, HALF_DIAGONAL, 1.0)
    + (HALF_DIAGONAL, 2 * HALF_DIAGONAL, 1.0, HALF_DIAGONAL)
    + (HALF_DIAGONAL, 1.0, 2 * HALF_DIAGONAL, HALF_DIAGONAL)
    + (1.0, HALF_DIAGONAL, HALF_DIAGONAL, 0.0)
)


def ink_mask(images: torch.Tensor) -> torch.Tensor:
    """Ink pixels of images (N, 1, H, W) or (N, H, W): bool (N, H, W).

    Grey levels in [0, 1] (floating point) are ink above INK_THRESHOLD; a
    boolean tensor is taken as the ink itself. Every image needs some ink.
    """
    ink = _binarise(_drop_channel(images))
    blank = ~ink.flatten(1).amax(dim=1)
    if blank.any():
        raise ValueError(
            f"morphometrics needs at least one pixel above {INK_THRESHOLD} "
            f"in every image; {int(blank.sum())} of {len(ink)} images have "
            f"none (the first at index {int(blank.nonzero()[0, 0])}). Drop "
            f"blank images first, e.g. images[images.flatten(1).amax(1) > "
            f"{INK_THRESHOLD}]"
        )
    return ink


def _drop_channel(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) or (N, H, W) -> (N, H, W); anything else is refused."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(
            f"morphometrics expects a torch.Tensor of images; "
            f"got {type(images).__name__}"
        )
    shape = tuple(images.shape)
    if images.ndim == 4 and shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or 0 in images.shape[1:]:
        raise ValueError(
            f"morphometrics expects images of shape (N, 1, H, W) or "
            f"(N, H, W) with H, W >= 1; got {shape}"
        )
    return images


def _binarise(images: torch.Tensor) -> torch.Tensor:
    """Boolean ink (N, H, W) from bool or floating grey levels (N, H, W)."""
    if images.dtype == torch.bool:
        return images
    if not images.is_floating_point():
        raise ValueError(
            f"morphometrics expects grey levels in [0, 1] as a floating "
            f"tensor, or a boolean ink mask; got {images.dtype} (for 0-255 "
            f"pixels, divide by 255 first)"
        )
    return images > INK_THRESHOLD


def morphometrics(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every factor of images (N, 1, H, W) or (N, H, W): {name: (N,)}.

    Keys are FACTORS, in order; values are float64.
    """
    ink = ink_mask(images)
    measures = {
        "area": area,
        "height": height,
        "width": width,
        "slant": slant,
        "thickness": thickness,
    }
    return {name: measures[name](ink) for name in FACTORS}


def area(ink: torch.Tensor) -> torch.Tensor:
    """Number of ink pixels of ink (N, H, W): float64 (N,)."""
    ink = ink_mask(ink).flatten(1)
    return ink.sum(dim=1, dtype=torch.int32).double()


def height(ink: torch.Tensor) -> torch.Tensor:
    """Rows from the top-most to the bottom-most ink row of (N, H, W): (N,).

    Both end rows count, so one row of ink has height 1. float64.
    """
    rows = ink_mask(ink).amax(dim=2)  # (N, H) rows with ink
    return (_last(rows) - _first(rows) + 1).double()


def _first(mask: torch.Tensor) -> torch.Tensor:
    """Index of the first True along the last dim of mask (..., K)."""
    return mask.byte().argmax(dim=-1)  # argmax returns the first maximum


def _last(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last True along the last dim of mask (..., K)."""
    return mask.shape[-1] - 1 - _first(mask.flip(-1))


def _row_fit(ink: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ink row (N,) and shear (N,) of boolean ink (N, H, W), float64.

    From sums of whole numbers, which float32 and float64 hold exactly
    here, so an upright shape gets exactly 0 and no pixel is slanted.
    """
    w = ink.float()
    c = torch.arange(ink.shape[2], dtype=w.dtype, device=w.device)
    per_row = w.sum(dim=2).double()  # (N, H) ink pixels in each row
    c_sums = (w @ c).double()  # (N, H) sums of ink columns in each row
    r = torch.arange(ink.shape[1], dtype=torch.float64, device=w.device)
    n, sum_r, sum_c = per_row.sum(dim=1), per_row @ r, c_sums.sum(dim=1)
    minus_cov = sum_r * sum_c - n * (c_sums @ r)  # -n^2 cov(c, r), not -0
    var = n * (per_row @ (r * r)) - sum_r * sum_r  # n^2 var(r)
    flat = var == 0  # ink in a single row: no slope to fit
    s = torch.where(flat, 0.0, minus_cov / torch.where(flat, 1.0, var))
    return sum_r / n, s


def shear(ink: torch.Tensor) -> torch.Tensor:
    """Horizontal shift per row up of the ink (N, H, W): float64 (N,).

    s = -cov(c, r) / var(r) over the ink pixels' rows r (downwards) and
    columns c (rightwards): the least-squares slope of c on r, negated.
    s > 0 leans right (the top is further right than the bottom); ink in
    a single row has s = 0.
    """
    return _row_fit(ink_mask(ink))[1]


def slant(ink: torch.Tensor) -> torch.Tensor:
    """Slant of the ink (N, H, W) in degrees, degrees(atan(shear)): (N,).

    Positive leans right; an upright stroke has 0.
    """
    return torch.rad2deg(torch.atan(shear(ink)))


def width(ink: torch.Tensor) -> torch.Tensor:
    """Horizontal extent of the ink (N, H, W) after removing slant: (N,).

    Each ink pixel moves to x' = c + s (r - mean r), which makes a sheared
    stroke upright; width = max x' - min x' + 1. float64, in pixels. Only
    each row's outermost ink pixels can reach the max and min.
    """
    ink = ink_mask(ink)
    mean_r, s = _row_fit(ink)
    r = torch.arange(ink.shape[1], dtype=s.dtype, device=s.device)
    shift = s[:, None] * (r - mean_r[:, None])  # (N, H)
    empty = ~ink.amax(dim=2)  # rows without ink
    right = (_last(ink) + shift).masked_fill(empty, -math.inf)
    left = (_first(ink) + shift).masked_fill(empty, math.inf)
    return right.amax(dim=1) - left.amin(dim=1) + 1


def perimeter(ink: torch.Tensor) -> torch.Tensor:
    """Marching-squares contour length of the ink (N, H, W): float64 (N,).

    The contour runs between pixel centres, through the midpoints between
    ink and background, on the image padded by one pixel of background.
    """
    p = F.pad(ink_mask(ink).byte(), (1, 1, 1, 1))
    code = (
        p[:, :-1, :-1]
        + 2 * p[:, :-1, 1:]
        + 4 * p[:, 1:, 1:]
        + 8 * p[:, 1:, :-1]
    )  # (N, H + 1, W + 1) corner bits of each cell, 0..15
    table = torch.tensor(SEGMENT_LENGTH, dtype=torch.float64, device=p.device)
    return table[code.long()].sum(dim=(1, 2))


def thickness(ink: torch.Tensor) -> torch.Tensor:
    """Stroke thickness of the ink (N, H, W) from a ribbon model: (N,).

    A ribbon of thickness t and length L has area A = t L and perimeter
    P = 2 (t + L); t is the smaller root, (P - sqrt(P^2 - 16 A)) / 4, with
    A = area and P = perimeter: t and L are mean -+ sqrt(mean^2 - A) with
    mean = (t + L) / 2 = P / 4. For a sheared bar it is close to the
    thickness perpendicular to the stroke. float64, in pixels.
    """
    a, mean = area(ink), perimeter(ink) / 4
    return mean - torch.sqrt((mean * mean - a).clamp_min(0.0))


def draw_bar(
    height: int, thickness: int, shear: float = 0.0, size: int = 28
) -> torch.Tensor:
    """A centred bar (parallelogram) as a (size, size) float image in {0, 1}.

    height: rows of ink, a whole number; thickness: ink pixels in each row
    (the bar's horizontal width t), a whole number; shear: s, columns the
    bar moves right per row up; size: the image's side.
    Row r's ink is the t pixels with centres c in [u - t/2, u + t/2), where
    u = c0 + s (r0 - r), c0 = (size - 1) / 2 and r0 is the middle ink row.
    So the measures should find: height = height, area = height * t,
    shear = s, slant = degrees(atan(s)), width = t (up to about 1 pixel
    more, as each row is rounded to whole pixels) and thickness
    t cos(atan(s)).
    """
    if height != int(height) or thickness != int(thickness):
        raise ValueError(
            f"draw_bar needs whole numbers of pixels; got height={height}, "
            f"thickness={thickness}"
        )
    if not (1 <= height <= size and 1 <= thickness <= size):
        raise ValueError(
            f"draw_bar needs 1 <= height, thickness <= size={size}; got "
            f"height={height}, thickness={thickness}"
        )
    top = (size - height) // 2
    r = torch.arange(size, dtype=torch.float64)[:, None]
    c = torch.arange(size, dtype=torch.float64)[None, :]
    rows = (r >= top) & (r < top + height)
    u = (size - 1) / 2 + shear * (top + (height - 1) / 2 - r)
    left = torch.ceil(u - thickness / 2)
    ends = left[rows[:, 0]]  # first ink column of each of the bar's rows
    if ends.min() < 0 or ends.max() + thickness > size:
        raise ValueError(
            f"a bar of height {height}, thickness {thickness} and shear "
            f"{shear} does not fit a {size} x {size} image"
        )
    return (rows & (c >= left) & (c < left + thickness)).float()
