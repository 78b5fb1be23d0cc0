"""The local stack under a sender as fast as it can go: uploads wait for counting rather than the queue growing
(moto_patches.notifications), and every frame is still counted once."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest


from obsflow import tables
from obsflow.local.moto_patches import notifications
from obsflow.local.stack import LocalStack
from obsflow.services import run_service
from obsflow.simulate import many_frames
from obsflow.tables import candidates, observing_programs

pytestmark = pytest.mark.e2e
PROPOSAL = "pid_fast"
THREADS = 8


def test_a_sender_faster_than_counting_waits_for_the_queue_and_every_frame_is_counted_once(monkeypatch):
    # However busy the machine, no wait ends for a stall or its time limit; and what each answer saw is kept
    monkeypatch.setattr(notifications, "STALLED_S", 600.0)
    monkeypatch.setattr(notifications, "MOST_HELD_S", 600.0)
    waiting_at_answers: list[int] = []
    caught_up = notifications._caught_up

    def answered(account: str, region: str, name: str) -> None:
        caught_up(account, region, name)
        waiting_at_answers.append(notifications.waiting(account, region, name))

    monkeypatch.setattr(notifications, "_caught_up", answered)
    frames = many_frames("fast_observe", "observe", 240, proposal_id=PROPOSAL)
    manifest = {"manifest_id": "m_fast", "observing_programs": [{"op_id": "fast_observe", "expected_frames": 240}]}
    candidate = {"candidate_id": "c_fast", "proposal_id": PROPOSAL, "instrument": "VBI",
                 "observe_op": "fast_observe", "calibration_ops": []}
    # Given the local stack, processing paused so that only ingest runs
    with LocalStack(port=0, stage="fast", log_level="ERROR") as stack:
        tables.bind(stack.settings)
        run_service(stack.settings).pause()
        bound = stack.ingest_concurrency * stack.poller.batch_size
        session = boto3.Session(region_name=stack.settings.region)
        s3 = session.client("s3", endpoint_url=stack.endpoint_url)
        bucket = stack.settings.ingest_bucket_name
        for key, document in (("candidates/c_fast.json", candidate), ("manifests/m_fast.json", manifest)):
            s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())

        # When 8 threads upload 240 frames as fast as each is answered
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda frame: s3.put_object(Bucket=bucket, Key=frame[0], Body=frame[1]), frames))
        deadline = time.monotonic() + 120
        while (item := candidates.get("c_fast")) is None or item.status == "WAITING":
            assert time.monotonic() < deadline, "the candidate did not become READY within 2 minutes"
            time.sleep(0.1)
        # Then each upload was answered with at most a batch per ingest invocation waiting (and the messages the
        # other senders' uploads added meanwhile): the queue never grew with the upload
        assert len(waiting_at_answers) == 2 + 240
        assert max(waiting_at_answers) <= bound + THREADS, waiting_at_answers
        # And every frame was counted once, and the candidate was made READY (HELD after, once a submitter pass
        # finds no recipe for it)
        assert observing_programs.get_many(["fast_observe"])["fast_observe"].received == 240
        assert item.ready_reason == "complete" and item.status in ("READY", "HELD")
    # And a stopped stack holds no one's uploads
    assert not notifications._bounds
