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

    def proposal_object(self) -> tuple[str, bytes]:
        """The proposal's document (DESIGN.md section 4): its PI, and the embargo obsflow applies by default."""
        document = {"proposal_id": self.proposal_id, "pi": {"name": "Simulated PI", "email": "pi@example.org"},
                    "embargo_days": 365}
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


def _pixels(task_type: str, shape: tuple[int, int], rng: np.random.Generator, index: int) -> np.ndarray:
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
    else:
        phase = 0.15 * index
        scene = 1.0 + 0.1 * np.sin(2 * np.pi * (x / 24.0 + phase)) * np.cos(2 * np.pi * (y / 24.0 - phase))
        signal = dark + 15000.0 * scene * gain
    noisy = rng.normal(signal, np.sqrt(np.maximum(signal, 1.0)))
    return np.clip(noisy, 0, 65535).astype(np.uint16)


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
        for index, frame in enumerate(dataset):
            header = frame.header()
            hdu = fits.PrimaryHDU(data=_pixels(task_type, shape, rng, index)[np.newaxis], header=fits.Header(header))
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
