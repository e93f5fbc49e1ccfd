"""A drawing turned into an MNIST-style input, the way MNIST was made.

LeCun et al. fitted each NIST digit into a 20 x 20 box (keeping its aspect
ratio, with grey levels from antialiasing) and centred it by its centre of
mass in a 28 x 28 field. `mnist_style` does the same to any ink image; the
explorers' JavaScript (`preprocess` in `static/explorer.js`) is a
line-by-line copy, and the tests hold the two to the same pixels.
"""

from __future__ import annotations

import math

import numpy as np

BOX = 20  # the digit's longer side, in pixels, after fitting
SIZE = 28  # the side of the field it is centred in


def round_half_up(value: float) -> int:
    """Round .5 upwards, like JavaScript's Math.round (Python's: to even)."""
    return math.floor(value + 0.5)


def area_weights(n: int, m: int) -> np.ndarray:
    """(m, n) matrix resizing n pixels to m: row i averages its footprint."""
    step = n / m
    weights = np.zeros((m, n))
    for i in range(m):
        start, end = i * step, (i + 1) * step
        for k in range(math.floor(start), min(math.ceil(end), n)):
            weights[i, k] = (min(end, k + 1) - max(start, k)) / step
    return weights


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """First and last inked row and column, or None without any ink."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if len(rows) == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def mnist_style(
    ink: np.ndarray, box: int = BOX, size: int = SIZE
) -> np.ndarray:
    """Ink (H, W) in [0, 1] (1 = black) -> (size, size) input, MNIST's way."""
    ink = np.asarray(ink, dtype=np.float64)
    low, high = ink.min(initial=0), ink.max(initial=0)
    if ink.ndim != 2 or low < 0 or high > 1:
        raise ValueError(
            f"mnist_style expects a 2-D ink image with values in [0, 1]; "
            f"got shape {ink.shape}, values {low:.3g}..{high:.3g}. "
            "Scale 8-bit images by 1/255."
        )
    found = ink_box(ink)
    out = np.zeros((size, size))
    if found is None:
        return out
    top, bottom, left, right = found
    h, w = bottom - top + 1, right - left + 1
    scale = box / max(h, w)
    new_h = max(1, round_half_up(h * scale))
    new_w = max(1, round_half_up(w * scale))
    crop = ink[top : bottom + 1, left : right + 1]
    small = area_weights(h, new_h) @ crop @ area_weights(w, new_w).T
    mass = small.sum()
    centre_row = (small.sum(axis=1) * np.arange(new_h)).sum() / mass
    centre_col = (small.sum(axis=0) * np.arange(new_w)).sum() / mass
    # MNIST's centres of mass lie within half a pixel of (size / 2, size / 2)
    row0 = round_half_up(size / 2 - centre_row)
    col0 = round_half_up(size / 2 - centre_col)
    # ink pushed past the field's edge is cut off
    r_lo, r_hi = max(row0, 0), min(row0 + new_h, size)
    c_lo, c_hi = max(col0, 0), min(col0 + new_w, size)
    inside = small[r_lo - row0 : r_hi - row0, c_lo - col0 : c_hi - col0]
    out[r_lo:r_hi, c_lo:c_hi] = inside
    return out
