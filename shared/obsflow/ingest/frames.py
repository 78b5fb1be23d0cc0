"""What a raw frame is, as far as obsflow is concerned: its SPEC-0122 header."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache

from typing import TYPE_CHECKING

import voluptuous as vol

from obsflow.errors import Rejected
from obsflow.ingest.fits_header import IGNORED_KEYWORDS

if TYPE_CHECKING:
    from astropy.io import fits

# astropy and dkist-header-validator load when a header is first validated, not on import: the CLI and
# the read side (queries, stores) use this module's types without paying ~0.4 s for them.

# The keywords obsflow itself relies on, beyond the SPEC-0122 validation.
REQUIRED_KEYWORDS = ("ID___002", "ID___008", "ID___012", "ID___013", "INSTRUME", "DKIST004", "DATE-OBS")
# A Fried parameter outside this range [m] is not a measurement (DKIST: AO lock and 0 < r0 < 0.3).
FRIED_PARAMETER_RANGE = (0.0, 0.3)


@dataclass(frozen=True)
class Frame:
    file_id: str
    op_id: str
    experiment_id: str
    proposal_id: str
    instrument: str
    task_type: str
    date_obs: str
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int
    header_bytes: int
    fried_parameter: float | None
    ao_locked: bool | None
    # The setup, which associating calibrations to science compares: exposure time [ms] (CAM__004), filter
    # (WAVELNTH, nm) and camera (CAM__001)
    exposure_ms: float | None = None
    filter: str | None = None
    camera: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=32)
def _spec122_schema(instrument: str, naxis: int) -> vol.Schema:
    """dkist-header-validator's SPEC-0122 schema, compiled once per (INSTRUME, NAXIS).

    For a raw header the processed SPEC-0122 schema depends only on INSTRUME (which
    instrument table is required) and NAXIS (index expansion); compiling it is ~90% of
    the validator's cost per frame. tests/unit/test_spec122_cache.py checks that the
    verdicts equal the validator's own.
    """
    from astropy.io import fits
    from dkist_header_validator import spec122_validator

    spec = spec122_validator.spec_schema(fits.Header({"INSTRUME": instrument}))
    return spec._create_spec_schema({"INSTRUME": instrument, "NAXIS": naxis}, extra=True)


_COMPILING = threading.Lock()


def _spec122_keys(instrument: str, naxis: int) -> dict[str, tuple[bool, vol.Schema]]:
    """The schema split per keyword: (required?, a schema of that keyword alone).

    SPEC-0122's raw schema is a mapping of independent keyword validators (extra keys
    allowed), so checking each keyword alone gives the verdict of the whole schema.
    """
    with _COMPILING:  # concurrent batches wait for one compilation (about a second) rather than each compiling
        return _compiled_keys(instrument, naxis)


@lru_cache(maxsize=32)
def _compiled_keys(instrument: str, naxis: int) -> dict[str, tuple[bool, vol.Schema]]:
    schema = _spec122_schema(instrument, naxis)
    return {str(marker): (isinstance(marker, vol.Required), vol.Schema({marker: check}, extra=vol.ALLOW_EXTRA))
            for marker, check in schema.schema.items()}


@lru_cache(maxsize=65536)
def _keyword_error(instrument: str, naxis: int, keyword: str, value_type: type, value) -> str | None:
    """Voluptuous' message for this value of this keyword, or None. Frames of an OP repeat most values."""
    _, schema = _spec122_keys(instrument, naxis)[keyword]
    try:
        schema({keyword: value} if value_type is not _Absent else {})
        return None
    except vol.MultipleInvalid as exc:
        return exc.errors[0].msg


class _Absent:
    """Stands for a keyword the header lacks."""


def spec122_errors(values: Mapping) -> dict[str, str]:
    """SPEC-0122 problems by keyword, worded as dkist-header-validator words them; {} if valid.

    ``values``: keyword -> value (a fits.Header or a dict from ``header_values``).
    """
    if not isinstance(values, dict):
        values = {card.keyword: card.value for card in values.cards if card.keyword not in IGNORED_KEYWORDS}
    instrument, naxis = values.get("INSTRUME"), values.get("NAXIS")
    if not isinstance(instrument, str) or not isinstance(naxis, int) or ({"DAAXES", "DEAXES", "DNAXIS", "EXTNAME"} & values.keys()):
        from astropy.io import fits
        from dkist_header_validator import Spec122ValidationException, spec122_validator

        try:  # not a plain raw header: let the validator work it out in full
            spec122_validator.validate(fits.Header(values), extra=True)
            return {}
        except Spec122ValidationException as exc:
            return dict(getattr(exc, "errors", None) or {"<header>": str(exc)})
    errors = {}
    for keyword, (required, _) in _spec122_keys(instrument, naxis).items():
        if keyword in values:
            value = values[keyword]  # FITS card values are scalars, so they key the memo
            message = _keyword_error(instrument, naxis, keyword, type(value), value)
            if message:
                errors[keyword] = f"{message}. Actual value: {value!r} {type(value)}"
        elif required:
            errors[keyword] = f"{_keyword_error(instrument, naxis, keyword, _Absent, None)}. Required keyword not present"
    return errors


def validate_spec122(header: Mapping) -> None:
    """Check the header against SPEC-0122 (dkist-header-validator); extra keys are allowed at ingest."""
    missing = [key for key in REQUIRED_KEYWORDS if key not in header]
    if missing:
        raise Rejected("missing-keywords", f"header lacks required SPEC-0122 keyword(s): {', '.join(missing)}")
    errors = spec122_errors(header)
    if errors:
        raise Rejected("spec122", f"header fails SPEC-0122 validation: {errors}")


def valid_fried_parameter(header: fits.Header) -> float | None:
    """The Fried parameter when it is a measurement: AO locked and a plausible value."""
    r0, locked = header.get("AO___001"), header.get("AO___002")
    if locked is not True or not isinstance(r0, (int, float)):
        return None
    low, high = FRIED_PARAMETER_RANGE
    return float(r0) if low < r0 < high else None


# The header ids that become keys (DynamoDB, S3) and file names.
ID_KEYWORDS = ("ID___002", "ID___008", "ID___012", "ID___013")
MAX_ID_LENGTH = 128


def check_id(keyword: str, value) -> None:
    """An id SPEC-0122 requires must be there (not empty, not blank); one that becomes a key must not climb
    out of it ('/', '..', control characters) and must fit one."""
    text = str(value).strip()
    if not text:
        raise Rejected("spec122", f"{keyword} is empty: SPEC-0122 requires this id; fix the header and re-transfer")
    if "/" in text or ".." in text or not text.isprintable() or len(text) > MAX_ID_LENGTH:
        raise Rejected("bad-id", f"{keyword} {text[:MAX_ID_LENGTH]!r} cannot be an id: at most {MAX_ID_LENGTH} "
                                 "printable characters, without '/' or '..'")


def frame_from_header(
    header: Mapping,
    *,
    op_in_key: str,
    bucket: str,
    key: str,
    version_id: str | None,
    etag: str | None,
    size: int,
    header_bytes: int,
) -> Frame:
    validate_spec122(header)
    for keyword in ID_KEYWORDS:
        check_id(keyword, header[keyword])
    op_id = str(header["ID___008"]).strip()
    if op_id != op_in_key:
        raise Rejected(
            "op-mismatch",
            f"the key places the frame in OP {op_in_key!r} but its header says ID___008 = {op_id!r}; "
            f"upload it under raw/{op_id}/",
        )
    try:
        date_obs = dt.datetime.fromisoformat(str(header["DATE-OBS"])).isoformat()
    except ValueError as exc:
        raise Rejected("bad-date", f"DATE-OBS {header['DATE-OBS']!r} is not an ISO-8601 time") from exc
    ao = header.get("AO___002")
    return Frame(
        file_id=str(header["ID___002"]).strip(),
        op_id=op_id,
        experiment_id=str(header["ID___012"]).strip(),
        proposal_id=str(header["ID___013"]).strip(),
        instrument=str(header["INSTRUME"]).strip(),
        task_type=str(header["DKIST004"]).strip().lower(),
        date_obs=date_obs,
        bucket=bucket,
        key=key,
        version_id=version_id,
        etag=etag,
        size=size,
        header_bytes=header_bytes,
        fried_parameter=valid_fried_parameter(header),
        ao_locked=ao if isinstance(ao, bool) else None,
        **setup_of(header),
    )


def setup_of(header: Mapping) -> dict:
    """The frame's setup: exposure time [ms], filter (central wavelength) and camera; None where not said."""
    exposure, wavelength, camera = header.get("CAM__004"), header.get("WAVELNTH"), header.get("CAM__001")
    number = isinstance(exposure, (int, float)) and not isinstance(exposure, bool)
    return {"exposure_ms": float(exposure) if number else None,
            "filter": f"{wavelength:g} nm" if isinstance(wavelength, (int, float)) and not isinstance(wavelength, bool)
            else (str(wavelength).strip() or None if wavelength is not None else None),
            "camera": str(camera).strip() or None if camera is not None else None}
