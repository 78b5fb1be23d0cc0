"""A DKIST day scaled to this machine: the control plane at a day's volume, beside a tenth of it.

DKIST plans for hundreds of thousands of frames a day. Here a day is ``--frames`` frames (100,000 in the full
setting) in ``--candidates`` candidates, each a dark, a gain and an observe OP of SPEC-0122 headers as the summit
writes them with 16x16 pixel arrays (so that the control plane is what is measured, not pixels), sent from
``--threads`` upload threads in a process of their own, to `obsflow local serve`'s stack in another. Processing
is paused while the frames arrive, then resumed. The same day at a tenth of the volume runs first, on a stack and
in a process of its own, and every figure is printed beside it with the ratio: growth with history shows as a
ratio above the volume's own (1.0 for a per-frame figure).

Prints, per volume: ingest frames/s end to end (first upload to the last candidate READY); READY lag p50 and p99
after each candidate's last frame; DynamoDB requests (by operation) and S3 bytes written per frame, from the first
upload to the last candidate planned; the submitter's pass time against the instances and runs pending (paused,
then resumed, with each pass's DynamoDB requests); the time of the first page of `runs list`, `datasets
list`, `catalogue list` and of the monitor's overview, and the requests of three of them (a time that grows while
the requests do not is the one-process stack's, not obsflow's); the time and bytes of a state save after a small
change, and the state's size on disk; the stack's memory.

    python bench/dkist_day.py [--frames 100000] [--candidates 2000] [--threads 8] [--rate FRAMES_PER_S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import subprocess
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROPOSAL = "pid_2_114"
SHAPE = (16, 16)
NIGHT = dt.datetime(2026, 11, 20, 18)


# -- the uploader: a process of its own, so its threads do not take the stack's interpreter -------------------------
def _templates() -> dict[str, bytes]:
    from obsflow.simulate import simulate_op

    return {task: simulate_op(f"template_{task}", task, 1, proposal_id=PROPOSAL, experiment_id=f"eid_{PROPOSAL}",
                              shape=SHAPE, start=NIGHT, seed=seed).frames[0][1]
            for seed, task in enumerate(("dark", "gain", "observe"))}


def _frame(template: bytes, op_id: str, index: int, when: dt.datetime) -> bytes:
    from astropy.io import fits

    with fits.open(io.BytesIO(template)) as hdul:
        header = hdul[0].header
        header["ID___008"], header["ID___002"] = op_id, f"{op_id}_{index:06d}"
        header["DATE-OBS"] = when.isoformat()
        buffer = io.BytesIO()
        hdul.writeto(buffer, checksum=True)
    return buffer.getvalue()


def plan(frames: int, candidates: int) -> list[dict]:
    """Each candidate's OPs and frame counts: a tenth of its frames dark, a tenth gain, the rest observe."""
    per = frames // candidates
    calibration = max(1, per // 10)
    return [{"candidate_id": f"day_c{c:05d}", "ops": {f"day_c{c:05d}_dark": ("dark", calibration),
                                                      f"day_c{c:05d}_gain": ("gain", calibration),
                                                      f"day_c{c:05d}_obs": ("observe", per - 2 * calibration)}}
            for c in range(candidates)]


class Pace:
    """At most ``rate`` frames a second across the threads (0: as fast as they go)."""

    def __init__(self, rate: float):
        self.rate, self.sent, self.started, self._lock = rate, 0, time.monotonic(), threading.Lock()

    def wait(self) -> None:
        if not self.rate:
            return
        with self._lock:
            due = self.started + self.sent / self.rate
            self.sent += 1
        time.sleep(max(0.0, due - time.monotonic()))


def upload(endpoint: str, bucket: str, candidates: list[dict], threads: int, rate: float) -> dict:
    """Each candidate in turn on one of ``threads`` threads: its candidate document and manifest, then its frames,
    at most ``rate`` frames a second in all; when each candidate's last frame was stored (epoch seconds)."""
    import boto3

    from obsflow.aws import botocore_session

    s3 = boto3.Session(botocore_session=botocore_session()).client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing")
    templates, pace = _templates(), Pace(rate)
    last_frame: dict[str, float] = {}

    def send(candidate: dict) -> None:
        cid, ops = candidate["candidate_id"], candidate["ops"]
        op_ids = list(ops)
        s3.put_object(Bucket=bucket, Key=f"candidates/{cid}.json", Body=json.dumps({
            "candidate_id": cid, "proposal_id": PROPOSAL, "instrument": "VBI", "observe_op": op_ids[2],
            "calibration_ops": op_ids[:2]}).encode())
        s3.put_object(Bucket=bucket, Key=f"manifests/m_{cid}.json", Body=json.dumps({
            "manifest_id": f"m_{cid}", "observing_programs": [
                {"op_id": op_id, "expected_frames": count} for op_id, (_, count) in ops.items()]}).encode())
        second = 0
        for op_id, (task, count) in ops.items():
            for index in range(count):
                second += 1
                body = _frame(templates[task], op_id, index, NIGHT + dt.timedelta(seconds=second))
                pace.wait()
                s3.put_object(Bucket=bucket, Key=f"raw/{op_id}/{task}_{index:06d}.fits", Body=body)
        last_frame[cid] = time.time()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, candidates))
    return last_frame


# -- the stack's side: counted requests, the figures ---------------------------------------------------------------
class Counted:
    """DynamoDB requests and S3 bytes written, counted in moto as the stack's functions make them."""

    def __init__(self):
        self.requests: Counter = Counter()
        self.s3_bytes = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        from moto.core.responses import BaseResponse
        from moto.s3.models import S3Backend

        call_action, put_object, counted = BaseResponse.call_action, S3Backend.put_object, self

        def counting_call(response):
            operation = f"{response.service_name}:{response._get_action()}"
            with counted._lock:
                counted.requests[response.service_name] += 1
                counted.requests[operation] += 1
            return call_action(response)

        def counting_put(backend, bucket_name, key_name, value, *args, **kwargs):
            with counted._lock:
                counted.s3_bytes += len(value)
            return put_object(backend, bucket_name, key_name, value, *args, **kwargs)

        BaseResponse.call_action, S3Backend.put_object = counting_call, counting_put

    def made_here(self):
        """From now: a function giving the DynamoDB requests this thread has made since (the stack's own threads
        make others meanwhile)."""
        from pynamodb.connection.base import Connection

        thread, made, original = threading.get_ident(), [0], Connection._make_api_call

        def counting(connection, operation_name, operation_kwargs):
            if threading.get_ident() == thread:
                made[0] += 1
            return original(connection, operation_name, operation_kwargs)

        Connection._make_api_call = counting

        def count() -> int:
            Connection._make_api_call = original
            return made[0]
        return count

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.requests["dynamodb"], self.s3_bytes

    def operations(self) -> Counter:
        """DynamoDB requests so far, by operation."""
        with self._lock:
            return Counter({name.split(":", 1)[1]: count for name, count in self.requests.items()
                            if name.startswith("dynamodb:")})


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


def _wait(condition, timeout_s: float, what: str, poll_s: float = 0.5) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(poll_s)
    return time.time()


def _count(index_query) -> int:
    return sum(1 for _ in index_query)


def measure(frames: int, candidates: int, threads: int, rate: float, counted: Counted, keep: str | None = None) -> dict:
    from obsflow import services
    from obsflow.local.stack import LocalStack
    from obsflow.monitor.reads import StageReads
    from obsflow.statuses import READY, WAITING
    from obsflow.tables import candidates as candidate_table
    from obsflow.tables import recipe_instances, runs

    day = plan(frames, candidates)
    with tempfile.TemporaryDirectory(prefix="obsflow-day-") as state_dir, \
            LocalStack(port=0, stage=f"day{frames}", log_level="ERROR",
                       state_dir=Path(keep or state_dir) / f"day{frames}") as stack:
        settings = stack.settings
        service = services.run_service(settings)
        service.pause("the day arrives first")
        requests_before, bytes_before = counted.snapshot()
        operations_before = counted.operations()
        print(f"  {frames} frames in {candidates} candidates: uploading from {threads} threads"
              + (f" at {rate:g} frames/s" if rate else "") + " ...", flush=True)
        started = time.time()
        uploader = subprocess.run(
            [sys.executable, __file__, "--upload", stack.endpoint_url, settings.ingest_bucket_name, str(threads),
             str(rate)],
            input=json.dumps(day), capture_output=True, text=True, check=True)
        last_frame = json.loads(uploader.stdout)
        uploaded = time.time()

        def none_waiting() -> bool:
            return _count(candidate_table.CandidateItem.by_status.query(WAITING, attributes_to_get=["candidate_id"])) == 0

        all_ready = _wait(none_waiting, 1800, "every candidate READY")
        ready_at = {item.candidate_id: item.ready_at.timestamp() for item in candidate_table.CandidateItem.scan(
            attributes_to_get=["candidate_id", "ready_at"]) if item.ready_at}
        lags = [ready_at[cid] - at for cid, at in last_frame.items() if cid in ready_at]
        print(f"  uploaded in {uploaded - started:.0f} s; every candidate READY {all_ready - uploaded:.1f} s after "
              "the last upload; planning ...", flush=True)

        progress = {"at": time.monotonic()}

        def planned() -> bool:
            unplanned = _count(candidate_table.CandidateItem.by_status.query(READY, attributes_to_get=["candidate_id"]))
            if time.monotonic() - progress["at"] > 60:
                progress["at"] = time.monotonic()
                print(f"    {unplanned} candidates still to plan", flush=True)
            return unplanned == 0 and not recipe_instances.due_for_planning()

        _wait(planned, 3600, "every candidate planned", poll_s=1.0)
        requests_after, bytes_after = counted.snapshot()  # the day's ingest and planning: work per frame
        operations = counted.operations() - operations_before
        print("  DynamoDB requests per frame to the end of planning, by operation: " + ", ".join(
            f"{name} {count / frames:.2f}" for name, count in operations.most_common(6)), flush=True)
        pending_paused = len(runs.with_status(READY))

        def counted_call(call, repeats: int = 5) -> tuple[float, int, object]:
            """Its median time over ``repeats`` calls after a first (the first query of an index on the local stack
            builds that index; one call is one sample of a busy interpreter's time), the DynamoDB requests one call
            made, and what it gave."""
            call()
            made = counted.made_here()
            seconds, result = _timed(call)
            requests = made()
            return statistics.median([seconds, *(_timed(call)[0] for _ in range(repeats - 1))]), requests, result

        paused_pass_s, paused_pass_requests, _ = counted_call(service.submit)
        queries, reads = services.queries(settings), StageReads(settings)
        stack.state.save()  # what the day wrote, saved (a new base, if due) before the listings are timed
        listings = {
            "runs list": counted_call(lambda: queries.run_page()),
            "datasets list": counted_call(lambda: services.provenance(settings).dataset_page()),
            "catalogue list": counted_call(lambda: services.catalogue(settings).instance_page()),
            "monitor overview": counted_call(reads.overview),
        }
        stack.state.save()
        service.pause("the day is planned")  # one small change, then a save: what a periodic save costs
        stack.state.save()
        saved = stack.state.stats()
        memory = _rss_mib()
        service.resume()
        made = counted.made_here()
        resumed_pass_s, report = _timed(service.submit)
        resumed_pass_requests = made()
        return {
            "frames": frames, "candidates": len(day),
            "ingest_frames_per_s": frames / (all_ready - started),
            "ready_lag_p50_s": _percentile(lags, 0.5), "ready_lag_p99_s": _percentile(lags, 0.99),
            "dynamodb_requests_per_frame": (requests_after - requests_before) / frames,
            "s3_bytes_per_frame": (bytes_after - bytes_before) / frames,
            "runs_pending": pending_paused, "paused_pass_s": paused_pass_s, "paused_pass_requests": paused_pass_requests,
            "resumed_pass_s": resumed_pass_s, "resumed_started": len(report.started),
            "resumed_pass_requests": resumed_pass_requests,
            **{f"{name}_s": seconds for name, (seconds, _, _) in listings.items()},
            **{f"{name}_requests": requests for name, (_, requests, _) in listings.items()},
            "state_save_s": saved.last_save_s, "state_save_kib": saved.last_save_bytes / 1024,
            "state_mib": saved.on_disk_bytes / 2**20, "memory_mib": memory,
        }


ROWS = [  # figure, unit, how it should grow with the volume ("work": like the volume; "flat": not at all)
    ("ingest_frames_per_s", "frames/s", "flat"), ("ready_lag_p50_s", "s", "flat"), ("ready_lag_p99_s", "s", "flat"),
    ("dynamodb_requests_per_frame", "requests", "flat"), ("s3_bytes_per_frame", "bytes", "flat"),
    ("runs_pending", "runs", "work"), ("paused_pass_s", "s", "flat"), ("paused_pass_requests", "requests", "flat"),
    ("resumed_pass_s", "s", "flat"),
    ("resumed_pass_requests", "requests", "flat"),
    ("runs list_s", "s", "flat"), ("datasets list_s", "s", "flat"), ("catalogue list_s", "s", "flat"),
    ("monitor overview_s", "s", "flat"), ("runs list_requests", "requests", "flat"),
    ("catalogue list_requests", "requests", "flat"), ("monitor overview_requests", "requests", "flat"), ("state_save_s", "s", "flat"), ("state_save_kib", "KiB", "flat"),
    ("state_mib", "MiB", "work"),
    ("memory_mib", "MiB", "work"),
]


def measured_alone(frames: int, candidates: int, args) -> dict:
    """One volume, on a stack in a process of its own: moto's backends live as long as their process, so a second
    stack in the same one would also hold (and save, and count in its memory) the first one's state."""
    with tempfile.TemporaryDirectory(prefix="obsflow-day-") as directory:
        result = Path(directory) / "figures.json"
        subprocess.run([sys.executable, "-u", __file__, "--frames", str(frames), "--candidates", str(candidates),
                        "--threads", str(args.threads), "--rate", str(args.rate), "--alone", str(result),
                        *(["--keep", args.keep] if args.keep else [])], check=True)
        return json.loads(result.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100_000, help="frames of the day (100,000 in the full setting)")
    parser.add_argument("--candidates", type=int, help="candidates of the day (default: one per 50 frames)")
    parser.add_argument("--threads", type=int, default=8, help="upload threads")
    parser.add_argument("--rate", type=float, default=0, help="frames a second the summit sends, in all (default: as "
                        "fast as the threads go); a day's pace is a few a second, the machine's ingest far more")
    parser.add_argument("--keep", metavar="DIR", help="keep each volume's state in DIR/day<frames>, to look at "
                        "that day again: LocalStack(stage='day<frames>', state_dir=DIR/day<frames>) restores it")
    parser.add_argument("--upload", nargs=4, metavar=("ENDPOINT", "BUCKET", "THREADS", "RATE"), help=argparse.SUPPRESS)
    parser.add_argument("--alone", metavar="RESULT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upload:  # the uploader process: the day's candidates on stdin, when each ended on stdout
        endpoint, bucket, threads, rate = args.upload
        print(json.dumps(upload(endpoint, bucket, json.loads(sys.stdin.read()), int(threads), float(rate))))
        return 0
    os.environ.pop("AWS_ENDPOINT_URL", None)
    candidates = args.candidates or max(1, args.frames // 50)
    if args.alone:  # one volume's process: its figures to RESULT
        counted = Counted()
        counted.install()
        Path(args.alone).write_text(json.dumps(measure(args.frames, candidates, args.threads, args.rate, counted,
                                                         args.keep)))
        return 0
    print(f"A DKIST day on this machine: {args.frames} frames in {candidates} candidates, beside a tenth of it "
          f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    tenth = measured_alone(args.frames // 10, max(1, candidates // 10), args)
    full = measured_alone(args.frames, candidates, args)
    print(f"\n{'figure':<30} {'a tenth':>12} {'the day':>12} {'ratio':>7}  target")
    for name, unit, growth in ROWS:
        ratio = full[name] / tenth[name] if tenth[name] else float("nan")
        target = {"flat": "<= 1.5" if name != "ingest_frames_per_s" else ">= 0.8", "work": "the work's"}[growth]
        print(f"{name.replace('_', ' '):<30} {tenth[name]:>12.3f} {full[name]:>12.3f} {ratio:>7.2f}  {target} ({unit})")
    print(f"load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
