"""SPEC-0214 Level 1 headers from SPEC-0122 raw headers, with obsflow's provenance keywords.

dkist-header-validator translates 122 -> 214 and removes what Level 1 does not allow;
this adds what Level 1 requires: dataset axes, times, wavelength range, processing
provenance (run, recipe, instance, input dataset, workflow, calibration versions,
manual processing), the dataset and product ids, and per-frame quality values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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
class Provenance:
    run_id: str
    recipe: str
    recipe_version: str
    instance_id: str
    input_dataset_sha256: str
    parameters_sha256: str
    calibration_version: str
    dataset_id: str
    product_id: str
    manual: bool
    documentation_url: str


def level1_header(raw: fits.Header, *, frame_index: int, n_frames: int, file_name: str, provenance: Provenance,
                  central_mean: float, central_rms: float, fried_parameter: float | None, data_bytes: int) -> fits.Header:
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
        "EXTNAME": "OBSERVATION", "FILENAME": file_name, "FRAMEVOL": round(data_bytes / 1e6, 3),
        "RRUNID": numeric_id(provenance.run_id), "RECIPEID": numeric_id(f"{provenance.recipe}@{provenance.recipe_version}"),
        "RINSTID": numeric_id(provenance.instance_id), "IDSOBSID": numeric_id(provenance.input_dataset_sha256),
        "IDSCALID": numeric_id(provenance.input_dataset_sha256 + ":calibration"),
        "IDSPARID": numeric_id(provenance.parameters_sha256),
        "WKFLNAME": provenance.recipe, "WKFLVERS": provenance.recipe_version, "CALVERS": provenance.calibration_version,
        "CAL_URL": provenance.documentation_url, "HEAD_URL": "https://docs.dkist.nso.edu/projects/data-products/",
        "INFO_URL": provenance.documentation_url, "MANPROCD": provenance.manual,
        "DSETID": provenance.dataset_id, "POINT_ID": provenance.dataset_id, "PRODUCT": provenance.product_id,
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
    for line in [*raw.get("HISTORY", []), f"obsflow {provenance.recipe}: Level 1, run {provenance.run_id}"]:
        header["HISTORY"] = line
    return header
