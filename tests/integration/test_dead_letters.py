"""The ingest dead-letter queue from the CLI: what its messages name, and a redrive that ingests them once."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

from click.testing import CliRunner

from obsflow.cli import main
from obsflow.tables import observing_programs


def dead_letter(stack, count: int) -> list[str]:
    """Move ``count`` notifications from the ingest queue to the dead-letter queue, as failed deliveries would."""
    moved = []
    while len(moved) < count:
        for message in stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            records = json.loads(message["Body"]).get("Records", [])
            key = unquote_plus(records[0]["s3"]["object"]["key"]) if records else ""
            if len(moved) == count or not key.startswith("raw/"):
                stack.sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                                    VisibilityTimeout=0)  # not one of ours: leave it
                continue
            stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=message["Body"])
            stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
            moved.append(key)
    return moved


def test_dead_lettered_frames_are_listed_and_a_redrive_ingests_them_once(stack, small_candidate):
    cli = ["--stage", "test"]
    # Given the candidate's frames uploaded, two of whose notifications ended in the dead-letter queue
    [observe] = [op for op in small_candidate.ops if op.task_type == "observe"]
    for key, body in [small_candidate.manifest_object(), *[(k, b) for k, b in small_candidate.frame_objects()
                                                           if k.startswith(f"raw/{observe.op_id}/")]]:
        stack.put(key, body)
    dead = dead_letter(stack, 2)
    stack.drain()
    # When the operator lists the dead-letter queue
    listed = CliRunner().invoke(main, [*cli, "dlq", "list", "--json"])
    # Then it names the objects, without consuming the messages
    assert listed.exit_code == 0, listed.output
    assert sorted(k for row in json.loads(listed.output) for k in row["keys"]) == sorted(dead)
    assert len(json.loads(CliRunner().invoke(main, [*cli, "dlq", "list", "--json"]).output)) == 2
    # When they are redriven, twice (a double click), and ingest runs
    first = CliRunner().invoke(main, [*cli, "dlq", "redrive"])
    second = CliRunner().invoke(main, [*cli, "dlq", "redrive"])
    assert "2 message(s) sent back" in first.output and "0 message(s)" in second.output
    stack.drain()
    # Then every observe frame is counted exactly once and the dead-letter queue is empty
    assert int(observing_programs.get_many([observe.op_id])[observe.op_id].received) == len(observe.frames)
    assert "empty" in CliRunner().invoke(main, [*cli, "dlq", "list"]).output
