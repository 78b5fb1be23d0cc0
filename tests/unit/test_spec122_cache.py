"""The cached SPEC-0122 schema gives the same verdicts as dkist-header-validator itself."""

from __future__ import annotations

import io
import time

import pytest
from astropy.io import fits
from dkist_header_validator import Spec122ValidationException, spec122_validator

from obsflow.ingest.frames import spec122_errors

EDITS = {
    "valid": lambda h: None,
    "missing-proposal": lambda h: h.remove("ID___013"),
    "wrong-type": lambda h: h.set("ID___012", 12),
    "missing-vbi-key": lambda h: h.remove("VBI__002") if "VBI__002" in h else h.remove("VBI__001"),
    "bad-date": lambda h: h.set("DATE-OBS", 17),
    "other-instrument": lambda h: h.set("INSTRUME", "VISP"),
}


@pytest.mark.parametrize("edit", EDITS, ids=list(EDITS))
def test_verdicts_equal_the_validators(small_candidate, edit):
    header = fits.open(io.BytesIO(small_candidate.frame_objects()[0][1]))[0].header.copy()
    EDITS[edit](header)
    try:
        spec122_validator.validate(header, extra=True)
        expected = {}
    except Spec122ValidationException as exc:
        expected = exc.errors
    assert spec122_errors(header) == expected
    assert (edit == "valid") == (expected == {})


def test_concurrent_batches_compile_the_schema_once(small_candidate, monkeypatch):
    """Eight ingest invocations of one stack take their first header together: one compiles, the others wait."""
    from concurrent.futures import ThreadPoolExecutor

    from obsflow.ingest import frames

    # Given no schema compiled yet, and a compilation that is slow enough for the threads to meet in it
    frames._compiled_keys.cache_clear()
    compiled = []
    compile_schema = frames._spec122_schema.__wrapped__

    def slow_compile(instrument, naxis):
        compiled.append((instrument, naxis))
        time.sleep(0.2)
        return compile_schema(instrument, naxis)

    monkeypatch.setattr(frames, "_spec122_schema", slow_compile)
    header = fits.open(io.BytesIO(small_candidate.frame_objects()[0][1]))[0].header.copy()
    # When eight threads validate it at once
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda _: spec122_errors(header), range(8)))
    # Then the schema was compiled once, and every verdict is the same
    assert compiled == [(header["INSTRUME"], header["NAXIS"])]
    assert verdicts == [{}] * 8
    frames._compiled_keys.cache_clear()
