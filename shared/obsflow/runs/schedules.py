"""When a recurring campaign occurs: ``every 14d`` (an interval of hours, days or weeks from its last occurrence)
or ``cron 0 3 * * 1`` (a five-field cron expression, in UTC as EventBridge's are)."""

from __future__ import annotations

import datetime as dt
import re

from croniter import CroniterError, croniter

EVERY = re.compile(r"^([0-9]{1,4})([hdw])$")
UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}
SHORTEST, LONGEST = dt.timedelta(hours=1), dt.timedelta(days=366)
# A cron expression is tried on this many occurrences from a fixed day: each comes within the bounds --every has.
CRON_SAMPLE, CRON_FROM = 64, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


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
    if kind == "cron" and len(expression.split()) == 5 and expression.isascii() and croniter.is_valid(expression):
        _check_cron_spacing(expression)
        return schedule
    raise ValueError(f"--cron {expression!r}: five fields, minute hour day-of-month month day-of-week, in UTC "
                     "(0 3 * * 1: Mondays at 03:00)")


def _check_cron_spacing(expression: str) -> None:
    """A cron expression that never fires (0 0 30 2 *), fires more often than hourly (*/5 * * * *) or less often than
    yearly (0 0 29 2 *) is refused, as --every outside its bounds is."""
    try:
        times = croniter(expression, CRON_FROM)
        moments = [CRON_FROM, *(times.get_next(dt.datetime) for _ in range(CRON_SAMPLE))]
    except (CroniterError, ValueError, OverflowError) as exc:
        raise ValueError(f"--cron {expression!r} never fires (no such day: {exc}); a schedule must occur at least "
                         "once a year") from exc
    gaps = [later - earlier for earlier, later in zip(moments, moments[1:])]
    if min(gaps[1:]) < SHORTEST:
        raise ValueError(f"--cron {expression!r} fires {min(gaps[1:]).total_seconds() / 60:g} minute(s) apart: at most "
                         "once an hour (each occurrence evaluates the whole selection); 0 * * * * is hourly")
    if max(gaps) > LONGEST:
        raise ValueError(f"--cron {expression!r} leaves {max(gaps).days} days between occurrences: at most "
                         f"{LONGEST.days} (once a year)")


def next_occurrence(schedule: str, after: dt.datetime) -> dt.datetime:
    kind, _, expression = check_schedule(schedule).partition(" ")
    if kind == "every":
        match = EVERY.match(expression)
        return after + int(match.group(1)) * UNITS[match.group(2)]
    return croniter(expression, after.astimezone(dt.timezone.utc)).get_next(dt.datetime)
