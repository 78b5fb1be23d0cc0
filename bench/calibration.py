"""Calibration benchmark: frames/s of vbi-l1's calibration at 4096x4096, against two baselines in the same run.

  (a) bare numpy in float32: ``(x - dark) * inv_gain``, dark and inverse gain prepared once (the speed limit);
  (b) ccdproc: ``subtract_dark`` then ``flat_correct`` (what a pipeline developer would otherwise write).

Targets (issue "Science at scale"): at least 0.8 of (a), at least 3 times (b), peak memory at most 4 frames.
Peak memory is what one call allocates beyond its inputs (tracemalloc sees numpy's buffers), in float32
frames of 4096x4096 (64 MiB each).

    python bench/calibration.py [--frames 6] [--size 4096]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np
from astropy.io import fits

from obsflow_tasks.vbi import calibration
from obsflow_tasks.vbi.tasks import l1_fits_bytes


def timed(function, frames: list[np.ndarray]) -> float:
    """Median seconds per frame."""
    seconds = []
    for frame in frames:
        started = time.perf_counter()
        function(frame)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def peak_bytes(function, frame: np.ndarray) -> int:
    tracemalloc.start()
    function(frame)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()

    import astropy.units as u
    import ccdproc
    from astropy.nddata import CCDData

    rng = np.random.default_rng(0)
    shape = (args.size, args.size)
    dark = rng.normal(100.0, 3.0, shape)  # float64, as the tasks load the master dark and gain today
    gain = rng.normal(1.0, 0.02, shape)
    bad = gain < 0.94
    frames = [rng.integers(1000, 60000, shape, dtype=np.uint16) for _ in range(args.frames)]
    frame_bytes = args.size * args.size * 4

    dark32, inverse_gain32 = dark.astype(np.float32), (1.0 / gain).astype(np.float32)
    dark_ccd = CCDData(dark, unit=u.adu, meta={"exptime": 4.0})
    flat_ccd = CCDData(gain, unit=u.adu)

    methods = {
        "obsflow calibration.Calibrator": calibration.Calibrator(dark, gain, bad),
        "(a) numpy float32 (x - dark) * inv_gain": lambda x: (x.astype(np.float32) - dark32) * inverse_gain32,
        "(b) ccdproc subtract_dark + flat_correct": lambda x: ccdproc.flat_correct(
            ccdproc.subtract_dark(CCDData(x, unit=u.adu, meta={"exptime": 4.0}), dark_ccd, exposure_time="exptime",
                                  exposure_unit=u.s), flat_ccd),
    }
    print(f"{args.frames} frames of {args.size}x{args.size} uint16, one process")
    rates = {}
    for name, function in methods.items():
        function(frames[0])  # warm up
        seconds = timed(function, frames)
        rates[name] = 1.0 / seconds
        peak = peak_bytes(function, frames[0]) / frame_bytes
        print(f"  {name:<42} {rates[name]:7.2f} frames/s ({seconds * 1000:7.1f} ms/frame), peak {peak:4.1f} frames")
    ours, bare, ccd = rates.values()
    print(f"ratio to (a) numpy float32: {ours / bare:.2f} (target >= 0.8)")
    print(f"ratio to (b) ccdproc:       {ours / ccd:.2f} (target >= 3)")

    # What one worker holds for a frame in vbi-l1's frames task: calibration into its buffer, the frame's quality
    # values, its lossless L1 bytes and its movie frame (the inputs, dark and inverse gain, not counted).
    calibrate, buffer = methods["obsflow calibration.Calibrator"], np.empty(shape, dtype=np.float32)

    def one_pass(x):
        calibrate(x, out=buffer)
        calibration.mean_and_rms_contrast(buffer)
        calibration.mean_and_rms_contrast(calibration.central_region(buffer))
        l1_fits_bytes(buffer[np.newaxis], fits.Header())
        calibration.percentile_stretch(calibration.thumbnail(buffer, 512))

    one_pass(frames[0])
    seconds = timed(one_pass, frames)
    peak = peak_bytes(one_pass, frames[0]) / frame_bytes
    print(f"the frames task's whole pass per frame: {1 / seconds:.2f} frames/s ({seconds * 1000:.0f} ms/frame), "
          f"peak {peak:.1f} frames beyond its buffer (target <= 4)")


if __name__ == "__main__":
    main()
