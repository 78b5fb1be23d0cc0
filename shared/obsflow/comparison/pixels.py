"""How two versions of one frame differ, pixel by pixel: pure array functions (numpy only, no I/O).

The difference is always the second minus the first (B - A). Pixels that are not finite in both (a bad pixel set
NaN in one version only, say) are left out of the statistics and counted apart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

ROWS_PER_BLOCK = 256  # a frame is summed block by block: the float64 temporaries stay small


class ShapeMismatch(ValueError):
    """The two frames do not have the same shape: their pixels cannot be compared one to one."""


@dataclass(frozen=True)
class Differences:
    """Statistics of B - A over the pixels finite in both. ``relative`` is the RMS of the difference over the RMS of
    A (None when A is zero everywhere); ``mean``, ``rms``, ``max_abs`` and ``relative`` are None when no pixel is
    finite in both."""

    pixels: int
    mean: float | None
    rms: float | None
    max_abs: float | None
    relative: float | None
    finite_in_one_only: int

    @property
    def identical(self) -> bool:
        return self.finite_in_one_only == 0 and (self.pixels == 0 or self.max_abs == 0.0)

    def as_dict(self) -> dict:
        return {**asdict(self), "identical": self.identical}


def differences(a: np.ndarray, b: np.ndarray, rows_per_block: int = ROWS_PER_BLOCK) -> Differences:
    """Mean, RMS, largest absolute value and relative size of B - A, summed in float64 over blocks of rows."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ShapeMismatch(f"the frames' shapes differ: {a.shape} and {b.shape}")
    if a.size == 0:
        return Differences(0, None, None, None, None, 0)
    a2, b2 = (a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])) if a.ndim else (a.reshape(1, 1), b.reshape(1, 1))
    pixels = one_only = 0
    total = squares = reference = largest = 0.0
    for start in range(0, a2.shape[0], rows_per_block):
        block_a = a2[start:start + rows_per_block].astype(np.float64)
        block_b = b2[start:start + rows_per_block].astype(np.float64)
        finite_a, finite_b = np.isfinite(block_a), np.isfinite(block_b)
        both = finite_a & finite_b
        one_only += int(np.count_nonzero(finite_a ^ finite_b))
        if not both.any():
            continue
        difference = block_b[both] - block_a[both]
        pixels += difference.size
        total += float(difference.sum())
        squares += float(np.dot(difference, difference))
        reference += float(np.dot(block_a[both], block_a[both]))
        largest = max(largest, float(np.abs(difference).max()))
    if pixels == 0:
        return Differences(0, None, None, None, None, one_only)
    rms = math.sqrt(squares / pixels)
    return Differences(pixels, total / pixels, rms, largest, math.sqrt(squares / reference) if reference else None,
                       one_only)
