"""The simulated summit: headers a VBI frame would carry and a granulation-like scene, all the way to Level 1."""

from __future__ import annotations

import datetime as dt
import io
import re

import numpy as np
import pytest
from astropy.io import fits

from obsflow.simulate import granulation, simulate_op, sun_elevation_azimuth
from obsflow_tasks.vbi.l1_header import Identity, level1_header

FILLER = re.compile(r"[A-Z0-9]{30}")  # dkist-data-simulator's random strings


@pytest.fixture(scope="module")
def observe_frames():
    """Given two simulated observe frames of 64x64, taken at 20:00 UTC (10:00 in Hawaii)"""
    op = simulate_op("op_sim", "observe", 2, proposal_id="pid_1_2", experiment_id="eid_1_2", shape=(64, 64),
                     start=dt.datetime(2026, 11, 20, 20), seed=4)
    return [fits.getheader(io.BytesIO(body)) for _, body in op.frames], [fits.getdata(io.BytesIO(body)) for _, body in op.frames]


def l1(header: fits.Header) -> fits.Header:
    identity = Identity("run-1", "vbi-l1", "2.0.0", "ri-1", "0" * 64, "1" * 64, "ds-1", "p-1", False, "https://example.org")
    return level1_header(header, frame_index=0, n_frames=2, file_name="f.fits", identity=identity,
                         calibration_version="obsflow 0.1.0", central_mean=1.0, central_rms=0.1, fried_parameter=0.1,
                         data_bytes=64 * 64 * 4)


def test_every_keyword_that_reaches_level_1_has_a_plausible_value(observe_frames):
    headers, _ = observe_frames
    # When the first frame's header becomes a Level 1 header
    header = l1(headers[0])
    # Then the wavelength is the G band in nm, the telescope points at the morning Sun, the source is healthy
    assert (header["LINEWAV"], header["WAVEMIN"], header["WAVEMAX"]) == (430.52, 430.27, 430.77)
    assert 30 < header["ELEV_ANG"] < 50 and 90 < header["TAZIMUTH"] < 180
    assert header["DSHEALTH"] == "Good" and header["OBJECT"] == "quietsun"
    # And the exposure times agree, the repeats count (one frame each: a time series), r0 is the AO's in cm, the
    # weather is Haleakala's
    assert header["TEXPOSUR"] == header["XPOSURE"] == 4.0 and header["VBINFRAM"] == header["VBICFRAM"] == 1
    assert (header["DSPSREPS"], header["DSPSNUM"]) == (2, 1)
    assert header["VBIFRIED"] == 10.0 and 600 < header["WS_PRESS"] < 800 and -20 < header["WS_TEMP"] < 25
    assert l1(headers[1])["DSPSNUM"] == 2
    # And nothing left is the simulator's filler: no random strings, no six-digit numbers outside the ids
    ids = {"RRUNID", "RECIPEID", "RINSTID", "IDSOBSID", "IDSCALID", "IDSPARID", "OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z",
           "FILE_ID", "LIGHTLVL", "FRMRATE", "CHIPDIM1", "CHIPDIM2", "BZERO"}
    suspicious = {card.keyword: card.value for card in header.cards if card.keyword not in ids and (
        (isinstance(card.value, str) and FILLER.fullmatch(card.value))
        or (isinstance(card.value, (int, float)) and not isinstance(card.value, bool) and abs(card.value) > 5000))}
    assert suspicious == {}
    assert "HISTORY" not in headers[0] and "COMMENT" not in headers[0]


def test_the_scene_is_granulation_with_a_tenth_rms_contrast_and_drifts(observe_frames):
    # Given a simulated scene
    scene = granulation((256, 256), seed=1)
    # Then it has mean 1 and RMS contrast 0.1, with dark lanes: more pixels above the mean than below
    assert scene.mean() == pytest.approx(1.0) and scene.std() == pytest.approx(0.1)
    assert (scene > 1).mean() > 0.5 and scene.min() < 0.85
    # And the observe frames carry it: frame 2 is frame 1 moved one pixel along x (up to noise)
    _, data = observe_frames
    first, second = (d[0].astype(float) for d in data)
    moved = np.corrcoef(np.roll(first, 1, axis=1)[8:-8, 8:-8].ravel(), second[8:-8, 8:-8].ravel())[0, 1]
    still = np.corrcoef(first[8:-8, 8:-8].ravel(), second[8:-8, 8:-8].ravel())[0, 1]
    assert moved > still + 0.03, (moved, still)


def test_the_sun_rises_in_the_east_and_culminates_near_local_noon():
    # Haleakala is UTC-10: local noon is about 22:20 UTC
    morning, noon, evening = (sun_elevation_azimuth(when) for when in (
        dt.datetime(2026, 11, 20, 17, 20), dt.datetime(2026, 11, 20, 22, 20), dt.datetime(2026, 11, 21, 3, 0)))
    assert morning[0] < 10 and 100 < morning[1] < 130
    assert 45 < noon[0] < 51 and 170 < noon[1] < 190
    assert evening[0] < 10 and 230 < evening[1] < 260
