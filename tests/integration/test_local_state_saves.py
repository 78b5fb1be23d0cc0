"""The local stack's saved state costs what changed: a save after changing one item writes the same bytes however
much else is stored; saves append what changed to a journal, restored exactly as the stack left it; a journal grown
to half its base makes a new base; a save cut short by a crash loses that save alone."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.core.base_backend import BackendDict

from obsflow.local import moto_patches, state as state_module, state_pieces
from obsflow.local.stack import MOTO_CONFIG
from obsflow.local.state import StateDirectory, UnusableState

REGION = "us-east-1"
PASS = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": {"ok": True}, "End": True}}})


@pytest.fixture
def aws():
    moto_patches.apply()
    with mock_aws(config=MOTO_CONFIG):
        yield boto3.Session(region_name=REGION)


def table(ddb, name: str) -> None:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "kind")],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     GlobalSecondaryIndexes=[{"IndexName": "by-kind", "Projection": {"ProjectionType": "ALL"},
                                              "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}]}])


def stored(aws, items: int) -> None:
    """Given a table of ``items`` items and a bucket of as many objects."""
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    table(ddb, "frames")
    s3.create_bucket(Bucket="frames-bucket")
    for n in range(items):
        ddb.put_item(TableName="frames", Item={"pk": {"S": f"frame-{n:05d}"}, "kind": {"S": "dark"}})
        s3.put_object(Bucket="frames-bucket", Key=f"raw/{n:05d}.fits", Body=b"x" * 200)


def observed(aws) -> dict:
    """What a client reads of the stack: every table's items, every object version with its body and tags, the
    queues' messages, parameters, topics and what they sent, log events, executions and their histories."""
    ddb, s3, ssm, logs, sfn = (aws.client(s) for s in ("dynamodb", "s3", "ssm", "logs", "stepfunctions"))
    seen: dict = {"tables": {}, "objects": {}}
    for name in ddb.list_tables()["TableNames"]:
        items = ddb.scan(TableName=name)["Items"]
        seen["tables"][name] = sorted(json.dumps(i, sort_keys=True) for i in items)
        seen["tables"][name + " by kind"] = sorted(json.dumps(i, sort_keys=True) for i in ddb.query(
            TableName=name, IndexName="by-kind", KeyConditionExpression="kind = :k",
            ExpressionAttributeValues={":k": {"S": "dark"}})["Items"])
    for bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        listing = s3.list_object_versions(Bucket=bucket)
        versions = []
        for v in listing.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
            tags = s3.get_object_tagging(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["TagSet"]
            versions.append((v["Key"], v["VersionId"], v["IsLatest"], body, tags))
        markers = [(m["Key"], m["VersionId"], m["IsLatest"]) for m in listing.get("DeleteMarkers", [])]
        seen["objects"][bucket] = (sorted(versions), sorted(markers))
    seen["parameters"] = {p["Name"]: p["Value"] for p in ssm.get_parameters_by_path(Path="/", Recursive=True)["Parameters"]}
    seen["streams"] = {(g["logGroupName"], s["logStreamName"]): [e["message"] for e in logs.get_log_events(
        logGroupName=g["logGroupName"], logStreamName=s["logStreamName"])["events"]]
        for g in logs.describe_log_groups()["logGroups"]
        for s in logs.describe_log_streams(logGroupName=g["logGroupName"])["logStreams"]}
    seen["executions"] = {e["name"]: (e["status"], [h["type"] for h in sfn.get_execution_history(
        executionArn=e["executionArn"])["events"]])
        for m in sfn.list_state_machines()["stateMachines"]
        for e in sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]}
    from moto.sns.models import sns_backends

    seen["notifications"] = {arn: [n[1] for n in topic.sent_notifications]
                             for arn, topic in sns_backends["123456789012"][REGION].topics.items()}
    return seen


def run_execution(aws, machine_arn: str, name: str) -> None:
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine_arn, name=name, input="{}")["executionArn"]
    deadline = time.monotonic() + 30
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def restarted(directory: Path) -> StateDirectory:
    """The stack's process gone, and a new one started from the saved state."""
    BackendDict.reset()
    state = StateDirectory(directory)
    state.restore()
    return state


def test_saves_append_what_changed_and_a_restart_restores_it_all(aws, tmp_path):
    ddb, s3, ssm, logs, sfn, sns = (aws.client(s) for s in ("dynamodb", "s3", "ssm", "logs", "stepfunctions", "sns"))
    stored(aws, 20)
    role = "arn:aws:iam::123456789012:role/local"
    machine = sfn.create_state_machine(name="pass", definition=PASS, roleArn=role)["stateMachineArn"]
    run_execution(aws, machine, "before")
    logs.create_log_group(logGroupName="jobs")
    logs.create_log_stream(logGroupName="jobs", logStreamName="job-1")
    logs.put_log_events(logGroupName="jobs", logStreamName="job-1", logEvents=[{"timestamp": 1, "message": "one"}])
    topic = sns.create_topic(Name="pi")["TopicArn"]
    # Given a state saved whole
    state = StateDirectory(tmp_path / "state")
    state.save()
    assert state.stats().compactions == 1
    # When every kind of thing changes, saved save by save: items put, changed (moving between index partitions),
    # deleted; a table deleted and made again; objects overwritten, deleted and tagged in a versioned bucket; a
    # second execution; log events; a notification; a parameter
    s3.put_bucket_versioning(Bucket="frames-bucket", VersioningConfiguration={"Status": "Enabled"})
    changes = [
        lambda: ddb.put_item(TableName="frames", Item={"pk": {"S": "frame-new"}, "kind": {"S": "dark"}}),
        lambda: ddb.update_item(TableName="frames", Key={"pk": {"S": "frame-00003"}}, UpdateExpression="SET kind = :k",
                                ExpressionAttributeValues={":k": {"S": "gain"}}),
        lambda: ddb.delete_item(TableName="frames", Key={"pk": {"S": "frame-00004"}}),
        lambda: (table(ddb, "scratch"), ddb.put_item(TableName="scratch", Item={"pk": {"S": "a"}, "kind": {"S": "dark"}})),
        lambda: (ddb.delete_table(TableName="scratch"), table(ddb, "scratch"),
                 ddb.put_item(TableName="scratch", Item={"pk": {"S": "b"}, "kind": {"S": "dark"}})),
        lambda: [s3.put_object(Bucket="frames-bucket", Key="raw/00001.fits", Body=b"v2") for _ in range(2)],
        lambda: s3.delete_object(Bucket="frames-bucket", Key="raw/00002.fits"),
        lambda: s3.put_object_tagging(Bucket="frames-bucket", Key="raw/00005.fits",
                                      Tagging={"TagSet": [{"Key": "retention", "Value": "14d"}]}),
        lambda: (s3.create_bucket(Bucket="data-bucket"), s3.put_object(Bucket="data-bucket", Key="d", Body=b"d")),
        lambda: run_execution(aws, machine, "after"),
        lambda: logs.put_log_events(logGroupName="jobs", logStreamName="job-1",
                                    logEvents=[{"timestamp": 2, "message": "two"}]),
        lambda: sns.publish(TopicArn=topic, Message="dataset ready"),
        lambda: ssm.put_parameter(Name="/obsflow/x", Value="paused", Type="String", Overwrite=True),
    ]
    for change in changes:
        change()
        state.save()
    state.save(clean=True)
    before = observed(aws)
    stats = state.stats()
    assert stats.compactions == 1 and stats.saves == len(changes) + 2 and stats.journal_bytes > 0
    # Then a new process restores it all, as a client reads it, and says it stopped cleanly
    BackendDict.reset()
    again = StateDirectory(tmp_path / "state")
    restored = again.restore()
    assert restored.clean
    assert observed(aws) == before
    # And its next save appends to the same journal
    ddb.put_item(TableName="frames", Item={"pk": {"S": "frame-later"}, "kind": {"S": "dark"}})
    again.save()
    assert again.stats().compactions == 0 and again.stats().journal_bytes > stats.journal_bytes
    after = observed(aws)
    restarted(tmp_path / "state")
    assert observed(aws) == after


def saved_after_one_change(aws, directory: Path, items: int) -> state_module.SaveStats:
    stored(aws, items)
    state = StateDirectory(directory)
    state.save()
    aws.client("dynamodb").put_item(TableName="frames", Item={"pk": {"S": "frame-00001"}, "kind": {"S": "gain"}})
    aws.client("s3").put_object(Bucket="frames-bucket", Key="raw/00001.fits", Body=b"y" * 200)
    state.save()
    return state.stats()


def test_a_save_after_one_change_writes_the_same_bytes_however_much_else_is_stored(tmp_path):
    moto_patches.apply()
    # Given a table and a bucket of 50 items each, and another of 2,000, each saved whole
    # When one item and one object change, and the state is saved
    with mock_aws():
        small = saved_after_one_change(boto3.Session(region_name=REGION), tmp_path / "small", 50)
    with mock_aws():
        large = saved_after_one_change(boto3.Session(region_name=REGION), tmp_path / "large", 2000)
    # Then both saves appended the same bytes (the item, the object and a commit), though one state is 40 times
    # the other
    assert large.base_bytes > 20 * small.base_bytes
    assert not small.last_save_compacted and not large.last_save_compacted
    assert large.last_save_bytes == small.last_save_bytes < 4_000


def test_a_journal_grown_to_half_its_base_makes_a_new_base(aws, tmp_path, monkeypatch):
    monkeypatch.setattr(state_module, "COMPACT_AT_LEAST", 0)
    stored(aws, 40)
    s3 = aws.client("s3")
    state = StateDirectory(tmp_path / "state")
    state.save()
    base = state.stats().base_bytes
    # When objects are overwritten one save at a time, until the journal holds half the base
    rewritten = 0
    while state.stats().compactions == 1:
        s3.put_object(Bucket="frames-bucket", Key=f"raw/{rewritten:05d}.fits", Body=b"z" * 200)
        rewritten += 1
        state.save()
        assert state.stats().journal_bytes <= base // 2 + 1_000 or state.stats().last_save_compacted
    # Then the next save wrote a new base, with no journal beside it, and that is what a restart restores
    assert state.stats().last_save_compacted and 15 < rewritten < 40
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["state.pickle"]
    before = observed(aws)
    restarted(tmp_path / "state")
    assert observed(aws) == before


def test_a_save_cut_short_by_a_crash_loses_that_save_alone(aws, tmp_path):
    ddb = aws.client("dynamodb")
    stored(aws, 10)
    state = StateDirectory(tmp_path / "state")
    state.save()
    ddb.put_item(TableName="frames", Item={"pk": {"S": "kept"}, "kind": {"S": "dark"}})
    state.save()
    kept = observed(aws)
    aws.client("s3").put_object(Bucket="frames-bucket", Key="lost", Body=b"l" * 5_000)
    state.save()
    # Given a crash as the last save was being written: its end never reached the disk
    journal = tmp_path / "state" / "state.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-20])
    # When the stack starts again
    again = restarted(tmp_path / "state")
    # Then it has everything saved before that save
    assert observed(aws) == kept
    # And its next save replaces the part written (nothing of it left after), so that a restart has that save too
    ddb.put_item(TableName="frames", Item={"pk": {"S": "later"}, "kind": {"S": "dark"}})
    again.save()
    assert journal.stat().st_size == again.stats().journal_bytes < len(whole)
    later = observed(aws)
    restarted(tmp_path / "state")
    assert observed(aws) == later


def test_a_journal_left_by_a_crash_during_a_new_base_is_not_applied_to_it(aws, tmp_path, monkeypatch):
    ddb = aws.client("dynamodb")
    stored(aws, 10)
    state = StateDirectory(tmp_path / "state")
    state.save()
    ddb.put_item(TableName="frames", Item={"pk": {"S": "old"}, "kind": {"S": "dark"}})
    state.save()
    old_journal = (tmp_path / "state" / "state.journal").read_bytes()
    # Given a new base written (the item deleted since), and a crash before the old journal was removed
    ddb.delete_item(TableName="frames", Key={"pk": {"S": "old"}})
    monkeypatch.setattr(state_module, "COMPACT_AT_LEAST", 0)
    monkeypatch.setattr(state_module, "COMPACT_AT", 0)
    state.save()
    assert state.stats().last_save_compacted
    (tmp_path / "state" / "state.journal").write_bytes(old_journal)
    (tmp_path / "state" / "state.journal").chmod(0o600)
    now = observed(aws)
    # When the stack starts again, then the old journal's item is not brought back
    restarted(tmp_path / "state")
    assert observed(aws) == now


def test_a_journal_damaged_before_its_end_says_in_one_line_what_to_do(aws, tmp_path):
    ddb = aws.client("dynamodb")
    stored(aws, 5)
    state = StateDirectory(tmp_path / "state")
    state.save()
    for n in range(3):
        ddb.put_item(TableName="frames", Item={"pk": {"S": f"more-{n}"}, "kind": {"S": "dark"}})
        state.save()
    # Given a journal with a byte changed in its first save, with whole saves after it
    journal = tmp_path / "state" / "state.journal"
    damaged = bytearray(journal.read_bytes())
    damaged[len(damaged) // 4] ^= 0xFF
    journal.write_bytes(bytes(damaged))
    # When the stack starts on it, then it stops with one line saying what to do, and keeps the file
    with pytest.raises(UnusableState) as refused:
        StateDirectory(tmp_path / "state").prepare()
    message = str(refused.value)
    assert message.startswith(f"state journal {journal} is unreadable") and "\n" not in message
    assert "move it away to start from the state file alone" in message
    assert journal.read_bytes() == bytes(damaged)


def test_a_journal_without_its_state_file_and_an_old_release_s_state_are_refused_in_one_line(tmp_path):
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    # Given a journal whose state file is gone
    (directory / "state.journal").write_bytes(pickle.dumps({"format": state_module.FORMAT, "kind": "journal"}))
    with pytest.raises(UnusableState, match="has no state file beside it"):
        StateDirectory(directory).prepare()
    # Given a state file an earlier release wrote (format 2: one pickle, naming this module's helpers)
    (directory / "state.journal").unlink()
    (directory / "state.pickle").write_bytes(
        b"\x80\x04}(\x8c\x06format\x94K\x02\x8c\x01x\x94cobsflow.local.state\n_defaultdict\n\x94u.")
    (directory / "state.pickle").chmod(0o600)
    with pytest.raises(UnusableState, match=r"written by another obsflow release \(format 2, this one reads 3\)"):
        StateDirectory(directory).prepare()


def test_after_a_save_that_failed_the_next_one_writes_everything(aws, tmp_path, monkeypatch):
    ddb = aws.client("dynamodb")
    stored(aws, 5)
    state = StateDirectory(tmp_path / "state")
    state.save()
    # Given a save that failed as it wrote what changed (a full disk, say)
    ddb.put_item(TableName="frames", Item={"pk": {"S": "changed-then"}, "kind": {"S": "dark"}})
    record = state_module._record

    def disk_full(saved):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_module, "_record", disk_full)
    with pytest.raises(OSError):
        state.save()
    monkeypatch.setattr(state_module, "_record", record)
    # When the stack saves again, then that save writes everything anew, and a restart has the change
    state.save()
    assert state.stats().last_save_compacted and state.stats().compactions == 2
    before = observed(aws)
    restarted(tmp_path / "state")
    assert observed(aws) == before


def test_a_new_base_copies_what_did_not_change_instead_of_pickling_it_again(aws, tmp_path, monkeypatch):
    ddb, s3 = aws.client("dynamodb"), aws.client("s3")
    # Given 2,000 items and objects saved, restored by a new process, and changes saved since: an item changed, one
    # deleted, an object overwritten, a table made and deleted
    stored(aws, 2000)
    StateDirectory(tmp_path / "state").save()
    state = restarted(tmp_path / "state")
    ddb.put_item(TableName="frames", Item={"pk": {"S": "frame-00001"}, "kind": {"S": "gain"}})
    ddb.delete_item(TableName="frames", Key={"pk": {"S": "frame-00002"}})
    s3.put_object(Bucket="frames-bucket", Key="raw/00003.fits", Body=b"v2")
    table(ddb, "scratch")
    ddb.put_item(TableName="scratch", Item={"pk": {"S": "a"}, "kind": {"S": "dark"}})
    state.save()
    ddb.delete_table(TableName="scratch")
    state.save()
    # When one more change makes the next save write a new base
    monkeypatch.setattr(state_module, "COMPACT_AT_LEAST", 0)
    monkeypatch.setattr(state_module, "COMPACT_AT", 0)
    ddb.put_item(TableName="frames", Item={"pk": {"S": "frame-new"}, "kind": {"S": "dark"}})
    pickled, pickles = state_pieces.pickled, []
    monkeypatch.setattr(state_pieces, "pickled", lambda obj, named=None: pickles.append(obj) or pickled(obj, named))
    state.save()
    # Then it pickled only the changed item and the backends' shells (to see whether they changed), not the 4,000
    # pieces that did not change; and nothing else is left beside the new base
    assert state.stats().last_save_compacted and len(pickles) < 40
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["state.pickle"]
    # And a restart restores what the stack held, and so does one after a further new base from what it restored
    before = observed(aws)
    again = restarted(tmp_path / "state")
    assert observed(aws) == before
    s3.delete_object(Bucket="frames-bucket", Key="raw/00004.fits")
    again.save()  # its journal's first save
    ddb.put_item(TableName="frames", Item={"pk": {"S": "frame-00005"}, "kind": {"S": "gain"}})
    again.save()
    assert again.stats().last_save_compacted
    before = observed(aws)
    restarted(tmp_path / "state")
    assert observed(aws) == before
