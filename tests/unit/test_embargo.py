"""Embargo: release dates from proposal documents, products tagged at catalog, the daily release job.

The rules over fakes; the data bucket's policy that reads the tags is in tests/infra/test_embargo.py, the
DynamoDB store's revision rule in tests/integration, the whole path on the local stack in tests/e2e.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from obsflow import embargo
from obsflow.errors import TransientError
from obsflow.embargo import Proposal
from obsflow.runs import layout
from obsflow.runs.releases import ReleaseService
from tests.unit.test_ingest_service import deliver
from tests.unit.test_run_service import add_candidate, make_service

NIGHT = dt.date(2026, 11, 20)


# -- release dates -------------------------------------------------------------------------------
@pytest.mark.parametrize("proposal, expected", [
    (None, dt.date(2027, 11, 20)),  # no document: the default embargo (365 days)
    (Proposal("p", embargo_days=30), dt.date(2026, 12, 20)),
    (Proposal("p", embargo_days=0), NIGHT),
    (Proposal("p", release_date="2030-01-01"), dt.date(2030, 1, 1)),
    (Proposal("p"), dt.date(2027, 11, 20)),  # a document naming neither: the default too
])
def test_a_frames_release_date_follows_its_proposals_document(proposal, expected):
    assert embargo.release_date(proposal, NIGHT, default_days=365) == expected


def test_a_dataset_is_released_at_the_latest_of_its_inputs_release_dates():
    # Given frames of two nights, and an upstream dataset (master calibrations) of another proposal
    basis = embargo.basis("pid_1", "2026-11-20", [("pid_1", "2026-11-20T23:10:00"), ("pid_1", "2026-11-21T01:00:00")],
                          [{"pid_cal": "2026-11-19"}, {"pid_1": "2026-11-18"}])
    assert basis == {"pid_1": "2026-11-21", "pid_cal": "2026-11-19"}
    # Then its release date is the latest: a calibration proposal with a longer embargo holds it back
    proposals = {"pid_1": Proposal("pid_1", embargo_days=30), "pid_cal": Proposal("pid_cal", release_date="2027-06-01")}
    assert embargo.release_of(basis, proposals, 365) == dt.date(2027, 6, 1)
    # And on its release date it is public, the day before it is not
    assert not embargo.is_embargoed(dt.date(2027, 6, 1), dt.date(2027, 6, 1))
    assert embargo.is_embargoed(dt.date(2027, 6, 1), dt.date(2027, 5, 31))


# -- proposal documents at ingest ----------------------------------------------------------------
def proposal_document(**fields) -> bytes:
    return json.dumps({"proposal_id": "pid_1_23", "pi": {"name": "A. Astronomer", "email": "pi@example.org"},
                       **fields}).encode()


def test_a_proposal_document_is_recorded_and_a_bad_one_quarantined_with_its_reason(world):
    _, bucket, store, service = world
    bucket.objects.update({
        "proposals/pid_1_23.json": proposal_document(embargo_days=30),
        "proposals/pid_both.json": proposal_document(proposal_id="pid_both", release_date="2027-01-01",
                                                     embargo_days=30),
        "proposals/pid_x.json": proposal_document(proposal_id="../pid_1_23"),
        "proposals/pid_mail.json": json.dumps({"proposal_id": "pid_mail", "pi": {"name": "B", "email": "nobody"}})
        .encode(),
        "proposals/pid_long.json": proposal_document(proposal_id="pid_long", embargo_days=36500),
    })
    # When they arrive in one batch
    report = deliver(service, sorted(bucket.objects))
    # Then the good one is recorded, and each bad one kept in quarantine saying what is wrong
    assert store.proposals["pid_1_23"][0].embargo_days == 30
    assert report.documents == 3  # with the world's manifest and candidate
    reasons = {q["key"]: q["reason"] for q in store.quarantined}
    assert "not both" in reasons["proposals/pid_both.json"]
    assert "is not an id" in reasons["proposals/pid_x.json"]
    assert "pi.email" in reasons["proposals/pid_mail.json"]
    assert "embargo_days" in reasons["proposals/pid_long.json"]
    assert set(reasons) == {"proposals/pid_both.json", "proposals/pid_x.json", "proposals/pid_mail.json",
                            "proposals/pid_long.json"}


def test_a_proposal_document_under_another_proposals_key_is_quarantined(world):
    _, bucket, store, service = world
    bucket.objects["proposals/pid_9_99.json"] = proposal_document()
    deliver(service, ["proposals/pid_9_99.json"])
    assert [q["code"] for q in store.quarantined] == ["id-mismatch"] and store.proposals == {}


def test_the_proposal_document_written_last_wins_whatever_order_it_arrives_in(world):
    _, bucket, store, service = world
    # Given a revision (written later in S3) delivered before the original, which is delivered late
    bucket.objects["proposals/pid_1_23.json"] = proposal_document(release_date="2027-03-01")
    bucket.modified["proposals/pid_1_23.json"] = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    deliver(service, ["proposals/pid_1_23.json"])
    bucket.objects["proposals/pid_1_23.json"] = proposal_document(embargo_days=365)
    bucket.modified["proposals/pid_1_23.json"] = dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc)
    deliver(service, ["proposals/pid_1_23.json"])
    # Then the revision stays in force
    assert store.proposals["pid_1_23"][0].release_date == dt.date(2027, 3, 1)


# -- catalog and release -------------------------------------------------------------------------
def catalogued(service, candidate_id="c1", date_obs="2026-11-20T21:00:00") -> str:
    """A frame-census run of the candidate, catalogued: its dataset id."""
    add_candidate(service, candidate_id, date_obs=date_obs)
    run_id = service.submit().started[0]
    service.start_run(run_id, "arn")
    service.documents.buckets["work"][layout.task_record_key(run_id, "summary")] = {
        "task": "summary", "code_version": "0.1.0", "libraries": {}, "manual": False, "finished_at": "t",
        "outputs": [{"name": "census.json", "key": f"task-outputs/{run_id}/census.json", "sha256": "ab", "size": 2,
                     "tags": ["product"]}]}
    result = service.catalog(run_id)
    service.finish_run(run_id)
    return result


def test_catalog_tags_every_product_with_its_release_date_and_tells_the_pi():
    # Given proposal pid_1_23's document: public 30 days after observation
    service = make_service()
    service.store.known_proposals["pid_1_23"] = Proposal("pid_1_23", "A. Astronomer", "pi@example.org",
                                                         embargo_days=30)
    # When its run is catalogued
    result = catalogued(service)
    dataset = service.store.datasets[result["dataset_id"]]
    # Then the dataset is under embargo until 30 days after its frames, and so is every object written for it
    assert (dataset.release_date, dataset.embargo) == ("2026-12-20", embargo.EMBARGOED)
    assert dataset.release_basis == {"pid_1_23": "2026-11-20"}
    assert service.store.instances[dataset.instance_id].release_date == "2026-12-20"  # known since planning
    written = {key: tags for (bucket, key), tags in service.documents.tags.items() if bucket == "data"}
    assert set(written) == {dataset.prefix + name for name in ("census.json", "SHA256SUMS", "provenance.json")}
    assert set(map(json.dumps, written.values())) == {json.dumps(
        {"proposal_id": "pid_1_23", "release_date": "2026-12-20", "embargoed": "true"})}
    # And the PI's notification says when, and who can read it until then
    message = json.loads(result["message"])
    assert (message["release_date"], message["embargoed"], message["pi"]["name"]) == ("2026-12-20", True,
                                                                                      "A. Astronomer")
    assert message["access"] == ("Under embargo until 2026-12-20 (public 30 days after observation): until then only "
                                 "principals of proposal pid_1_23 can read it.")


def test_a_proposal_without_a_document_gets_the_configured_default_embargo():
    service = make_service()
    dataset = service.store.datasets[catalogued(service)["dataset_id"]]
    assert dataset.release_date == "2027-11-20"
    assert "no proposal document received: the default embargo applies" in json.loads(
        catalogued(service, "c2")["message"])["access"]


def test_a_dataset_public_at_once_is_tagged_public_and_not_listed_as_embargoed():
    service = make_service()
    service.store.known_proposals["pid_1_23"] = Proposal("pid_1_23", release_date="2026-11-01")
    dataset = service.store.datasets[catalogued(service)["dataset_id"]]
    assert (dataset.release_date, dataset.embargo) == ("2026-11-01", None)
    assert {tags["embargoed"] for (bucket, _), tags in service.documents.tags.items() if bucket == "data"} == {"false"}
    assert ReleaseService(service.store, service.documents, service.settings).release(
        dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)).released == []


def test_the_release_job_opens_due_datasets_once_and_redates_the_others_from_revised_proposals():
    # Given two datasets of pid_1_23 under the default embargo (observed 2026-11-20 and 2026-11-21)
    service = make_service()
    first = catalogued(service, "c1")["dataset_id"]
    second = catalogued(service, "c2", date_obs="2026-11-21T03:00:00")["dataset_id"]
    now = dt.datetime(2026, 11, 21, 12, tzinfo=dt.timezone.utc)
    job = ReleaseService(service.store, service.documents, service.settings, clock=lambda: now)
    # When nothing is due, the job changes nothing
    quiet = job.release(now)
    assert (quiet.released, quiet.redated, quiet.under_embargo, quiet.objects_tagged) == ([], [], 2, 0)
    # When the proposal's document comes, making its data public 1 day after observation
    service.store.known_proposals["pid_1_23"] = Proposal("pid_1_23", embargo_days=1)
    report = job.release(now)
    # Then the dataset due today is released (objects first) and the other re-dated to tomorrow
    assert report.released == [first]
    assert report.redated == [{"dataset_id": second, "was": "2027-11-21", "now": "2026-11-22"}]
    assert service.store.datasets[second].release_date == "2026-11-22"
    assert {service.documents.tags[("data", key)]["release_date"] for (_, key) in service.documents.tags
            if key.startswith(service.store.datasets[second].prefix)} == {"2026-11-22"}
    released = service.store.datasets[first]
    assert (released.embargo, released.released_at, released.release_date) == (None, now, "2026-11-21")
    assert {service.documents.tags[("data", key)]["embargoed"] for (_, key) in service.documents.tags
            if key.startswith(released.prefix)} == {"false"}
    # And a second run the same day releases nothing again
    assert job.release(now).released == []


def test_a_dataset_whose_objects_cannot_be_tagged_stays_private_and_the_others_are_released():
    # Given two datasets due for release, and S3 failing to tag the first one's objects
    service = make_service()
    service.store.known_proposals["pid_1_23"] = Proposal("pid_1_23", embargo_days=400)
    first, second = catalogued(service, "c1")["dataset_id"], catalogued(service, "c2")["dataset_id"]
    service.store.known_proposals["pid_1_23"] = Proposal("pid_1_23", embargo_days=0)
    tag_prefix, failing = service.documents.tag_prefix, service.store.datasets[first].prefix

    def flaky(bucket, prefix, tags):
        if prefix == failing:
            raise TransientError("S3 PutObjectTagging: SlowDown")
        return tag_prefix(bucket, prefix, tags)

    service.documents.tag_prefix = flaky
    job = ReleaseService(service.store, service.documents, service.settings)
    now = dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc)
    # When the release job runs
    report = job.release(now)
    # Then the other is released, and the failing one stays under embargo, named with the error
    assert report.released == [second]
    assert report.failed == [{"dataset_id": first, "error": "S3 PutObjectTagging: SlowDown"}]
    assert service.store.datasets[first].embargo == embargo.EMBARGOED
    # And the next run, with S3 back, releases it
    service.documents.tag_prefix = tag_prefix
    assert job.release(now).released == [first]
