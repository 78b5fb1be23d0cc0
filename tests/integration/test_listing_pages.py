"""Listings page on DynamoDB (moto): every row once, newest first, a page costing the same requests however much
is recorded; a token of another listing is refused."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from pynamodb.connection.base import Connection

from obsflow.reads.catalogue import Catalogue
from obsflow.reads.queries import Queries
from obsflow.reads.store import DynamoReads
from obsflow.runs.domain import Instance, Run

T0 = dt.datetime(2026, 11, 20, 21, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def reads(catalog) -> DynamoReads:
    settings, _ = catalog
    return DynamoReads(settings)


def _runs(reads: DynamoReads, count: int, first: int = 0) -> None:
    for index in range(first, first + count):
        reads.create_run(Run(f"run-{index:05d}", f"ri-{index:05d}", "c1", "pid_1_23", "frame-census", "1.0.0", 0,
                             ["default"], {}, T0 + dt.timedelta(seconds=index),
                             status="SUCCEEDED" if index % 3 else "FAILED"))


def _all_pages(read, **asked) -> list[list[dict]]:
    pages, token = [], None
    while True:
        page = read(**asked, next_token=token)
        pages.append(page.rows)
        token = page.next
        if token is None:
            return pages


def test_every_run_is_listed_once_newest_first_a_page_at_a_time(reads):
    # Given 250 runs
    _runs(reads, 250)
    queries = Queries(reads)
    # When they are listed 100 at a time
    pages = _all_pages(queries.run_page, limit=100)
    # Then three pages hold every run once, newest first, and the last says there is no more
    assert [len(p) for p in pages] == [100, 100, 50]
    ids = [row["run_id"] for page in pages for row in page]
    assert ids == [f"run-{i:05d}" for i in reversed(range(250))]
    # And a status pages through its own index, in start order
    failed = [row["run_id"] for page in _all_pages(queries.run_page, status="FAILED", limit=30) for row in page]
    assert sorted(failed) == [f"run-{i:05d}" for i in range(0, 250, 3)] and len(set(failed)) == len(failed)


def test_a_page_makes_the_same_requests_with_fifty_or_five_hundred_runs_recorded(reads, monkeypatch):
    made: Counter = Counter()
    original = Connection._make_api_call

    def counted(self, operation_name, operation_kwargs):
        made[operation_name] += 1
        return original(self, operation_name, operation_kwargs)

    queries = Queries(reads)
    _runs(reads, 50)
    monkeypatch.setattr(Connection, "_make_api_call", counted)
    # When the first page of 20 is read with 50 runs recorded, then with 500
    queries.run_page(limit=20)
    few = Counter(made)
    monkeypatch.setattr(Connection, "_make_api_call", original)
    _runs(reads, 450, first=50)
    monkeypatch.setattr(Connection, "_make_api_call", counted)
    made.clear()
    page = queries.run_page(limit=20)
    # Then both made one index query and one batch read of the page
    assert made == few == Counter({"Query": 1, "BatchGetItem": 1})
    assert page.rows[0]["run_id"] == "run-00499"


def test_a_token_of_another_listing_or_a_made_up_one_is_refused_with_what_to_do(reads):
    # Given a token of the FAILED runs' listing
    _runs(reads, 12)
    queries = Queries(reads)
    token = queries.run_page(status="FAILED", limit=2).next
    # When it is given to the listing of all runs, or a token is made up
    # Then each is refused, saying what --next takes
    for wrong in (token, "bm90IGEgdG9rZW4", "e30"):
        with pytest.raises(ValueError, match="--next takes the token the previous page of this same listing"):
            queries.run_page(limit=2, next_token=wrong)


def test_the_catalogue_pages_by_state_and_by_reference(reads):
    # Given 45 instances of two nights, every third one WAITING
    for index in range(45):
        reads.create_instance(Instance(
            f"ri-{index:05d}", "c1", "pid_1_23", "frame-census", "1.0.0", "2026-11-20", T0 + dt.timedelta(seconds=index),
            reference=f"2026-11-2{index % 2}/pid_1_23", state="WAITING" if index % 3 == 0 else "NEVER_EXECUTED"))
    catalogue = Catalogue(reads)
    # When each listing is read 10 at a time
    every = [r["instance_id"] for p in _all_pages(catalogue.instance_page, limit=10) for r in p]
    waiting = [r["instance_id"] for p in _all_pages(catalogue.instance_page, state="WAITING", limit=10) for r in p]
    night = [r["instance_id"] for p in _all_pages(catalogue.instance_page, reference="2026-11-21/pid_1_23",
                                                   state="WAITING", limit=4) for r in p]
    # Then each holds what it asks, once, newest first
    assert every == [f"ri-{i:05d}" for i in reversed(range(45))]
    assert waiting == [f"ri-{i:05d}" for i in reversed(range(0, 45, 3))]
    assert night == [f"ri-{i:05d}" for i in reversed(range(45)) if i % 2 == 1 and i % 3 == 0]


def test_the_monitor_overview_reads_the_same_with_sixty_or_six_hundred_runs_recorded(catalog, reads,
                                                                                            monkeypatch):
    from obsflow.monitor.reads import StageReads

    settings, _ = catalog
    made: Counter = Counter()
    original = Connection._make_api_call

    def counted(self, operation_name, operation_kwargs):
        answer = original(self, operation_name, operation_kwargs)
        tables = [operation_kwargs["TableName"]] if "TableName" in operation_kwargs else \
            list(operation_kwargs.get("RequestItems", {}))
        for table in tables:  # what each request read, in items: a listing of everything would grow with them
            read = answer.get("Items") or answer.get("Responses", {}).get(table) or []
            made[operation_name, table] += 1 + len(read)
        return answer

    def overview_requests() -> Counter:
        monkeypatch.setattr(Connection, "_make_api_call", counted)
        made.clear()
        StageReads(settings).overview()
        monkeypatch.setattr(Connection, "_make_api_call", original)
        return Counter(made)

    # Given 60 ended runs and their instances, then 540 more
    _runs(reads, 60)
    few = overview_requests()
    _runs(reads, 540, first=60)
    many = overview_requests()
    # Then the overview made the same requests, reading as many items, of every table (its newest page of each kind)
    assert many == few and sum(few.values()) > 0
