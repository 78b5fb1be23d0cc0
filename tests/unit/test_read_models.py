"""The read side on the in-memory fake of its ports: the processing catalogue, provenance queries and the operator's
queries, over a night the run service made (two VBI candidates sharing one master calibration)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from obsflow.embargo import EMBARGOED
from obsflow.monitor import views
from obsflow.errors import NotFound
from obsflow.qc import UNINDEXED, parse_filter
from obsflow.reads.catalogue import Catalogue
from obsflow.reads.provenance import Provenance
from obsflow.reads.queries import Queries
from obsflow.runs.domain import Instance
from obsflow.tables import run_counts
from tests.unit.fakes import FakeReads
from tests.unit.test_catalogue import MASTERS, SHARED, complete, instance_by_recipe
from tests.unit.test_run_service import add_candidate, make_service

UTC = dt.timezone.utc


@pytest.fixture
def night():
    """Given two VBI candidates of one night sharing their calibration OPs: the master calibration made, both
    science datasets made from it, and the night summary's run started over them."""
    service = make_service(capacity=4)
    for name in ("c1", "c2"):
        add_candidate(service, name, recipe=None, calibration=SHARED)
    [calibration_run] = service.submit().started
    masters = complete(service, calibration_run, MASTERS)
    science = {service.store.runs[run_id].candidate_id: complete(service, run_id) for run_id in service.submit().started}
    service.submit()
    return service, masters, science


def one(service, recipe: str) -> Instance:
    [instance] = instance_by_recipe(service, recipe)
    return instance


def science_of(service, candidate_id: str) -> Instance:
    return service.store.instance(service.store.candidates[candidate_id].instance_id)


# -- the catalogue ----------------------------------------------------------------------------
def test_users_of_a_frame_an_instance_and_a_dataset_come_from_the_reverse_index(night):
    service, masters, _ = night
    catalogue = Catalogue(FakeReads(service.store))
    calibration, summary = one(service, "vbi-calibration"), one(service, "vbi-night-summary")
    sciences = sorted(i.instance_id for i in instance_by_recipe(service, "vbi-l1"))
    # When the catalogue is asked who uses a dark frame (through its OP), the calibration instance, its dataset
    # and a science instance
    # Then the calibration uses the frame, both science instances the calibration, and were planned on its dataset
    assert catalogue.users_of("night_dark-f0") == [calibration.instance_id]
    assert catalogue.users_of(calibration.instance_id) == sciences
    assert catalogue.users_of(masters) == sciences
    assert catalogue.users_of(sciences[0]) == [summary.instance_id]
    # And instances are listed by state, reference or input, oldest first, as rows
    rows = catalogue.instance_rows(uses="night_gain")
    assert [(r["instance_id"], r["recipe"], r["state"]) for r in rows] == \
        [(calibration.instance_id, f"vbi-calibration@{calibration.version}", "SUCCEEDED")]
    assert [r["instance_id"] for r in catalogue.instance_rows(state="SUCCEEDED")] == [calibration.instance_id, *sciences]
    assert len(catalogue.instance_rows(reference=calibration.reference)) == 4


def test_the_tree_draws_the_calibration_its_science_and_their_summary_marking_the_candidate_s_instances(night):
    service, masters, science = night
    catalogue = Catalogue(FakeReads(service.store))
    calibration, summary = one(service, "vbi-calibration"), one(service, "vbi-night-summary")
    sciences = {i.instance_id: i for i in instance_by_recipe(service, "vbi-l1")}
    mine = set(service.store.candidates["c1"].instance_ids)  # the calibration, c1's science and the summary

    def drawn(instance: Instance) -> str:
        return (f"{'*' if instance.instance_id in mine else ' '}{instance.instance_id}  vbi-l1@{instance.version}  "
                f"SUCCEEDED  [observe {instance.candidate_id}_obs]  -> {science[instance.candidate_id]}")

    # When the tree around c1 is drawn
    lines = catalogue.tree("c1")
    # Then the calibration is its root with its frames, each science below it (in id order), c1's instances marked,
    # and the summary drawn below the first science and named "drawn above" below the second
    first, second = sorted(sciences)
    assert lines == [
        f"*{calibration.instance_id}  vbi-calibration@{calibration.version}  SUCCEEDED  "
        f"[dark night_dark, gain night_gain]  -> {masters}",
        f"├── {drawn(sciences[first])}",
        f"│   └── *{summary.instance_id}  vbi-night-summary@{summary.version}  {summary.state}",
        f"└── {drawn(sciences[second])}",
        f"    └──  {summary.instance_id}  (drawn above)",
    ]


def test_an_instance_s_detail_has_its_inputs_by_role_its_neighbours_and_its_runs(night):
    service, masters, science = night
    catalogue = Catalogue(FakeReads(service.store))
    calibration, summary, first = one(service, "vbi-calibration"), one(service, "vbi-night-summary"), science_of(service, "c1")
    # When c1's science instance is shown
    detail = catalogue.instance_detail(first.instance_id)
    # Then its inputs are grouped by role, the calibration is upstream, the summary downstream
    assert detail["inputs"]["calibration"] == [f"instance:{calibration.instance_id}"]
    assert detail["inputs"]["observe"] == ["op:c1_obs"]
    assert [r["instance_id"] for r in detail["upstream"]] == [calibration.instance_id]
    assert [r["instance_id"] for r in detail["downstream"]] == [summary.instance_id]
    assert detail["planned_upstream"] == {calibration.instance_id: masters}
    # And its one run succeeded, making the candidate's dataset
    [run] = detail["runs"]
    assert run["status"] == "SUCCEEDED" and run["dataset_id"] == science["c1"]
    # And an unknown instance is named as such
    with pytest.raises(NotFound, match="no recipe instance 'ri-none'"):
        catalogue.instance_detail("ri-none")


def test_calibrations_for_a_candidate_name_the_master_calibration_its_files_and_certification(night):
    service, masters, _ = night
    catalogue = Catalogue(FakeReads(service.store))
    calibration, first = one(service, "vbi-calibration"), science_of(service, "c1")
    # When c1's calibrations are asked
    [needed] = catalogue.calibrations_for("c1")
    # Then the one master calibration its science consumed is listed, with its dataset's files and certification
    assert (needed["for_instance"], needed["instance_id"], needed["dataset_id"]) == \
        (first.instance_id, calibration.instance_id, masters)
    assert needed["calibration_inputs"] == ["dark night_dark", "gain night_gain"]
    assert needed["certification"] == service.store.datasets[masters].certification
    assert sorted(f["name"] for f in needed["files"]) == sorted(name for name, _ in MASTERS)
    assert all(f["key"].startswith(f"s3://{service.store.datasets[masters].bucket}/") for f in needed["files"])
    # And the calibration listing shows it with its file names and no provenance
    [row] = catalogue.calibration_rows()
    assert row["dataset_id"] == masters and "provenance" not in row
    assert sorted(row["files"]) == sorted(name for name, _ in MASTERS)


# -- provenance -------------------------------------------------------------------------------
def test_datasets_using_a_frame_follow_the_catalogue_down_and_filters_intersect(night):
    service, masters, science = night
    provenance = Provenance(FakeReads(service.store))
    # When the datasets made from a dark frame are asked
    # Then the master calibration and both science datasets made from it are named (the downstream closure)
    assert provenance.dataset_ids(uses_frame="night_dark-f0") == {masters, *science.values()}
    # And an observe frame names its own science dataset alone
    assert provenance.dataset_ids(uses_frame="c2_obs-f0") == {science["c2"]}
    # And other filters intersect: by recipe name, by status, by the calibration the runs consumed
    assert provenance.dataset_ids(uses_frame="night_dark-f0", recipe="vbi-l1") == set(science.values())
    assert provenance.dataset_ids(uses_frame="night_dark-f0", status="DEPRECATED") == set()
    assert provenance.dataset_ids(calibration=masters) == set(science.values())
    # And no filter at all is refused
    with pytest.raises(ValueError, match="at least one filter"):
        provenance.dataset_ids()


def test_listings_are_the_datasets_listed_attributes(night):
    service, masters, science = night
    provenance = Provenance(FakeReads(service.store))
    # When datasets are listed by recipe, then by frame and status
    by_recipe = provenance.dataset_rows(recipe="vbi-calibration")
    by_frame = provenance.dataset_rows(uses_frame="night_gain-f0", status="ACTIVE")
    # Then each row has the listed attributes (no files, no provenance), oldest first
    assert [r["dataset_id"] for r in by_recipe] == [masters]
    assert "files" not in by_recipe[0] and "provenance" not in by_recipe[0]
    assert [r["dataset_id"] for r in by_frame] == [masters, *sorted(science.values(), key=lambda d: (
        service.store.datasets[d].created_at, d))]


def test_a_filtered_listing_pages_newest_first_and_its_token_continues_it_alone(night):
    service, masters, science = night
    provenance = Provenance(FakeReads(service.store))
    every = [r["dataset_id"] for r in provenance.dataset_rows(uses_frame="night_gain-f0")]
    # When the datasets made from a frame are listed one at a time
    first = provenance.dataset_page(uses_frame="night_gain-f0", limit=1)
    rows, token = list(first.rows), first.next
    while token:
        page = provenance.dataset_page(uses_frame="night_gain-f0", limit=1, next_token=token)
        rows, token = rows + page.rows, page.next
    # Then every one comes once, newest first
    assert [r["dataset_id"] for r in rows] == list(reversed(every)) and len(every) == 3
    # And the token does not continue another filter's listing
    with pytest.raises(ValueError, match="--next takes the token"):
        provenance.dataset_page(recipe="vbi-l1", limit=1, next_token=first.next)


def test_qc_filters_are_refused_while_older_datasets_are_unindexed_and_for_a_metric_no_dataset_has(night):
    service, masters, science = night
    provenance = Provenance(FakeReads(service.store))
    # Given every dataset's QC values recorded, When a QC filter on an unknown metric is asked, Then it is refused
    with pytest.raises(ValueError, match="no dataset has QC value seeing"):
        provenance.dataset_ids((parse_filter("qc.seeing<1"),))
    assert provenance.dataset_ids((parse_filter("qc.bad_pixel_fraction<0.01"),)) == {masters}
    # Given a dataset catalogued before QC values were recorded
    old = service.store.datasets[science["c1"]]
    service.store.datasets["ds-old"] = dataclasses.replace(old, dataset_id="ds-old", qc=None,
                                                           created_at=old.created_at - dt.timedelta(days=30))
    # When a QC filter is asked, Then it is refused, saying what to run
    with pytest.raises(ValueError, match="reindex-qc") as refused:
        provenance.dataset_ids((parse_filter("qc.bad_pixel_fraction<0.01"),), recipe="vbi-calibration")
    assert str(refused.value) == UNINDEXED


def test_the_frames_a_summary_used_come_through_the_datasets_it_consumed(night):
    service, masters, science = night
    provenance = Provenance(FakeReads(service.store))
    # When the frames c1's science dataset used are asked
    rows = provenance.frames_used_by(science["c1"])
    # Then its own observe frame comes first, then the calibration frames, via the master calibration
    own = [r for r in rows if r["via"] is None]
    assert [r["file_id"] for r in own] == ["c1_obs-f0"] and {r["dataset_id"] for r in own} == {science["c1"]}
    assert sorted(r["file_id"] for r in rows if r["via"] == science["c1"]) == ["night_dark-f0", "night_gain-f0"]
    assert {r["dataset_id"] for r in rows if r["via"]} == {masters}
    with pytest.raises(NotFound, match="no dataset 'ds-none'"):
        provenance.frames_used_by("ds-none")


# -- the operator's queries -----------------------------------------------------------------------
def test_run_rows_and_detail_have_durations_history_and_the_recipe_s_tasks(night):
    service, masters, science = night
    queries = Queries(FakeReads(service.store, service.recipes))
    run = service.store.runs[service.store.datasets[science["c1"]].run_id]
    # When the runs are listed and one is shown (no execution history asked)
    rows = {r["run_id"]: r for r in queries.run_rows()}
    detail = queries.run_detail(run.run_id)
    # Then each row has its history as dicts and its duration; the detail lists the recipe's tasks, pending
    assert [h["status"] for h in rows[run.run_id]["history"]] == [h.status for h in run.history]
    assert rows[run.run_id]["duration_s"] == round((run.finished_at - run.started_at).total_seconds(), 1)
    assert [t["task"] for t in detail["tasks"]] == [t.name for t in service.recipes.get(run.recipe, run.version).tasks]
    assert {t["status"] for t in detail["tasks"]} == {"pending"}
    # And runs are listed by status
    assert {r["run_id"] for r in queries.run_rows("SUCCEEDED")} == \
        {service.store.datasets[d].run_id for d in [*science.values(), masters]}
    with pytest.raises(NotFound, match="no run 'run-none'"):
        queries.run_detail("run-none")


def test_the_overview_counts_each_status_the_night_s_runs_entered_in_the_order_a_run_moves(night):
    service, _, _ = night
    queries = Queries(FakeReads(service.store, service.recipes))
    first = min(run.created_at for run in service.store.runs.values())
    # When the moves since half an hour after the first run was planned are counted, and drawn
    since = first + dt.timedelta(minutes=30)
    entered = queries.runs_entered_since(since)
    html = views.overview({"run_counts": entered, "run_counts_since": run_counts.hour_of(since), "ops": [],
                           "candidates": [], "runs": [], "tickets": [], "datasets": [], "instances": [],
                           "campaigns": []})
    # Then the count starts at that hour: four runs planned and started, three of them ended, in run order
    assert list(entered.items()) == [("READY", 4), ("SUBMITTED", 4), ("RUNNING", 3), ("SUCCEEDED", 3)]
    line = html[html.index('id="run-counts"'):html.index("</p>")]
    assert f"since {first:%Y-%m-%d %H}:00 UTC" in line and ">SUCCEEDED</span> 3" in line
    # And from the next hour on, nothing has moved
    assert queries.runs_entered_since(first + dt.timedelta(hours=1)) == {}


@pytest.mark.parametrize("changes,access", [
    ({"embargo": EMBARGOED, "release_date": "2027-11-20"}, "under embargo until 2027-11-20: private to proposal pid_1_23"),
    ({"embargo": None, "release_date": "2026-11-20", "released_at": dt.datetime(2026, 11, 20, 6, tzinfo=UTC)}, "public since 2026-11-20"),
    ({"embargo": None, "release_date": "2027-11-20", "released_at": dt.datetime(2026, 12, 5, tzinfo=UTC),
      "decisions": [{"decision": "release-early", "by": "ana", "at": "2026-12-05T00:00:00+00:00", "reason": "PI asked",
                     "release_date": "2027-11-20"}]},
     "public since 2026-12-05, released before its release date 2027-11-20 by ana: PI asked"),
])
def test_a_dataset_s_detail_says_who_may_read_it_and_lists_its_product_s_versions(night, changes, access):
    service, masters, science = night
    queries = Queries(FakeReads(service.store, service.recipes))
    # Given c1's science dataset with its release facts (catalogued under embargo; released or not)
    service.store.update_dataset(science["c1"], **changes)
    # When it is shown
    detail = queries.dataset_detail(science["c1"])
    # Then its access is said from those facts, and it lists its input frames, calibrations and versions
    assert detail["access"] == access
    assert detail["input_frames"] == 1 and [c["dataset_id"] for c in detail["calibrations"]] == [masters]
    assert [v["dataset_id"] for v in detail["versions"]] == [science["c1"]]
    assert "provenance" not in detail and detail["files"] == service.store.datasets[science["c1"]].files


def test_window_rows_count_the_queued_runs_waiting_for_each_closed_window():
    # Given frame-census runs only 09:00-10:00 Hawaii time, and one run waits for it at noon there
    service = make_service(capacity=4, windows={"frame-census": "09:00-10:00", "multi-core": "night"})
    add_candidate(service, "c1")
    service.submit()
    queries = Queries(FakeReads(service.store, service.recipes))
    # When the windows are shown at that time
    rows = {r["key"]: r for r in queries.window_rows(service.settings.processing_windows(), service.clock.now)}
    # Then the census window is closed with its one run waiting; the other counts none
    assert rows["frame-census"]["open"] is False and rows["frame-census"]["runs_waiting"] == 1
    assert rows["multi-core"]["runs_waiting"] == 0
    # And while the census window is open (09:30 there), no run waits for it: the queue is not read
    census_only = make_service(windows={"frame-census": "09:00-10:00"}).settings.processing_windows()
    service.store.runs_with_status = None  # a read would fail
    [row] = queries.window_rows(census_only, service.clock.now.replace(hour=19, minute=30))
    assert row["open"] is True and row["runs_waiting"] == 0
