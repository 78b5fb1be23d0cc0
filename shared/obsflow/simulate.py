"""Realistic synthetic observations: SPEC-0122 frames, transfer manifests and candidates.

Headers come from dkist-data-simulator's Spec122Dataset (VBI tables); the pixel data
is seeded: a dark (bias + dark current), a gain (a vignetted, dusty flat) and
observe frames (granulation seen through the same dark and gain, with noise).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

TASK_EXPOSURE_MS = {"dark": 4.0, "gain": 4.0, "observe": 4.0}
DEAD_PIXELS = ((0.1, 0.2), (0.55, 0.85), (0.9, 0.5))  # fractional (y, x) positions


@dataclass
class SimulatedOp:
    op_id: str
    task_type: str
    frames: list[tuple[str, bytes]] = field(default_factory=list)

    def keys(self) -> list[str]:
        return [f"raw/{self.op_id}/{name}" for name, _ in self.frames]


@dataclass
class SimulatedCandidate:
    candidate_id: str
    proposal_id: str
    ops: list[SimulatedOp]
    manifest: dict
    candidate: dict

    def frame_objects(self) -> list[tuple[str, bytes]]:
        return [(f"raw/{op.op_id}/{name}", body) for op in self.ops for name, body in op.frames]

    def manifest_object(self) -> tuple[str, bytes]:
        return f"manifests/{self.manifest['manifest_id']}.json", json.dumps(self.manifest).encode()

    def candidate_object(self) -> tuple[str, bytes]:
        return f"candidates/{self.candidate_id}.json", json.dumps(self.candidate).encode()

    def proposal_object(self, release_date: str | None = None) -> tuple[str, bytes]:
        """The proposal's document (DESIGN.md section 4): its PI, and a year's embargo after each observation, or
        a fixed ``release_date``."""
        document = {"proposal_id": self.proposal_id, "pi": {"name": "Simulated PI", "email": "pi@example.org"},
                    **({"release_date": release_date} if release_date else {"embargo_days": 365})}
        return f"proposals/{self.proposal_id}.json", json.dumps(document, indent=2).encode()

    def write(self, root: Path) -> list[Path]:
        """Every object under ``root`` at its ingest-bucket key, as the summit holds them before transfer."""
        written = []
        for key, body in [*self.frame_objects(), self.manifest_object(), self.candidate_object(), self.proposal_object()]:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            written.append(path)
        return written


def granulation(shape: tuple[int, int], seed: int, cell: float = 16.0) -> np.ndarray:
    """A granulation-like scene of mean 1 and RMS contrast 0.1: bright cells of ``cell`` pixels (a jittered
    Voronoi tessellation) brightest at their centres, separated by dark intergranular lanes."""
    ny, nx = shape
    rng = np.random.default_rng(seed)
    gy, gx = int(np.ceil(ny / cell)) + 2, int(np.ceil(nx / cell)) + 2
    centres = (np.stack(np.indices((gy, gx)), axis=-1) - 1 + rng.uniform(0.15, 0.85, (gy, gx, 2))) * cell
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    iy, ix = (y // cell).astype(int) + 1, (x // cell).astype(int) + 1
    nearest = np.full(shape, np.inf, dtype=np.float32)
    second = nearest.copy()
    for dy in (-1, 0, 1):  # a pixel's two nearest centres lie in its grid cell or a neighbouring one
        for dx in (-1, 0, 1):
            centre = centres[iy + dy, ix + dx]
            distance = np.hypot(y - centre[..., 0], x - centre[..., 1])
            second = np.where(distance < nearest, nearest, np.minimum(second, distance))
            nearest = np.minimum(nearest, distance)
    scene = np.tanh(3.0 * (second - nearest) / cell) - 0.15 * nearest / cell  # lanes where two cells meet
    return 1.0 + 0.1 * (scene - scene.mean()) / scene.std()


def _pixels(task_type: str, shape: tuple[int, int], rng: np.random.Generator, index: int,
            scene: np.ndarray | None = None) -> np.ndarray:
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    dark = 100.0 + 5.0 * (x / nx)  # bias with a gradient across the readout
    r2 = ((x - nx / 2) ** 2 + (y - ny / 2) ** 2) / (0.6 * max(nx, ny)) ** 2
    gain = np.clip(1.0 - 0.3 * r2, 0.5, 1.0)
    for cx, cy in ((0.3, 0.4), (0.7, 0.65)):  # two dust motes
        gain *= 1.0 - 0.25 * np.exp(-(((x - cx * nx) ** 2 + (y - cy * ny) ** 2) / (0.02 * nx) ** 2))
    for fy, fx in DEAD_PIXELS:  # pixels that hardly respond
        gain[int(fy * ny), int(fx * nx)] = 0.02
    if task_type == "dark":
        signal = dark
    elif task_type == "gain":
        signal = dark + 20000.0 * gain
    else:  # the granulation drifts one pixel per frame across the field
        scene = granulation(shape, seed=0) if scene is None else scene
        signal = dark + 15000.0 * np.roll(scene, index, axis=1) * gain
    noisy = rng.normal(signal, np.sqrt(np.maximum(signal, 1.0)))
    return np.clip(noisy, 0, 65535).astype(np.uint16)


# Haleakala, for the telescope's pointing at the Sun (degrees)
SITE_LATITUDE, SITE_LONGITUDE = 20.7067, -156.2569
G_BAND_NM, G_BAND_FWHM_NM = 430.52, 0.44  # VBI blue's G-band filter


def sun_elevation_azimuth(when: dt.datetime) -> tuple[float, float]:
    """The Sun's elevation and azimuth (degrees, azimuth from north through east) seen from the site,
    to about a degree (declination and the equation of time from the day of the year)."""
    day = when.timetuple().tm_yday + when.hour / 24
    gamma = 2 * np.pi / 365 * (day - 1)
    declination = np.degrees(0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma)
                             - 0.006758 * np.cos(2 * gamma) + 0.000907 * np.sin(2 * gamma))
    equation_of_time_min = 229.18 * (0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
                                     - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma))
    solar_minutes = when.hour * 60 + when.minute + when.second / 60 + equation_of_time_min + 4 * SITE_LONGITUDE
    hour_angle, lat, dec = np.radians(solar_minutes / 4 - 180), np.radians(SITE_LATITUDE), np.radians(declination)
    elevation = np.arcsin(np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle))
    azimuth = np.arctan2(-np.sin(hour_angle) * np.cos(dec),
                         np.cos(lat) * np.sin(dec) - np.sin(lat) * np.cos(dec) * np.cos(hour_angle))
    return round(float(np.degrees(elevation)), 3), round(float(np.degrees(azimuth)) % 360, 3)


def plausible_vbi_header(task_type: str, index: int, n_frames: int, when: dt.datetime, shape: tuple[int, int],
                         fried_parameter: float, light_level: float) -> dict:
    """Values a VBI frame from the summit would carry, for every SPEC-0122 keyword that reaches Level 1
    (the simulator fills them with random numbers and strings)."""
    elevation, azimuth = sun_elevation_azimuth(when)
    ny, nx = shape
    exposure = TASK_EXPOSURE_MS[task_type]
    values = {
        # camera: a 4k x 4k sCMOS read out in one region of interest, no binning
        "CAM__001": "VBI-BLUE-CAM-1", "CAM__002": "Andor Balor", "CAM__003": 16, "CAM__005": exposure,
        "CAM__006": 30.0, "CAM__007": 4096, "CAM__008": 4096, "CAM__009": 1, "CAM__010": 1, "CAM__011": 1,
        "CAM__012": 1, "CAM__014": 1, "CAM__016": 1, "CAM__033": 1, "CAM__042": 16,
        # the observation and the data source; each frame one repeat of the data set parameters (DKIST008 repeats,
        # DKIST009 this one): a VBI time series at one field position
        "WAVELNTH": G_BAND_NM, "OBJECT": "quietsun", "OBSERVER": "DKIST resident scientist",
        "DKIST005": "VBI-BLUE-G-BAND", "DKIST006": "Good", "DKIST008": n_frames, "DKIST009": index + 1,
        "DKIST010": light_level,
        "ID___003": "dsp_vbi_g_band_1x1", "ID___005": "ip_vbi_2026_11", "ID___014": "ICS 4.2.0",
        # the telescope, pointing at the Sun, and the coude table following it
        "TELEVATN": elevation, "TAZIMUTH": azimuth, "TTBLANGL": round(azimuth - elevation, 3) % 360,
        # the weather station at 3,050 m
        "WS___001": "DKIST weather station", "WS___002": 4.2, "WS___004": 7.5, "WS___005": 34.0, "WS___006": -7.8,
        "WS___007": 713.5, "WS___008": 3.1,
        # adaptive optics and wavefront correction: locked on the observe frames
        "WFC__001": G_BAND_FWHM_NM, "WFC__003": "HOAO-RECON-2026-11-20", "WFC__004": 0.35, "WFC__005": 0.05,
        "WFC__006": 1975, "WFC__008": 0.4, "WFC__009": 0.08,
        "AO___003": 0.0, "AO___004": 0.0, "AO___005": 0.0, "AO___006": 0.0, "AO___007": 0.0, "AO___008": 0.0,
        # polarimetric calibration optics out of the beam
        "PAC__005": "0.0", "PAC__007": "0.0",
        # VBI: one field position, one frame per repeat (the repeats make the time series), r0 in cm
        "VBI__001": G_BAND_FWHM_NM, "VBI__002": "1", "VBI__003": 1, "VBI__004": 1, "VBI__007": 1, "VBI__008": 1,
        "VBI__009": round(fried_parameter * 100, 3),
    }
    # one software and one hardware region of interest, centred on the chip; the others unused
    roi = ((4096 - nx) // 2, (4096 - ny) // 2, nx, ny)
    values.update({f"CAM__{n:03d}": v for n, v in zip(range(17, 33), roi + (0,) * 12)})
    values.update({f"CAM__{n:03d}": v for n, v in zip(range(34, 42), roi + (0,) * 4)})
    # the equatorial alternate WCS: the Sun's place in late November, the same pixel grid
    values.update({"CTYPE1A": "RA---TAN", "CTYPE2A": "DEC--TAN", "CTYPE3A": "TIME", "CUNIT1A": "deg",
                   "CUNIT2A": "deg", "CUNIT3A": "s", "CRPIX1A": nx / 2, "CRPIX2A": ny / 2, "CRPIX3A": 1.0,
                   "CRVAL1A": 236.4, "CRVAL2A": -19.9, "CRVAL3A": 0.0, "CDELT1A": 0.011 / 3600,
                   "CDELT2A": 0.011 / 3600, "CDELT3A": 1.0, "LONPOLEA": 180.0, "LATPOLE": 90.0, "LATPOLEA": 90.0})
    values.update({f"PC{i}_{j}A": float(i == j) for i in (1, 2, 3) for j in (1, 2, 3)})
    return values


def simulate_op(
    op_id: str,
    task_type: str,
    n_frames: int,
    *,
    proposal_id: str,
    experiment_id: str,
    shape: tuple[int, int] = (128, 128),
    start: dt.datetime,
    seed: int = 0,
    fried_parameter: float = 0.1,
) -> SimulatedOp:
    from dkist_data_simulator.spec122 import Spec122Dataset  # heavy: import when used

    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = Spec122Dataset(
            dataset_shape=(n_frames, *shape), array_shape=(1, *shape), time_delta=1.0, instrument="vbi", start_time=start
        )
        for key, value in {
            "DKIST004": task_type,
            "ID___008": op_id,
            "ID___012": experiment_id,
            "ID___013": proposal_id,
            "CAM__004": TASK_EXPOSURE_MS[task_type],
            "AO___001": fried_parameter,
            "AO___002": task_type == "observe",
        }.items():
            dataset.add_constant_key(key, value)
        op = SimulatedOp(op_id, task_type)
        scene = granulation(shape, seed) if task_type == "observe" else None
        for index, frame in enumerate(dataset):
            pixels = _pixels(task_type, shape, rng, index, scene)
            header = fits.Header(frame.header())
            header.remove("HISTORY", ignore_missing=True, remove_all=True)  # the simulator's filler text
            header.remove("COMMENT", ignore_missing=True, remove_all=True)
            header.update(plausible_vbi_header(
                task_type, index, n_frames, dt.datetime.fromisoformat(header["DATE-OBS"]), shape, fried_parameter,
                light_level=round(float(np.median(pixels)), 1)))
            hdu = fits.PrimaryHDU(data=pixels[np.newaxis], header=header)
            buffer = io.BytesIO()
            hdu.writeto(buffer, checksum=True)
            op.frames.append((f"{task_type}_{index:04d}.fits", buffer.getvalue()))
    return op


def many_frames(op_id: str, task_type: str, count: int, *, proposal_id: str, shape: tuple[int, int] = (32, 32),
                seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` SPEC-0122 frames of one OP, fast: four simulated frames cloned with new file ids and times
    (for load tests, where the pixels do not matter)."""
    start = dt.datetime(2026, 11, 20, 18)
    templates = simulate_op(op_id, task_type, 4, proposal_id=proposal_id, experiment_id=f"eid_{proposal_id}",
                            shape=shape, start=start, seed=seed).frames
    out = []
    for i in range(count):
        hdul = fits.open(io.BytesIO(templates[i % len(templates)][1]))
        header = hdul[0].header
        header["ID___002"] = f"{op_id}_{i:06d}"
        header["DATE-OBS"] = (start + dt.timedelta(seconds=i)).isoformat()
        buffer = io.BytesIO()
        hdul.writeto(buffer)
        out.append((f"raw/{op_id}/{task_type}_{i:06d}.fits", buffer.getvalue()))
    return out


def simulate_candidate(
    candidate_id: str,
    *,
    proposal_id: str = "pid_1_23",
    n_dark: int = 4,
    n_gain: int = 4,
    n_observe: int = 8,
    shape: tuple[int, int] = (128, 128),
    start: dt.datetime | None = None,
    seed: int = 0,
    recipe: str | None = None,
    priority: int | None = None,
    calibration_of: "SimulatedCandidate | None" = None,
) -> SimulatedCandidate:
    """A candidate's frames, manifest and document; ``calibration_of``: share that candidate's dark and gain
    OPs (its frames are not repeated here), as observations of one calibration set do."""
    start = start or dt.datetime(2026, 11, 20, 18, 0, 0)
    experiment_id = f"eid_{proposal_id}"
    plan = (("dark", n_dark), ("gain", n_gain), ("observe", n_observe))
    ops = [
        simulate_op(f"{candidate_id}_{task}", task, count, proposal_id=proposal_id, experiment_id=experiment_id,
                    shape=shape, start=start + dt.timedelta(minutes=10 * i), seed=seed * 10 + i)
        for i, (task, count) in enumerate(plan) if calibration_of is None or task == "observe"
    ]
    calibration_ops = [op.op_id for op in (calibration_of.ops[:2] if calibration_of else ops[:2])]
    manifest = {
        "manifest_id": f"{candidate_id}_transfer",
        "observing_programs": [{"op_id": op.op_id, "expected_frames": len(op.frames)} for op in ops],
    }
    candidate = {
        "candidate_id": candidate_id,
        "proposal_id": proposal_id,
        "instrument": "VBI",
        "observe_op": ops[-1].op_id,
        "calibration_ops": calibration_ops,
    }
    candidate.update({k: v for k, v in (("recipe", recipe), ("priority", priority)) if v is not None})
    return SimulatedCandidate(candidate_id, proposal_id, ops, manifest, candidate)
