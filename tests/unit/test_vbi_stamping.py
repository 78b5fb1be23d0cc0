"""Identity stamping (vbi-l1 3.1.0): calibrated frames made once, addressed by their content, and each run's L1
frames stamped from them; the frames task's digest does not depend on the run or its dataset id."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from dkist_header_validator import spec214_validator

from obsflow.recipes.definitions import RECIPES
from obsflow.runs.digests import chunk_digest, inputs_digest, recorded_under, task_digests
from obsflow.simulate import simulate_op
from obsflow_tasks.vbi.l1_header import (Identity, calibrated_header, identity_keywords, l1_file_name, level1_header,
                                         stamped_header, stamped_l1_bytes)
from obsflow_tasks.vbi.tasks import l1_fits_bytes

VBI = next(r for r in RECIPES if r.key == "vbi-l1@3.1.0")
IDENTITY = Identity("run-1", "vbi-l1", "3.1.0", "ri-1", "0" * 64, "1" * 64, "ds-111111111111", "p-1", False,
                    "https://example.org/vbi-l1")
NAME = l1_file_name(IDENTITY.dataset_id, 0)


@pytest.fixture(scope="module")
def calibrated():
    """Given a simulated observe frame of 64x64, calibrated (NaN at a bad pixel), its Level 1 header without
    the run's identity, and its tile-compressed L1 file as the frames task writes it"""
    op = simulate_op("op_stamp", "observe", 1, proposal_id="pid_1_2", experiment_id="eid_1_2", shape=(64, 64),
                     start=dt.datetime(2026, 11, 20, 20), seed=5)
    [(_, body)] = op.frames
    raw_header = fits.getheader(io.BytesIO(body))
    data = fits.getdata(io.BytesIO(body)).astype(np.float32) / 1000
    data[..., 3, 4] = np.nan
    header = calibrated_header(raw_header, frame_index=0, n_frames=1, calibration_version="obsflow 0.1.0",
                               central_mean=1.0, central_rms=0.1, fried_parameter=0.1, data_bytes=data.nbytes)
    return data, header, raw_header


def verified(data: bytes) -> fits.HDUList:
    """The file opened with its checksums verified (astropy warns on one that does not verify: an error here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)
        with fits.open(io.BytesIO(data), checksum=True, disable_image_compression=True) as table:
            table[1].data  # noqa: B018 - reading the table verifies DATASUM
        hdus = fits.open(io.BytesIO(data), checksum=True)
        hdus[1].data  # noqa: B018
    return hdus


def test_a_calibrated_header_names_no_run_and_the_stamp_adds_the_identity_without_changing_it(calibrated):
    _, header, raw = calibrated
    # Then the calibrated header carries none of the identity keywords
    assert not set(identity_keywords(IDENTITY, NAME)) & set(header)
    # When it is stamped
    stamped = stamped_header(header, IDENTITY, NAME)
    # Then the stamped copy has the dataset id, the file name and the provenance; the input header is unchanged
    assert (stamped["DSETID"], stamped["FILENAME"], stamped["WKFLVERS"], stamped["MANPROCD"]) == (
        "ds-111111111111", "VBI_ds-111111111111_0000_L1.fits", "3.1.0", False)
    assert "DSETID" not in header and stamped["CALVERS"] == header["CALVERS"] == "obsflow 0.1.0"
    # And the Level 1 step is the last line of the history
    assert list(stamped["HISTORY"])[-1] == "obsflow vbi-l1: Level 1, run run-1"
    # And the one-step Level 1 header of 3.0.0 is the stamped one, card for card (but for the time it was made)
    whole = level1_header(raw, frame_index=0, n_frames=1, file_name=NAME, identity=IDENTITY,
                          calibration_version="obsflow 0.1.0", central_mean=1.0, central_rms=0.1,
                          fried_parameter=0.1, data_bytes=64 * 64 * 4)
    def cards(h):
        return [(card.keyword, card.value) for card in h.cards if card.keyword != "DATE"]

    assert cards(whole) == cards(stamped)


def test_a_stamped_l1_file_validates_verifies_its_checksums_and_keeps_its_pixels(calibrated):
    data, header, _ = calibrated
    # Given the L1 file of the calibrated frame, lossless
    unstamped = l1_fits_bytes(data, header)
    # When it is stamped with a run's identity
    stamped = stamped_l1_bytes(unstamped, IDENTITY, NAME)
    # Then its checksums verify, the header passes the SPEC-0214 validator and carries the identity
    with verified(stamped) as hdus:
        spec214_validator.validate(hdus, extra=False)
        assert [type(hdu).__name__ for hdu in hdus] == ["PrimaryHDU", "CompImageHDU"]
        assert (hdus[1].header["DSETID"], hdus[1].header["PRODUCT"], hdus[1].header["FILENAME"]) == (
            IDENTITY.dataset_id, "p-1", NAME)
        # And the pixels are bit for bit the calibrated ones (NaN where bad)
        np.testing.assert_array_equal(hdus[1].data, data)
    # And the unstamped file is left as it was
    assert "DSETID" not in fits.getheader(io.BytesIO(unstamped), 1)


def test_stamping_a_lossy_file_keeps_its_quantized_pixels_and_its_recorded_error(calibrated):
    data, header, _ = calibrated
    lossy = l1_fits_bytes(data, header, quantize_level=4)
    with fits.open(io.BytesIO(lossy)) as before:
        pixels = before[1].data.copy()
    # When a lossy L1 file is stamped
    with verified(stamped_l1_bytes(lossy, IDENTITY, NAME)) as hdus:
        # Then its pixels are not compressed again: identical to the unstamped file's
        np.testing.assert_array_equal(hdus[1].data, pixels)
        history = list(hdus[1].header["HISTORY"])
        assert "lossy RICE_1, q=4" in history[-2] and history[-1].endswith("Level 1, run run-1")


def test_two_runs_stamp_the_same_calibrated_file_into_their_own_l1_files(calibrated):
    data, header, _ = calibrated
    unstamped = l1_fits_bytes(data, header)
    other = dataclasses.replace(IDENTITY, run_id="run-2", dataset_id="ds-222222222222")
    # When two runs stamp the same calibrated file
    first = stamped_l1_bytes(unstamped, IDENTITY, NAME)
    second = stamped_l1_bytes(unstamped, other, l1_file_name(other.dataset_id, 0))
    # Then each file names its own dataset and both verify
    with verified(first) as a, verified(second) as b:
        assert (a[1].header["DSETID"], b[1].header["DSETID"]) == ("ds-111111111111", "ds-222222222222")
        assert a[1].header["RRUNID"] != b[1].header["RRUNID"]


INPUTS = {"frames": [{"file_id": f"f{i}", "role": "observe", "bucket": "ingest", "key": f"raw/op/f{i}.fits",
                      "version_id": "v1", "etag": f"e{i}"} for i in range(3)],
          "upstream": [{"role": "calibration", "files": [{"name": "gain.fits", "sha256": "g"}]}]}


def digests(run_id: str, tolerance: float = 0.2, recipe=VBI) -> dict[str, str]:
    configuration = recipe.as_run_configuration(dt.date(2026, 11, 20))
    configuration["parameters"]["light_level_tolerance"] = tolerance
    return task_digests(recipe, configuration, inputs_digest(INPUTS), "0.1.0", run_id)


def test_the_frames_digest_does_not_depend_on_the_run_or_its_dataset_id():
    # Given two runs of vbi-l1 3.1.0 on the same frames and master calibrations (each with its own dataset id)
    first, second = digests("run-1"), digests("run-2")
    # Then parse, frames, quality_metrics and browse_movie have the same digests: a later run reuses them
    assert {t for t in first if first[t] == second[t]} == {"parse", "frames", "quality_metrics", "browse_movie"}
    # And in 3.0.0 the frames task's digest named the run, and so did everything after it
    old = next(r for r in RECIPES if r.key == "vbi-l1@3.0.0")
    a, b = digests("run-1", recipe=old), digests("run-2", recipe=old)
    assert {t for t in a if a[t] == b[t]} == {"parse"}


def test_a_quality_report_change_changes_only_the_quality_tasks_and_the_stamping():
    # When light_level_tolerance changes
    before, after = digests("run-1"), digests("run-2", tolerance=0.1)
    # Then the tasks that re-run are those of the quality report and those that name the run
    assert {t for t in before if before[t] != after[t]} == {"quality_metrics", "quality_report", "stamp",
                                                           "asdf_inventory"}


def test_a_data_parallel_task_is_recorded_under_its_chunks_digests_when_it_runs_in_chunks():
    task_digest = digests("run-1")
    # When frames runs in 3 chunks
    records = recorded_under(VBI, task_digest, {"frames": 3, "stamp": 3})
    # Then its outputs are recorded per chunk, as the task runtime records them; parse under its own digest
    assert records["frames"] == [chunk_digest(task_digest["frames"], i, 3) for i in range(3)]
    assert records["parse"] == [task_digest["parse"]]
    # And a run of one chunk is one job, recorded under the task's digest
    assert recorded_under(VBI, task_digest, {"frames": 1})["frames"] == [task_digest["frames"]]
