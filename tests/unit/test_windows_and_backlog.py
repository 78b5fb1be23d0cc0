"""Processing windows (the site's sky and clock) and resuming without the backlog, on fakes."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from obsflow.runs.service import NotAllowed
from obsflow.settings import Settings
from obsflow.windows import HORIZON_DEG, Site, Window, sun_altitude
from tests.unit.test_run_service import add_candidate, make_service

HALEAKALA = Site("DKIST, Haleakala", 20.7067, -156.2569, "Pacific/Honolulu")
UTC = dt.timezone.utc


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyWarning")
@pytest.mark.parametrize("site", [HALEAKALA, Site("Paranal", -24.6272, -70.4042, "America/Santiago"),
                                  Site("La Palma", 28.7606, -17.8816, "Atlantic/Canary")])
def test_the_suns_altitude_agrees_with_astropy_within_a_tenth_of_a_degree(site):
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, get_sun
    from astropy.time import Time
    from astropy.utils import iers

    # Given every 37 hours over two years, seen from the site
    times = [dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(hours=37 * i) for i in range(480)]
    location = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=3000 * u.m)
    astropy_times = Time(times)
    # (no network: astropy's installed tables, however old, are enough at this precision)
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None):
        expected = get_sun(astropy_times).transform_to(AltAz(obstime=astropy_times, location=location)).alt.deg
    # When obsflow computes the Sun's altitude
    ours = [sun_altitude(t, site.latitude, site.longitude) for t in times]
    # Then each is within 0.1 degree of astropy's full reduction (under half a minute of a sunset)
    assert max(abs(a - b) for a, b in zip(ours, expected)) < 0.1


def test_the_night_window_opens_at_sunset_and_closes_at_sunrise():
    # Given the night window at Haleakala, at local noon (22:00 UTC) on 2026-12-05
    night, noon = Window("night"), dt.datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    # When it is asked whether it is open, and when that changes
    sunset = night.next_change(noon, HALEAKALA)
    sunrise = night.next_change(sunset, HALEAKALA)
    # Then it is closed at noon, opens at sunset (17:4x HST that day) and closes at sunrise (06:4x HST), each within
    # seconds of the Sun crossing the horizon (checked against astropy above)
    assert not night.is_open(noon, HALEAKALA) and night.is_open(sunset, HALEAKALA)
    for change in (sunset, sunrise):
        assert abs(sun_altitude(change, HALEAKALA.latitude, HALEAKALA.longitude) - HORIZON_DEG) < 0.03
    local = HALEAKALA.zone
    assert sunset.astimezone(local).strftime("%Y-%m-%d %H:%M")[:-1] == "2026-12-05 17:4"
    assert sunrise.astimezone(local).strftime("%Y-%m-%d %H:%M")[:-1] == "2026-12-06 06:4"
    assert not night.is_open(sunrise, HALEAKALA) and Window("day").is_open(sunrise, HALEAKALA)


def test_clock_hours_follow_the_sites_clock_past_midnight_and_through_a_daylight_saving_change():
    # Given 18:00-06:00 in Berlin, which moves its clocks forward at 02:00 on 2026-03-29
    berlin, hours = Site("Berlin", 52.5, 13.4, "Europe/Berlin"), Window("18:00-06:00")
    zone = berlin.zone
    # When it is asked at 05:30 local on that morning and at 12:00
    early = dt.datetime(2026, 3, 29, 5, 30, tzinfo=zone)
    noon = dt.datetime(2026, 3, 29, 12, 0, tzinfo=zone)
    # Then it is open early and closes at 06:00 local (04:00 UTC, summer time), is closed at noon and opens at 18:00
    assert hours.is_open(early, berlin) and hours.next_change(early, berlin) == dt.datetime(2026, 3, 29, 4, 0, tzinfo=UTC)
    assert not hours.is_open(noon, berlin)
    assert hours.next_change(noon, berlin).astimezone(zone).strftime("%H:%M") == "18:00"
    assert Window("any").is_open(noon, berlin) and Window("any").next_change(noon, berlin) is None


@pytest.mark.parametrize("windows,site", [
    ({"vbi-l1": "nights"}, {}), ({"vbi-l1": "25:00-06:00"}, {}), ({"vbi-l1": "06:00-06:00"}, {}),
    ({"../x": "night"}, {}), ({"vbi-l1": "night"}, {"timezone": "Mars/Olympus"}),
    ({}, {"latitude": float("nan")}), ({}, {"latitude": 80.0}), ({}, {"longitude": 200}),
])
def test_a_window_or_site_that_cannot_be_meant_is_refused_with_the_reason(windows, site):
    # Given settings naming an unknown window, equal start and end, a planted key, a zone that is none, a NaN or
    # polar latitude (where a night can last months)
    # When they are read, Then they are refused
    with pytest.raises(ValidationError):
        Settings(windows=windows, site=site)


def test_a_run_outside_its_window_waits_saying_when_it_opens_and_starts_once_it_is_open():
    # Given frame-census runs only 09:00-10:00 Hawaii time, and the submitter runs at noon there (22:00 UTC)
    service = make_service(capacity=4, windows={"frame-census": "09:00-10:00"})
    add_candidate(service, "c1")
    # When the submitter runs
    report = service.submit()
    # Then the run is planned but waits, saying which window and when it opens
    [run_id] = report.planned
    assert not report.started
    reason = report.waiting[run_id]
    assert reason.startswith("outside its processing window: frame-census runs 09:00-10:00 Pacific/Honolulu")
    assert "opens at 2026-11-21 09:00 HST (2026-11-21T19:00Z)" in reason
    assert service.store.runs[run_id].waiting_reason == reason
    # When the submitter runs the next morning at 09:00 Hawaii time
    service.clock.now = dt.datetime(2026, 11, 21, 19, 0, tzinfo=UTC)
    # Then the run starts
    assert service.submit().started == [run_id]


def test_a_resource_class_window_holds_a_run_that_uses_the_class():
    # Given the multi-core class runs only at night, and it is day at the site
    service = make_service(capacity=4, windows={"multi-core": "night"})
    add_candidate(service, "c1")
    # When the submitter runs
    report = service.submit()
    # Then the frame-census run (whose last task is multi-core) waits for the night
    [run_id] = report.planned
    assert report.waiting[run_id].startswith("outside its processing window: multi-core runs at night (sunset to "
                                             "sunrise at DKIST, Haleakala)")


def test_resume_skipping_the_backlog_skips_the_queued_runs_with_one_ticket_and_requeue_brings_them_back():
    # Given submission paused while two candidates became READY and were planned
    service = make_service(capacity=4)
    service.pause("summit network down")
    for name in ("c1", "c2"):
        add_candidate(service, name)
    queued = service.submit().planned
    assert len(queued) == 2
    # When it resumes without the backlog
    skipped = service.resume("ops", skip_backlog="night of 2026-11-20 is not worth processing")
    # Then both runs are SKIPPED with who and why, their instances say so, and nothing starts
    assert sorted(skipped) == sorted(queued)
    for run_id in queued:
        run = service.store.runs[run_id]
        assert run.status == "SKIPPED" and "skipped with the backlog by ops" in run.waiting_reason
        instance = service.store.instances[run.instance_id]
        assert instance.state == "NEVER_EXECUTED" and f"run {run_id} skipped" in instance.state_reason
    assert service.submit().started == []
    # And one ticket lists them and says how to queue them again
    [ticket] = [t for t in service.store.tickets.values() if t.kind == "skipped-backlog"]
    assert all(run_id in ticket.log_excerpt for run_id in queued) and "runs requeue --skipped" in ticket.suggested_action
    # When it is resumed the same way again, it is refused (nothing is a backlog now) and no second ticket is filed
    with pytest.raises(NotAllowed, match="submission is not paused"):
        service.resume("ops", skip_backlog="again")
    assert len([t for t in service.store.tickets.values() if t.kind == "skipped-backlog"]) == 1
    # When an operator queues them again
    assert sorted(service.requeue(None, "ops", "the night was good after all")) == sorted(queued)
    # Then they start, and a second requeue of a run no longer skipped is refused with its status
    assert sorted(service.submit().started) == sorted(queued)
    with pytest.raises(NotAllowed, match="only a SKIPPED run"):
        service.requeue([queued[0]], "ops", "again")


def test_skipping_the_backlog_needs_a_reason_and_leaves_campaign_runs_queued():
    # Given a paused stage with a run of a new observation and a campaign's run queued
    service = make_service(capacity=4)
    service.pause("maintenance")
    add_candidate(service, "c1")
    add_candidate(service, "c2")
    first, second = service.submit().planned
    service.store.runs[second].campaign = "reprocess-2026"
    # When the backlog is skipped without a reason, Then it is refused and nothing moves
    with pytest.raises(ValueError, match="say why"):
        service.resume("ops", skip_backlog=" ")
    assert service.store.runs[first].status == "READY"
    # When it is skipped with one, Then only the observation's run is SKIPPED: the campaign governs its own
    assert service.resume("ops", skip_backlog="backlog too old") == [first]
    assert service.store.runs[second].status == "READY"


def test_the_monitor_shows_skipped_and_cancelled_runs_and_each_window_with_the_runs_waiting_for_it():
    from obsflow.monitor import views

    # Given a cancelled and a skipped run, and a science window closed with one run waiting for it
    at = dt.datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    window = Window("night")
    runs = [{"run_id": f"run-{status.lower()}", "recipe": "vbi-l1", "version": "3.0.0", "status": status,
             "waiting_reason": reason, "created_at": at}
            for status, reason in (("CANCELLED", "cancelled by ops: stuck"), ("SKIPPED", "skipped with the backlog"))]
    windows = [{"key": "vbi-l1", "window": "night", "when": window.describe(HALEAKALA), "open": False,
                "next_change": window.next_change(at, HALEAKALA), "runs_waiting": 1}]
    empty = {"run_counts": {"CANCELLED": 1, "SKIPPED": 1}, "ops": [], "candidates": [], "tickets": [], "datasets": [],
             "instances": [], "campaigns": []}
    # When the overview is drawn
    html = views.overview({**empty, "runs": runs, "windows": windows})
    # Then each run shows its status as a badge with why, and the window says closed, when it opens and who waits
    for status, reason in (("CANCELLED", "cancelled by ops: stuck"), ("SKIPPED", "skipped with the backlog")):
        assert f">{status}</span>" in html and reason in html
    section = html[html.index('id="windows"'):]
    assert "at night (sunset to sunrise at DKIST, Haleakala)" in section and "closed" in section
    assert "2026-12-06 03:4" in section and "<td>1</td>" in section

