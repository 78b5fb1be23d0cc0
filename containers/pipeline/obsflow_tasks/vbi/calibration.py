"""The calibration math: pure numpy functions over arrays (tested against ccdproc)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def average_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of a stack of frames, as float64."""
    if not len(frames):
        raise ValueError("no frames to average")
    return np.mean(np.stack([np.asarray(f, dtype=np.float64) for f in frames]), axis=0)


def average_darks(darks: Sequence[np.ndarray], exposures_ms: Sequence[float]) -> dict[float, np.ndarray]:
    """One average dark per exposure time."""
    by_exposure: dict[float, list[np.ndarray]] = {}
    for frame, exposure in zip(darks, exposures_ms, strict=True):
        by_exposure.setdefault(float(exposure), []).append(frame)
    return {exposure: average_frames(frames) for exposure, frames in sorted(by_exposure.items())}


def normalised_gain(gains: Sequence[np.ndarray], dark: np.ndarray) -> np.ndarray:
    """Dark-subtracted average flat, divided by its median: 1 where the response is typical."""
    flat = average_frames(gains) - dark
    median = np.median(flat)
    if not median > 0:
        raise ValueError(f"the dark-subtracted gain has median {median}: the gain frames hold no light")
    return flat / median


def bad_pixel_mask(gain: np.ndarray, low: float, high: float) -> np.ndarray:
    """True where the normalised gain is outside [low, high] or not finite (dead or hot pixels)."""
    return ~np.isfinite(gain) | (gain < low) | (gain > high)


def calibrate(raw: np.ndarray, dark: np.ndarray, gain: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """(raw - dark) / gain, NaN where the pixel is bad."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result = (np.asarray(raw, dtype=np.float64) - dark) / gain
    result[bad] = np.nan
    return result


def central_region(image: np.ndarray) -> np.ndarray:
    """The central half (per side) of an image, as VBI's quality keywords use it."""
    ny, nx = image.shape[-2:]
    return image[..., ny // 4: ny - ny // 4, nx // 4: nx - nx // 4]


def mean_and_rms_contrast(image: np.ndarray) -> tuple[float, float]:
    """Mean and normalised RMS contrast, ignoring bad (NaN) pixels."""
    mean = float(np.nanmean(image))
    return mean, float(np.nanstd(image) / mean) if mean else float("nan")


def percentile_stretch(image: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Scale to 0..255 between two percentiles (bad pixels black), for browse movies."""
    finite = image[np.isfinite(image)]
    lo, hi = (np.percentile(finite, [low, high]) if finite.size else (0.0, 1.0))
    scaled = (np.nan_to_num(image, nan=lo) - lo) / ((hi - lo) or 1.0)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)
