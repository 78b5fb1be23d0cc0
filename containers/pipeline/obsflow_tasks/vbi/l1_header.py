"""SPEC-0214 Level 1 headers from SPEC-0122 raw headers, with obsflow's provenance keywords.

dkist-header-validator translates 122 -> 214 and removes what Level 1 does not allow;
this adds what Level 1 requires, in two parts. ``calibrated_header``: what the frame's content
decides (dataset axes, times, wavelength range, calibration code version, per-frame quality
values), the same in every run of the same inputs. ``stamped_header``: the run's identity (run,
recipe, instance, input dataset, parameters, workflow, manual processing, the dataset and product
ids, the file name), which only that run has. ``stamped_l1_bytes`` stamps a written L1 file
without touching its compressed pixels, its checksums recomputed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass

from astropy.io import fits
from dkist_fits_specifications import __version__ as SPEC_VERSION
from dkist_header_validator import translator

# DKIST's site on Haleakala (geocentric, m), as the observatory reports it.
OBSGEO = (-5466045.256954942, -2404388.737412784, 2242133.887690042)
PASSBAND_NM = 0.5  # VBI filters are ~0.4-0.6 nm wide around WAVELNTH


def numeric_id(text_id: str) -> int:
    """SPEC-0214 wants integer ids; obsflow's are text. A stable 48-bit number from the text."""
    return int(hashlib.sha256(text_id.encode()).hexdigest()[:12], 16)


@dataclass(frozen=True)
class Identity:
    """What names the run that makes a Level 1 frame: stamped into its header and its file name."""

    run_id: str
    recipe: str
    recipe_version: str
    instance_id: str
    input_dataset_sha256: str
    parameters_sha256: str
    dataset_id: str
    product_id: str
    manual: bool
    documentation_url: str


def l1_file_name(dataset_id: str, frame_index: int) -> str:
    return f"VBI_{dataset_id}_{frame_index:04d}_L1.fits"


def identity_keywords(identity: Identity, file_name: str) -> dict:
    """The SPEC-0214 keywords that name the run, its dataset and the file."""
    return {
        "FILENAME": file_name,
        "RRUNID": numeric_id(identity.run_id), "RECIPEID": numeric_id(f"{identity.recipe}@{identity.recipe_version}"),
        "RINSTID": numeric_id(identity.instance_id), "IDSOBSID": numeric_id(identity.input_dataset_sha256),
        "IDSCALID": numeric_id(identity.input_dataset_sha256 + ":calibration"),
        "IDSPARID": numeric_id(identity.parameters_sha256),
        "WKFLNAME": identity.recipe, "WKFLVERS": identity.recipe_version,
        "CAL_URL": identity.documentation_url, "INFO_URL": identity.documentation_url, "MANPROCD": identity.manual,
        "DSETID": identity.dataset_id, "POINT_ID": identity.dataset_id, "PRODUCT": identity.product_id,
    }


def _stamp(header: fits.Header, identity: Identity, file_name: str) -> None:
    header.update(identity_keywords(identity, file_name))  # new keywords go before the HISTORY cards
    header["HISTORY"] = f"obsflow {identity.recipe}: Level 1, run {identity.run_id}"  # the last step of the history


def stamped_header(header: fits.Header, identity: Identity, file_name: str) -> fits.Header:
    """A copy of a calibrated frame's header with the run's identity; ``header`` is left as it was."""
    stamped = header.copy()
    _stamp(stamped, identity, file_name)
    return stamped


def stamped_l1_bytes(data: bytes, identity: Identity, file_name: str) -> bytes:
    """An L1 file (an empty primary HDU, then a tile-compressed image) with the run's identity in its image header.

    The compressed table is rewritten as it is (its header carries the image's keywords), so the pixels are
    neither decompressed nor compressed again, lossy or not; CHECKSUM and DATASUM are recomputed."""
    with fits.open(io.BytesIO(data), disable_image_compression=True) as hdus:
        _stamp(hdus[-1].header, identity, file_name)
        buffer = io.BytesIO()
        hdus.writeto(buffer, checksum=True)
    return buffer.getvalue()


def level1_header(raw: fits.Header, *, frame_index: int, n_frames: int, file_name: str, identity: Identity,
                  calibration_version: str, central_mean: float, central_rms: float, fried_parameter: float | None,
                  data_bytes: int) -> fits.Header:
    """The whole Level 1 header of a frame written by the run that makes it."""
    return stamped_header(calibrated_header(
        raw, frame_index=frame_index, n_frames=n_frames, calibration_version=calibration_version,
        central_mean=central_mean, central_rms=central_rms, fried_parameter=fried_parameter, data_bytes=data_bytes,
    ), identity, file_name)


def calibrated_header(raw: fits.Header, *, frame_index: int, n_frames: int, calibration_version: str,
                      central_mean: float, central_rms: float, fried_parameter: float | None,
                      data_bytes: int) -> fits.Header:
    """The Level 1 header of a calibrated frame without the run's identity (``stamped_header`` adds it)."""
    header = translator.sanitize_to_spec214_level1(translator.translate_spec122_to_spec214_l0(raw))
    start = dt.datetime.fromisoformat(str(header["DATE-BEG"]))
    exposure_s = float(header.get("XPOSURE", raw.get("CAM__004", 0.0))) / 1000.0
    end = start + dt.timedelta(seconds=exposure_s)
    wavelength = float(raw["WAVELNTH"])
    ny, nx = int(raw["NAXIS2"]), int(raw["NAXIS1"])
    for scaling in ("BZERO", "BSCALE"):  # the raw integers' scaling: L1 data is float32
        header.remove(scaling, ignore_missing=True)
    header.update({
        "BITPIX": -32,
        # processing and provenance
        "LEVEL": 1, "PROCTYPE": "L1", "HEADVERS": SPEC_VERSION, "SOLARNET": 0.5, "OBS_HDU": 1,
        "EXTNAME": "OBSERVATION", "FRAMEVOL": round(data_bytes / 1e6, 3), "CALVERS": calibration_version,
        "HEAD_URL": "https://docs.dkist.nso.edu/projects/data-products/",
        # the dataset: a time series of 2-D images
        "DNAXIS": 3, "DAAXES": 2, "DEAXES": 1,
        "DNAXIS1": nx, "DTYPE1": "SPATIAL", "DPNAME1": "spatial x", "DWNAME1": "helioprojective longitude", "DUNIT1": "arcsec",
        "DNAXIS2": ny, "DTYPE2": "SPATIAL", "DPNAME2": "spatial y", "DWNAME2": "helioprojective latitude", "DUNIT2": "arcsec",
        "DNAXIS3": n_frames, "DTYPE3": "TEMPORAL", "DPNAME3": "frame number", "DWNAME3": "time", "DUNIT3": "s",
        "DINDEX3": frame_index + 1,
        # time and wavelength
        "DATE-END": end.isoformat(), "DATE-AVG": (start + (end - start) / 2).isoformat(), "DATEREF": start.isoformat(),
        "TELAPSE": exposure_s, "WAVEMIN": wavelength - PASSBAND_NM / 2, "WAVEMAX": wavelength + PASSBAND_NM / 2,
        "WAVEUNIT": -9, "WAVEREF": "Air", "SPECSYS": "TOPOCENT", "VELOSYS": 0.0, "OBS_VR": 0.0,
        "OBSGEO-X": OBSGEO[0], "OBSGEO-Y": OBSGEO[1], "OBSGEO-Z": OBSGEO[2],
        "NBIN1": 1, "NBIN2": 1, "NBIN3": 1, "NBIN": 1, "STOKES": "I",
        # VBI: one position, no mosaic repeats; quality of the central region
        "VBINMOSC": 1, "VBICMOSC": 1, "VBICRLEN": min(nx, ny) // 2,
        "VBICRI": central_mean, "VBICRMSC": central_rms,
    })
    if fried_parameter is not None:
        header["ATMOS_R0"] = fried_parameter
        header["AO_LOCK"] = True
    # The processing history once each, in the order it happened (the translation may keep some of it).
    header.remove("HISTORY", ignore_missing=True, remove_all=True)
    for line in raw.get("HISTORY", []):
        header["HISTORY"] = line
    return header
