"""How well a master calibration fits the science it calibrates (ESO's association quality): the time between
them and whether their setups match (exposure time, filter, camera), from the frames' headers as ingest read them.

The score is the fraction of the setup that matches (of what both sides say) times 1 / (1 + hours / 24): 1.0 for
a calibration of the same setup taken at the same time, 0.5 for one of the same setup a day away.
"""

from __future__ import annotations

import datetime as dt
import statistics

from obsflow.runs.domain import FrameRef

SETUP = ("exposure_ms", "filter", "camera")
DAY_HOURS = 24.0


def _mean_time(frames: list[FrameRef]) -> dt.datetime | None:
    times = []
    for frame in frames:
        try:
            when = dt.datetime.fromisoformat(frame.date_obs)
        except (TypeError, ValueError):
            continue
        times.append((when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp())
    return dt.datetime.fromtimestamp(statistics.fmean(times), dt.timezone.utc) if times else None


def _match(key: str, science: set, calibration: list[FrameRef]) -> dict:
    """One setup value: what the science has, what the calibration has, and whether each science value is covered
    (the exposure by a dark of that time; the filter by a gain frame of it; the camera by any frame)."""
    if key == "filter":
        pool = [f for f in calibration if (f.task_type or "").lower() == "gain"] or calibration
    else:
        pool = calibration
    have = {getattr(f, key) for f in pool} - {None}
    if not science or not have:
        return {"science": sorted(science, key=str), "calibration": sorted(have, key=str), "match": None}
    return {"science": sorted(science, key=str), "calibration": sorted(have, key=str), "match": science <= have}


def association_score(science: list[FrameRef], calibration: list[FrameRef]) -> dict:
    """The association of science frames with a calibration's frames: hours between their mean times, each setup
    value compared, the fraction matched and the score (``None`` where the frames do not say)."""
    start, cal = _mean_time(science), _mean_time(calibration)
    hours = round(abs((start - cal).total_seconds()) / 3600, 2) if start and cal else None
    setup = {key: _match(key, {getattr(f, key) for f in science} - {None}, calibration) for key in SETUP}
    known = [entry["match"] for entry in setup.values() if entry["match"] is not None]
    setup_match = round(sum(known) / len(known), 3) if known else None
    score = (round((setup_match if setup_match is not None else 1.0) / (1 + hours / DAY_HOURS), 3)
             if hours is not None else None)
    return {"hours": hours, "setup": setup, "setup_match": setup_match, "score": score}


def describe(association: dict | None) -> str:
    """One line: ``score 0.98: 0.33 h apart, setup 3/3 (exposure_ms, filter, camera)``."""
    if not association:
        return "no association recorded"
    setup = [(key, association.get("setup", {}).get(key) or {}) for key in SETUP]  # stored JSON may sort its keys
    matched = [k for k, v in setup if v.get("match")]
    differ = [f"{k} {v['science']} vs {v['calibration']}" for k, v in setup if v.get("match") is False]
    known = [k for k, v in setup if v.get("match") is not None]
    hours = association.get("hours")
    return (f"score {association.get('score')}: " + (f"{hours:g} h apart" if hours is not None else "time unknown")
            + f", setup {len(matched)}/{len(known)} matched" + (f" ({', '.join(matched)})" if matched else "")
            + (f"; differs: {'; '.join(differ)}" if differ else ""))
