"""Recipe scale benchmark: vbi-l1 on the local stack against a bare in-process script, same frames, same run.

The local stack: a VBI candidate (its darks and gains, then N observe frames of SxS uint16) is uploaded as the
summit sends it; the discovery rules plan vbi-calibration, then vbi-l1. Measured: the vbi-l1 run from its
start to SUCCEEDED (every task a Batch job, every intermediate through S3).

The bare script: the same science on the same frames in one process, in memory: master dark and gain, each
observe frame calibrated, its Level 1 file (tile-compressed float32 with checksums, under the raw header), its
quality values and its movie frame, then the H.264 movie. It leaves out what only the recipe makes (the SPEC-0214
headers, the PDF, the ASDF, the uploads and the catalogue), so the ratio is an upper bound of the recipe's overhead.

Target (issue "Science at scale"): ratio at most 6 at 128 frames of 2048x2048 (measured 41 before that work).

    python bench/recipe_scale.py [--frames 32] [--size 1024]      # the smaller setting
    python bench/recipe_scale.py --frames 128 --size 2048           # the issue's setting (1 GiB of frames)
"""

from __future__ import annotations

import argparse
import io
import time

import boto3
import numpy as np
from astropy.io import fits

from obsflow import tables
from obsflow.local.stack import LocalStack
from obsflow.simulate import simulate_candidate
from obsflow.tables import runs
from obsflow_tasks.vbi import calibration
from obsflow_tasks.vbi.tasks import h264_movie, l1_fits_bytes

CALIBRATION_FRAMES = 4


def bare_script(candidate) -> float:
    """Seconds for the same science, in memory, in this process."""
    started = time.perf_counter()
    by_type: dict[str, list[np.ndarray]] = {}
    headers = []
    for op in candidate.ops:
        for _, body in op.frames:
            with fits.open(io.BytesIO(body)) as hdus:
                by_type.setdefault(op.task_type, []).append(np.array(hdus[0].data).squeeze())
                if op.task_type == "observe":
                    headers.append(hdus[0].header.copy())
    dark = calibration.average_frames(by_type["dark"])
    gain = calibration.normalised_gain(by_type["gain"], dark)
    bad = calibration.bad_pixel_mask(gain, 0.5, 1.5)
    calibrate = calibration.Calibrator(dark, gain, bad)
    movie = []
    for raw, header in zip(by_type["observe"], headers):
        calibrated = calibrate(raw)
        calibration.mean_and_rms_contrast(calibration.central_region(calibrated))
        calibration.mean_and_rms_contrast(calibrated)
        l1_fits_bytes(calibrated[np.newaxis], header)
        movie.append(calibration.percentile_stretch(calibration.thumbnail(calibrated, 512)))
    h264_movie(movie, 512, 6)
    return time.perf_counter() - started


def on_the_local_stack(candidate) -> float:
    """Seconds of the vbi-l1 run, from its start to SUCCEEDED."""
    with LocalStack(port=0, stage="scale", log_level="ERROR", submit_interval_s=0.5) as stack:
        tables.bind(stack.settings)
        s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
        objects = [candidate.candidate_object(), *candidate.frame_objects(), candidate.manifest_object()]
        for key, body in objects:
            s3.put_object(Bucket=stack.settings.ingest_bucket_name, Key=key, Body=body)
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            done = [r for r in runs.all_runs() if r.recipe == "vbi-l1" and r.status in ("SUCCEEDED", "FAILED")]
            if done:
                run = done[0]
                if run.status != "SUCCEEDED":
                    raise SystemExit(f"the vbi-l1 run {run.run_id} failed: {run.error}")
                return (run.finished_at - run.started_at).total_seconds()
            time.sleep(0.5)
        raise SystemExit("no vbi-l1 run finished within an hour")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32, help="observe frames")
    parser.add_argument("--size", type=int, default=1024, help="frame side in pixels")
    args = parser.parse_args()
    candidate = simulate_candidate("scale_0001", n_dark=CALIBRATION_FRAMES, n_gain=CALIBRATION_FRAMES,
                                   n_observe=args.frames, shape=(args.size, args.size), seed=7)
    raw_mib = args.frames * args.size * args.size * 2 / 2**20
    print(f"vbi-l1 on {args.frames} observe frames of {args.size}x{args.size} uint16 ({raw_mib:.0f} MiB), "
          f"{CALIBRATION_FRAMES} darks and {CALIBRATION_FRAMES} gains")
    bare = bare_script(candidate)
    print(f"  bare in-process script:           {bare:7.2f} s")
    stack = on_the_local_stack(candidate)
    print(f"  vbi-l1 run on the local stack:    {stack:7.2f} s")
    print(f"ratio: {stack / bare:.1f} (target <= 6 at 128 frames of 2048x2048)")


if __name__ == "__main__":
    main()
