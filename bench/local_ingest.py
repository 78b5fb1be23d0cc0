"""Local ingest, end to end: frames uploaded from 8 threads to `obsflow local serve`'s stack until every one is
counted and the candidate is READY; one ingest poller (the baseline) against the stack's concurrent pollers.

Prints, per poller count: the upload time, the lag from the last upload until every frame is counted
(target 2 s for 1,000 frames), end-to-end frames/s (first upload to all counted), the READY lag and
whether the counts are exact. Submission is paused: only ingest is measured.

    python bench/local_ingest.py [--frames 1000] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3

from obsflow.local.stack import INGEST_CONCURRENCY, LocalStack
from obsflow.services import run_service
from obsflow.simulate import many_frames
from obsflow.tables import candidates, observing_programs

PROPOSAL = "pid_bench"


def observation(frames: int) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(frames, documents): a candidate of a dark and a gain OP (a tenth of the frames each) and an observe OP."""
    calibration = max(1, frames // 10)
    plan = {"bench_dark": ("dark", calibration), "bench_gain": ("gain", calibration),
            "bench_observe": ("observe", frames - 2 * calibration)}
    objects = [f for seed, (op_id, (task, count)) in enumerate(plan.items())
               for f in many_frames(op_id, task, count, proposal_id=PROPOSAL, seed=seed)]
    manifest = {"manifest_id": "bench_transfer",
                "observing_programs": [{"op_id": op_id, "expected_frames": count} for op_id, (_, count) in plan.items()]}
    candidate = {"candidate_id": "bench_candidate", "proposal_id": PROPOSAL, "instrument": "VBI",
                 "observe_op": "bench_observe", "calibration_ops": ["bench_dark", "bench_gain"]}
    documents = [("candidates/bench_candidate.json", json.dumps(candidate).encode()),
                 ("manifests/bench_transfer.json", json.dumps(manifest).encode())]
    return objects, documents


def measure(pollers: int, frames: list, documents: list, threads: int) -> dict:
    with LocalStack(port=0, stage=f"ingest{pollers}", log_level="ERROR", ingest_concurrency=pollers) as stack:
        run_service(stack.settings).pause()
        s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=stack.settings.region)
        bucket = stack.settings.ingest_bucket_name
        candidate_doc, manifest_doc = documents
        started = time.monotonic()
        s3.put_object(Bucket=bucket, Key=candidate_doc[0], Body=candidate_doc[1])
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda item: s3.put_object(Bucket=bucket, Key=item[0], Body=item[1]), frames))
        s3.put_object(Bucket=bucket, Key=manifest_doc[0], Body=manifest_doc[1])
        uploaded = time.monotonic()
        op_ids = ["bench_dark", "bench_gain", "bench_observe"]
        counted_at = ready_at = None
        while counted_at is None or ready_at is None:
            if time.monotonic() - uploaded > 600:
                raise TimeoutError("ingest did not finish within 10 minutes")
            if counted_at is None and sum(int(op.received or 0) for op in
                                          observing_programs.get_many(op_ids).values()) >= len(frames):
                counted_at = time.monotonic()
            if ready_at is None and (item := candidates.get("bench_candidate")) is not None and item.status != "WAITING":
                ready_at = time.monotonic()
            time.sleep(0.02)
        time.sleep(1.0)  # late duplicates would show now
        received = sum(int(op.received or 0) for op in observing_programs.get_many(op_ids).values())
    return {"upload_s": uploaded - started, "counted_lag_s": counted_at - uploaded,
            "frames_per_s": len(frames) / (counted_at - started), "ready_lag_s": ready_at - uploaded,
            "exact": received == len(frames)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8, help="upload threads")
    args = parser.parse_args()
    os.environ.pop("AWS_ENDPOINT_URL", None)
    frames, documents = observation(args.frames)
    print(f"{len(frames)} frames of 32x32 ({sum(len(b) for _, b in frames) / 1e6:.1f} MB) from {args.threads} "
          f"upload threads; the manifest last")
    results = {pollers: measure(pollers, frames, documents, args.threads) for pollers in (1, INGEST_CONCURRENCY)}
    for pollers, r in results.items():
        label = "baseline: 1 poller" if pollers == 1 else f"{pollers} concurrent pollers (the local stack)"
        print(f"{label:<40} upload {r['upload_s']:5.1f} s, all counted {r['counted_lag_s']:5.2f} s after the last "
              f"upload (target 2 s), {r['frames_per_s']:6.1f} frames/s end to end, READY {r['ready_lag_s']:5.2f} s "
              f"after the last upload, counts exact: {r['exact']}")
    base, local = results[1], results[INGEST_CONCURRENCY]
    print(f"ratio of end-to-end frames/s: {local['frames_per_s'] / base['frames_per_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
