"""A transaction that meets another on an item is tried again; one whose condition fails says so; others raise."""

from __future__ import annotations

import pytest
from pynamodb.connection.base import VerboseClientError
from pynamodb.exceptions import CancellationReason, TransactWriteError

from obsflow.tables import base
from obsflow.tables.run_counts import RunCountItem


class Answers:
    """A connection answering TransactWriteItems with the cancellation reasons given, one list per attempt, then
    success."""

    def __init__(self, *cancelled: list[str | None]):
        self.cancelled, self.attempts = list(cancelled), 0

    def transact_write_items(self, **items):
        self.attempts += 1
        if not self.cancelled:
            return {}
        reasons = [CancellationReason(code) if code else None for code in self.cancelled.pop(0)]
        raise TransactWriteError("cancelled", cause=VerboseClientError(
            {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}}, "TransactWriteItems",
            cancellation_reasons=reasons))


def _one_count(transaction) -> None:
    transaction.update(RunCountItem("RUNS", "2026-12-06T17 READY"), actions=[RunCountItem.runs.add(1)])


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch):
    monkeypatch.setattr(base, "CONFLICT_PAUSE_S", 0)


def test_a_transaction_that_met_another_is_tried_again_until_it_is_made():
    # Given a transaction cancelled twice because another was writing one of its items
    connection = Answers(["TransactionConflict"], [None, "TransactionConflict"])
    # When it is made
    # Then it is made on the third attempt
    assert base.transact_if(connection, _one_count) is True and connection.attempts == 3


def test_a_transaction_whose_condition_failed_is_not_made_and_not_tried_again():
    connection = Answers(["ConditionalCheckFailed", None])
    assert base.transact_if(connection, _one_count) is False and connection.attempts == 1


def test_a_transaction_that_keeps_meeting_others_or_fails_otherwise_raises_for_the_caller_to_retry():
    # Given a transaction that meets another at every attempt
    connection = Answers(*[["TransactionConflict"]] * base.TRANSACTION_ATTEMPTS)
    # Then it raises after the last attempt
    with pytest.raises(TransactWriteError):
        base.transact_if(connection, _one_count)
    assert connection.attempts == base.TRANSACTION_ATTEMPTS
    # And one refused for another reason (the items' throughput) raises at once
    connection = Answers(["ThrottlingError"])
    with pytest.raises(TransactWriteError):
        base.transact_if(connection, _one_count)
    assert connection.attempts == 1
