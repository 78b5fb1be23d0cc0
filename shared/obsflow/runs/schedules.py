"""When a recurring campaign occurs: ``every 14d`` (an interval of hours, days or weeks from its last occurrence)
or ``cron 0 3 * * 1`` (a five-field cron expression, in UTC as EventBridge's are)."""

from __future__ import annotations

import datetime as dt
import re

from croniter import croniter

EVERY = re.compile(r"^(\d{1,4})([hdw])$")
UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}
SHORTEST, LONGEST = dt.timedelta(hours=1), dt.timedelta(days=366)


def schedule_of(every: str | None, cron: str | None) -> str | None:
    """The schedule ``--every`` or ``--cron`` gives (at most one of them), checked."""
    if every and cron:
        raise ValueError("a campaign recurs --every INTERVAL or on a --cron expression, not both")
    if every:
        return check_schedule(f"every {every.strip()}")
    return check_schedule(f"cron {' '.join(cron.split())}") if cron else None


def check_schedule(schedule: str) -> str:
    kind, _, expression = schedule.partition(" ")
    if kind == "every":
        match = EVERY.match(expression)
        if not match or not SHORTEST <= int(match.group(1)) * UNITS[match.group(2)] <= LONGEST:
            raise ValueError(f"--every {expression!r}: a number of hours, days or weeks (12h, 14d, 2w), from 1 hour "
                             "to 366 days")
        return schedule
    if kind == "cron" and len(expression.split()) == 5 and croniter.is_valid(expression):
        return schedule
    raise ValueError(f"--cron {expression!r}: five fields, minute hour day-of-month month day-of-week, in UTC "
                     "(0 3 * * 1: Mondays at 03:00)")


def next_occurrence(schedule: str, after: dt.datetime) -> dt.datetime:
    kind, _, expression = check_schedule(schedule).partition(" ")
    if kind == "every":
        match = EVERY.match(expression)
        return after + int(match.group(1)) * UNITS[match.group(2)]
    return croniter(expression, after.astimezone(dt.timezone.utc)).get_next(dt.datetime)
