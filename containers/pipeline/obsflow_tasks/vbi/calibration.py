"""The calibration math: pure numpy functions over arrays (tested against ccdproc)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np


def _means(keyed_frames: Iterable[tuple[object, np.ndarray]]) -> dict:
    """The mean frame of each key, in float64, summed one frame at a time: memory for one frame per key whatever
    their number (a float64 sum of uint16 counts is exact)."""
    sums: dict = {}
    for key, frame in keyed_frames:
        if key in sums:
            np.add(sums[key][0], frame, out=sums[key][0])
            sums[key][1] += 1
        else:
            sums[key] = [np.array(frame, dtype=np.float64), 1]
    return {key: np.divide(total, count, out=total) for key, (total, count) in sums.items()}


def average_frames(frames: Iterable[np.ndarray]) -> np.ndarray:
    """Mean of frames, as float64, one frame held at a time."""
    mean = _means((None, frame) for frame in frames)
    if not mean:
        raise ValueError("no frames to average")
    return mean[None]


def average_darks(darks: Iterable[tuple[np.ndarray, float]]) -> dict[float, np.ndarray]:
    """One average dark per exposure time, from (frame, exposure in ms) pairs, one frame held at a time."""
    return dict(sorted(_means((float(exposure), frame) for frame, exposure in darks).items()))


def normalised_gain(gains: Iterable[np.ndarray], dark: np.ndarray) -> np.ndarray:
    """Dark-subtracted average flat, divided by its median: 1 where the response is typical."""
    flat = average_frames(gains) - dark
    median = np.median(flat)
    if not median > 0:
        raise ValueError(f"the dark-subtracted gain has median {median}: the gain frames hold no light")
    return flat / median


def bad_pixel_mask(gain: np.ndarray, low: float, high: float) -> np.ndarray:
    """True where the normalised gain is outside [low, high] or not finite (dead or hot pixels)."""
    return ~np.isfinite(gain) | (gain < low) | (gain > high)


def dark_statistics(darks: dict[float, np.ndarray]) -> dict[str, float]:
    """Each master dark's median level and noise (the robust spread, 1.4826 x the median absolute deviation, of
    its pixels), keyed ``dark_median_<exposure>ms`` and ``dark_noise_<exposure>ms``."""
    values = {}
    for exposure, dark in sorted(darks.items()):
        finite = np.asarray(dark, dtype=np.float64)[np.isfinite(dark)]
        median = float(np.median(finite)) if finite.size else float("nan")
        noise = float(1.4826 * np.median(np.abs(finite - median))) if finite.size else float("nan")
        name = f"{exposure:g}".replace(".", "p")
        values[f"dark_median_{name}ms"], values[f"dark_noise_{name}ms"] = median, noise
    return values


def gain_spread(gain: np.ndarray, bad: np.ndarray) -> float:
    """The spread of the normalised gain over its good pixels: the standard deviation (0 for a flat response)."""
    good = np.asarray(gain, dtype=np.float64)[~np.asarray(bad, dtype=bool) & np.isfinite(gain)]
    return float(np.std(good)) if good.size else float("nan")


def bad_pixel_fraction(bad: np.ndarray) -> float:
    """The fraction of pixels the mask calls bad (0..1)."""
    bad = np.asarray(bad, dtype=bool)
    return float(bad.sum() / bad.size) if bad.size else float("nan")


def calibration_quality(darks: dict[float, np.ndarray], gain: np.ndarray, bad: np.ndarray) -> dict[str, float]:
    """A calibration set's QC values: per-exposure dark level and noise, the gain's spread and the bad-pixel
    fraction (the numbers its recipe's gates judge)."""
    return {**dark_statistics(darks), "dark_exposures": float(len(darks)), "gain_spread": gain_spread(gain, bad),
            "bad_pixel_fraction": bad_pixel_fraction(bad)}


class Calibrator:
    """(raw - dark) / gain with bad pixels NaN, for many frames of one exposure time.

    Prepared once per worker: the dark in float32 and the inverse gain with NaN at bad pixels, so a frame
    costs one subtraction and one multiplication into one float32 array, and the bad pixels come out NaN
    with no extra pass. float32 keeps raw counts exactly (integers below 2**24) and the result within
    1e-6 relative of float64, far below the photon noise; averaging darks and gains stays in float64.
    """

    def __init__(self, dark: np.ndarray, gain: np.ndarray, bad: np.ndarray):
        self.dark = np.asarray(dark, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.reciprocal(np.asarray(gain, dtype=np.float32))
        inverse[np.asarray(bad, dtype=bool) | ~np.isfinite(inverse)] = np.nan
        self.inverse_gain = inverse

    def __call__(self, raw: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The calibrated frame in float32, written into ``out`` when given (no other full-frame array)."""
        out = np.subtract(raw, self.dark, out=out, dtype=np.float32, casting="unsafe")
        return np.multiply(out, self.inverse_gain, out=out)


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


def thumbnail(image: np.ndarray, max_size: int = 512, reduce=np.nanmean) -> np.ndarray:
    """The image reduced by whole blocks to at most ``max_size`` pixels a side (``reduce``: how a block becomes
    one pixel, e.g. np.nanmax for a mask), for figures that must not embed a 4k frame."""
    image = np.asarray(image, dtype=np.float32).squeeze()
    factor = max(1, -(-max(image.shape) // max_size))
    if factor == 1:
        return image
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN block stays NaN
        return reduce(blocks, axis=(1, 3))
