"""Processing windows: when a recipe's or a resource class's runs may start, at the site's own clock and sky.

A window is one of ``any``, ``night`` (the Sun below the horizon at the site: sunset to sunrise), ``day``, or local
clock hours ``HH:MM-HH:MM`` in the site's time zone (past midnight allowed: ``18:00-06:00``). ESO's automated
science processing runs science jobs only at night; calibrations any time.

The Sun's altitude is the NOAA low-precision solar position (within 0.1 degrees, which moves a sunset by under a
minute): the submitter asks each pass, and astropy's full reduction takes longer than the pass itself.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

HORIZON_DEG = -0.833  # sunrise and sunset: the Sun's upper limb on the horizon, with refraction
KINDS = ("any", "night", "day")
CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")  # whole strings only
STEP = dt.timedelta(minutes=10)  # shorter than any night or day anywhere obsflow's sites are (below the polar circles)
HORIZON = dt.timedelta(hours=48)  # how far ahead a window's next change is looked for
PRECISION = dt.timedelta(seconds=5)


def closed_reason_prefix(key: str) -> str:
    """How a queued run's waiting reason begins while the window of ``key`` is closed."""
    return f"outside its processing window: {key} runs "


@dataclass(frozen=True)
class Site:
    name: str
    latitude: float  # degrees north
    longitude: float  # degrees east
    timezone: str  # IANA

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def sun_altitude(at: dt.datetime, latitude: float, longitude: float) -> float:
    """The Sun's geometric altitude in degrees at ``at`` (timezone-aware) seen from the site."""
    days = at.timestamp() / 86400.0 + 2440587.5 - 2451545.0  # since J2000.0
    mean_longitude = math.radians((280.460 + 0.9856474 * days) % 360)
    anomaly = math.radians((357.528 + 0.9856003 * days) % 360)
    ecliptic_longitude = mean_longitude + math.radians(1.915 * math.sin(anomaly) + 0.020 * math.sin(2 * anomaly))
    obliquity = math.radians(23.439 - 0.0000004 * days)
    right_ascension = math.atan2(math.cos(obliquity) * math.sin(ecliptic_longitude), math.cos(ecliptic_longitude))
    declination = math.asin(math.sin(obliquity) * math.sin(ecliptic_longitude))
    sidereal_hours = (18.697374558 + 24.06570982441908 * days) % 24
    hour_angle = math.radians(sidereal_hours * 15 + longitude) - right_ascension
    lat = math.radians(latitude)
    return math.degrees(math.asin(math.sin(lat) * math.sin(declination)
                                  + math.cos(lat) * math.cos(declination) * math.cos(hour_angle)))


def check_window(spec: str) -> str:
    clock = CLOCK.fullmatch(spec) if isinstance(spec, str) else None
    if spec not in KINDS and not (clock and clock.group(1, 2) != clock.group(3, 4)):
        raise ValueError(f"{spec!r} is no processing window: any, night, day or local hours HH:MM-HH:MM "
                         "(start and end differ)")
    return spec


@dataclass(frozen=True)
class Window:
    spec: str

    def __post_init__(self):
        check_window(self.spec)

    def is_open(self, at: dt.datetime, site: Site) -> bool:
        if self.spec == "any":
            return True
        if self.spec in ("night", "day"):
            dark = sun_altitude(at, site.latitude, site.longitude) < HORIZON_DEG
            return dark == (self.spec == "night")
        start, end = self._minutes()
        local = at.astimezone(site.zone)
        minute = local.hour * 60 + local.minute
        return start <= minute < end if start <= end else (minute >= start or minute < end)

    def next_change(self, at: dt.datetime, site: Site) -> dt.datetime | None:
        """When the window next opens (if closed at ``at``) or closes (if open); None if it never does."""
        if self.spec == "any":
            return None
        if self.spec not in KINDS:
            return self._next_clock_change(at, site)
        now_open = self.is_open(at, site)
        before, after = at, at + STEP
        while self.is_open(after, site) == now_open:
            if after - at > HORIZON:
                return None
            before, after = after, after + STEP
        while after - before > PRECISION:  # the change is between: halve the interval
            middle = before + (after - before) / 2
            before, after = (middle, after) if self.is_open(middle, site) == now_open else (before, middle)
        return after.replace(microsecond=0) + dt.timedelta(seconds=1)

    def describe(self, site: Site) -> str:
        if self.spec == "any":
            return "any time"
        if self.spec == "night":
            return f"at night (sunset to sunrise at {site.name})"
        if self.spec == "day":
            return f"by day (sunrise to sunset at {site.name})"
        return f"{self.spec} {site.timezone}"

    def _next_clock_change(self, at: dt.datetime, site: Site) -> dt.datetime:
        """The next start or end of the hours, at the site's clock (a day that skips the hour skips the change)."""
        local, now_open = at.astimezone(site.zone), self.is_open(at, site)
        for days in range(3):
            day = local.date() + dt.timedelta(days=days)
            for minutes in sorted(self._minutes()):
                moment = dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60), site.zone)
                if moment > local and self.is_open(moment, site) != now_open:
                    return moment.astimezone(dt.timezone.utc)
        raise AssertionError("hours of a day always change within two days")

    def _minutes(self) -> tuple[int, int]:
        h1, m1, h2, m2 = (int(x) for x in CLOCK.fullmatch(self.spec).groups())
        return h1 * 60 + m1, h2 * 60 + m2


@dataclass(frozen=True)
class WindowState:
    key: str  # the recipe name or resource class the window belongs to
    window: Window
    open: bool
    next_change: dt.datetime | None


class Windows:
    """The windows settings declare, by recipe name or resource class, seen from one site."""

    def __init__(self, site: Site, windows: dict[str, str]):
        self.site, self.windows = site, {key: Window(spec) for key, spec in windows.items()}

    def states(self, at: dt.datetime) -> list[WindowState]:
        return [WindowState(key, window, window.is_open(at, self.site), window.next_change(at, self.site))
                for key, window in sorted(self.windows.items())]

    def closed_for(self, keys: list[str], at: dt.datetime) -> str | None:
        """Why a run of these recipe and resource classes may not start at ``at``: the first of its windows that
        is closed, and when it opens; None if every one is open."""
        for key in keys:
            window = self.windows.get(key)
            if window is None or window.is_open(at, self.site):
                continue
            opens = window.next_change(at, self.site)
            when = (f"opens at {opens.astimezone(self.site.zone):%Y-%m-%d %H:%M %Z} ({opens.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%MZ})"
                    if opens else "does not open in the next 48 hours")
            return f"{closed_reason_prefix(key)}{window.describe(self.site)}; {when}"
        return None
