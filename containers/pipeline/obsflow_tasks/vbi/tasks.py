"""The tasks of vbi-l1. Each reads tagged inputs, calls pure functions, writes tagged outputs."""

from __future__ import annotations

import io
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from astropy.io import fits

from obsflow.ingest.fits_header import read_primary_header
from obsflow.ingest.frames import valid_fried_parameter
from obsflow.ingest.objects import S3ObjectReader
from obsflow.runs import layout

from obsflow_tasks.base import Task, TaskFailure
from obsflow_tasks.vbi import calibration, report
from obsflow_tasks.vbi.l1_header import (Identity, calibrated_header, identity_keywords, l1_file_name, stamped_header,
                                         stamped_l1_bytes)

IO_THREADS = 8  # S3 requests of a chunk in flight at once (reads ahead, writes behind)


def fits_bytes(data: np.ndarray, header: fits.Header | None = None) -> bytes:
    buffer = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buffer, checksum=True)
    return buffer.getvalue()


def l1_fits_bytes(data: np.ndarray, header: fits.Header, quantize_level: float = 0.0) -> bytes:
    """A Level 1 file as DKIST writes it: an empty primary HDU, then the image tile-compressed in a
    CompImageHDU carrying the SPEC-0214 header, with checksums.

    Lossless by default (GZIP_2 keeps float32 bit for bit). ``quantize_level`` q > 0 quantizes to a step of
    the tile's noise / q (RICE_1, fixed dither seed, so the bytes are reproducible) and records the
    measured maximum error in a HISTORY card.
    """
    def compressed(image_header: fits.Header) -> bytes:
        hdu = fits.CompImageHDU(data=data, header=image_header, compression_type="RICE_1" if quantize_level else "GZIP_2",
                                quantize_level=quantize_level, dither_seed=1)
        buffer = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer, checksum=True)
        return buffer.getvalue()

    if not quantize_level:
        return compressed(header)
    with fits.open(io.BytesIO(compressed(header))) as hdus:
        error = float(np.nanmax(np.abs(hdus[1].data - data)))
    header = header.copy()
    header["HISTORY"] = f"obsflow: lossy RICE_1, q={quantize_level:g}, max abs error {error:.9g}"  # one card
    return compressed(header)


def read_fits(data: bytes) -> tuple[np.ndarray, fits.Header]:
    """The image and its header: the primary HDU's, or a tile-compressed extension's (DKIST's layout)."""
    with fits.open(io.BytesIO(data)) as hdus:
        image = next((hdu for hdu in hdus if hdu.data is not None), hdus[0])
        return np.asarray(image.data), image.header.copy()


class Parse(Task):
    """Every frame's header (ranged GETs), grouped by task type and checked for consistency."""

    def run(self) -> None:
        reader = S3ObjectReader(self.context.s3)
        rows = []
        for frame in self.frames():
            header, _, _, _ = read_primary_header(reader, frame["bucket"], frame["key"], frame.get("version_id"),
                                                  first_read=11 * 2880, max_header=100 * 2880)
            rows.append({
                "file_id": frame["file_id"], "key": frame["key"], "task_type": str(header["DKIST004"]).lower(),
                "instrument": header["INSTRUME"], "exposure_ms": float(header["CAM__004"]),
                "date_obs": header["DATE-OBS"], "shape": [int(header["NAXIS2"]), int(header["NAXIS1"])],
                "fried_parameter": valid_fried_parameter(header),
            })
        roles = {frame["role"] for frame in self.frames()}
        required = (("dark", "gain") if roles - {"observe"} else ()) + (("observe",) if "observe" in roles else ())
        problems = consistency_problems(rows, required)
        if problems:
            raise TaskFailure("the input frames are not consistent: " + "; ".join(problems))
        counts = Counter(row["task_type"] for row in rows)
        self.write_json("parse.json", {"frames": rows, "counts": dict(counts)}, tags=("parsed",))


def consistency_problems(rows: list[dict], required: tuple[str, ...] = ("dark", "gain", "observe")) -> list[str]:
    """What makes the frames unusable together; ``required``: the task types the recipe needs among them."""
    problems = []
    instruments = {row["instrument"] for row in rows}
    if len(instruments) != 1:
        problems.append(f"frames of several instruments: {sorted(instruments)}")
    shapes = {tuple(row["shape"]) for row in rows}
    if len(shapes) != 1:
        problems.append(f"frames of several shapes: {sorted(shapes)}")
    by_type = {t: [r for r in rows if r["task_type"] == t] for t in ("dark", "gain", "observe")}
    problems += [f"no {task_type} frames" for task_type in required if not by_type[task_type]]
    if "dark" not in required:
        return problems  # the darks come from master calibrations: Science checks the exposure times
    dark_exposures = {r["exposure_ms"] for r in by_type["dark"]}
    for task_type in ("gain", "observe"):
        missing = {r["exposure_ms"] for r in by_type[task_type]} - dark_exposures
        if missing:
            problems.append(f"no dark for the {task_type} exposure time(s) {sorted(missing)} ms")
    return problems


class Dark(Task):
    """One average dark per exposure time."""

    def run(self) -> None:
        parsed = self.read_json("parsed")
        darks = [row for row in parsed["frames"] if row["task_type"] == "dark"]
        frames = {f["file_id"]: f for f in self.frames(task_type="dark")}
        streamed = ((read_fits(self.read_frame(frames[row["file_id"]]))[0].squeeze(), row["exposure_ms"]) for row in darks)
        for exposure, dark in calibration.average_darks(streamed).items():
            header = fits.Header({"EXPOSURE": exposure, "NFRAMES": sum(r["exposure_ms"] == exposure for r in darks)})
            self.write(f"dark_{exposure:g}ms.fits", fits_bytes(dark.astype(np.float32), header), tags=("dark", *self.master_tags))


class Calibrated(Task):
    """Shared by the tasks that use the master calibrations (their own run's, or an upstream dataset's)."""

    def darks(self) -> dict[float, np.ndarray]:
        """Master darks by exposure time [ms]."""
        found = {}
        for output in self.upstream_outputs("dark"):
            data, header = read_fits(self.read_output(output))
            found[float(header["EXPOSURE"])] = data
        return found

    def calibration_image(self, tag: str) -> np.ndarray:
        return read_fits(self.read_output(self.upstream_outputs(tag)[0]))[0]


class Gain(Calibrated):
    """Dark-subtracted, normalised flat and the bad-pixel mask it reveals."""

    def run(self) -> None:
        parsed = self.read_json("parsed")
        gains = [row for row in parsed["frames"] if row["task_type"] == "gain"]
        frames = {f["file_id"]: f for f in self.frames(task_type="gain")}
        dark = self.darks()[gains[0]["exposure_ms"]]
        gain = calibration.normalised_gain((read_fits(self.read_frame(frames[r["file_id"]]))[0].squeeze() for r in gains), dark)
        bad = calibration.bad_pixel_mask(gain, self.parameters["bad_pixel_low"], self.parameters["bad_pixel_high"])
        self.write("gain.fits", fits_bytes(gain.astype(np.float32)), tags=("gain", *self.master_tags))
        self.write("bad_pixels.fits", fits_bytes(bad.astype(np.uint8)), tags=("bad-pixels", *self.master_tags))


class CalibrationQuality(Calibrated):
    """The master calibrations' QC values, which the recipe's gates judge (tagged ``quality``)."""

    def run(self) -> None:
        bad = self.calibration_image("bad-pixels").astype(bool)
        values = calibration.calibration_quality(self.darks(), self.calibration_image("gain"), bad)
        self.write_json("calibration_quality.json", values, tags=("quality", "product"))


def chunk_name(stem: str, task: Task, suffix: str) -> str:
    """A per-chunk output's name: chunks in order sort by name."""
    return f"{stem}_{task.context.chunk[0]:05d}{suffix}"


def run_identity(task: Task) -> Identity:
    """The identity of the task's run, as its Level 1 frames carry it."""
    run = task.context.run
    return Identity(
        run_id=task.run_id, recipe=run["recipe"], recipe_version=run["recipe_version"], instance_id=run["instance_id"],
        input_dataset_sha256=run["input_dataset"]["sha256"], parameters_sha256=layout.digest_of(run["configuration"]),
        dataset_id=layout.dataset_id(task.run_id), product_id=layout.product_id([f["file_id"] for f in task.observe_frames()]),
        manual=task.context.manual, documentation_url=task.context.recipe.documentation_url,
    )


def header_row(header: fits.Header) -> dict:
    """An L1 header as a row of the ASDF table: its keywords without commentary or checksums."""
    return {key: value for key, value in header.items() if key not in ("HISTORY", "COMMENT", "", "CHECKSUM", "DATASUM")}


def calibrated_name(index: int) -> str:
    """A calibrated frame's name before stamping: its place in time order (its key: under the task's digest)."""
    return f"calibrated_{index:05d}.fits"


class CalibrateFrames(Calibrated):
    """Data-parallel, one pass per observe frame of its chunk: read once, calibrated into one float32 buffer,
    written as a SPEC-0214 L1 frame, measured, and shrunk for the browse movie. What the later tasks need is
    written per chunk and is small: the frames' metrics, their L1 headers, the movie frames and one sample.

    Each L1 frame carries the run's identity (vbi-l1 3.0.0), so every run writes its own."""

    stamps_identity = True

    def run(self) -> None:
        rows = {row["file_id"]: row for row in self.read_json("parsed")["frames"]}
        darks, frames = self.darks(), self.chunk_frames()
        lacking = sorted({rows[f["file_id"]]["exposure_ms"] for f in frames} - set(darks))
        if lacking:
            raise TaskFailure(f"no dark for the observe exposure time(s) {lacking} ms among the "
                              f"{len(darks)} master dark(s) {sorted(darks)}: calibrate with darks of those exposures")
        gain, bad = self.calibration_image("gain"), self.calibration_image("bad-pixels").astype(bool)
        calibrators = {exposure: calibration.Calibrator(dark, gain, bad) for exposure, dark in darks.items()}
        identity = run_identity(self) if self.stamps_identity else None
        total, (first, _) = len(self.observe_frames()), self.chunk_bounds
        buffer, metrics, headers, movie = None, [], [], []
        for index, frame in enumerate(frames, start=first):
            raw, raw_header = read_fits(self.read_frame(frame))
            exposure = rows[frame["file_id"]]["exposure_ms"]
            buffer = calibrators[exposure](raw, out=buffer)
            raw_header["HISTORY"] = f"obsflow vbi-l1: dark ({exposure:g} ms) subtracted"
            raw_header["HISTORY"] = f"obsflow vbi-l1: divided by the normalised gain; {int(bad.sum())} bad pixels set NaN"
            measured = frame_metrics(buffer, raw_header)
            header = calibrated_header(
                raw_header, frame_index=index, n_frames=total, calibration_version=code_version(),
                central_mean=measured["light_level"], central_rms=measured["granulation_rms_contrast"],
                data_bytes=buffer.nbytes, fried_parameter=measured["fried_parameter"],
            )
            if identity is None:
                name, tags = calibrated_name(index), ("calibrated",)
                headers.append(header_row(header))
            else:
                name, tags = l1_file_name(identity.dataset_id, index), ("product", "l1")
                header = stamped_header(header, identity, name)
                headers.append(header_row(header))
            self.write(name, l1_fits_bytes(buffer, header, self.options["l1_quantize_level"]), tags=tags,
                       content_type="application/fits")
            metrics.append(measured)
            movie.append(calibration.percentile_stretch(calibration.thumbnail(buffer, self.options["movie_width"])))
            if index == total // 2:  # the report's sample frame
                self.write("sample_frame.fits", fits_bytes(calibration.thumbnail(buffer), fits.Header(
                    {"DATE-OBS": raw_header["DATE-OBS"], "FRAMENUM": index + 1, "NFRAMES": total, "EXPOSURE": exposure,
                     "INSTRUME": raw_header.get("INSTRUME", ""), "WAVELNTH": raw_header.get("WAVELNTH", 0.0)})),
                    tags=("sample",))
        self.write_json(chunk_name("frame_metrics", self, ".json"), metrics, tags=("frame-metrics",))
        if identity is None:  # the stamp task adds each run's identity to them: it does not read its L1 frames back
            self.write_json(chunk_name("calibrated_headers", self, ".json"), headers, tags=("calibrated-headers",))
        else:
            self.write_json(chunk_name("l1_headers", self, ".json"), headers, tags=("l1-headers",))
        movie_frames = io.BytesIO()
        np.save(movie_frames, np.stack(movie) if movie else np.zeros((0, 2, 2), np.uint8))
        self.write(chunk_name("movie_frames", self, ".npy"), movie_frames.getvalue(), tags=("movie-frames",))


class CalibrateFramesByContent(CalibrateFrames):
    """The same pass, its L1 frames without the run's identity (vbi-l1 3.1.0): named by their place in time order
    under the task's digest, they are addressed by what made them, so a later run with the same inputs, code and
    options reuses them; ``Stamp`` gives each run's copy its identity."""

    stamps_identity = False


class Stamp(Task):
    """Data-parallel and cheap: this chunk's calibrated frames stamped with the run's identity (dataset id, run,
    recipe version, ... in the header and the file name; checksums recomputed, pixels untouched) as the run's
    L1 frames, and their headers for the ASDF table (the calibrated headers and the identity: not read back).
    Reading, stamping and writing overlap: S3's latency, not the header work, would otherwise set its time."""

    def run(self) -> None:
        calibrated = sorted(self.upstream_outputs("calibrated"), key=lambda o: o["name"])
        if len(calibrated) != len(self.observe_frames()):
            raise TaskFailure(f"{len(calibrated)} calibrated frames for {len(self.observe_frames())} observe frames")
        identity, (first, stop) = run_identity(self), self.chunk_bounds
        names = [l1_file_name(identity.dataset_id, index) for index in range(first, stop)]
        rows = chunked_json(self, "calibrated-headers")  # none from frames tasks of before they were recorded
        if len(rows) != len(calibrated):  # some frames chunks reused from that code: a row per frame, or none used
            rows = []
        headers = []

        def stamped():
            for index, name, body in zip(range(first, stop), names, self.read_outputs(calibrated[first:stop], pool)):
                data = stamped_l1_bytes(body, identity, name)
                if rows:
                    headers.append({**rows[index], **identity_keywords(identity, name)})
                else:
                    with fits.open(io.BytesIO(data)) as hdus:
                        headers.append(header_row(hdus[1].header))
                yield name, data

        with ThreadPoolExecutor(IO_THREADS) as pool:
            self.write_many(stamped(), pool, tags=("product", "l1"), content_type="application/fits")
        self.write_json(chunk_name("l1_headers", self, ".json"), headers, tags=("l1-headers",))


def frame_metrics(calibrated: np.ndarray, header: fits.Header) -> dict:
    """One calibrated frame's quality values: averages, the light level and granulation RMS contrast of the
    central region (a seeing measure from the data), and the AO's Fried parameter."""
    mean, rms = calibration.mean_and_rms_contrast(calibrated)
    light, contrast = calibration.mean_and_rms_contrast(calibration.central_region(calibrated))
    return {"date_obs": header["DATE-OBS"], "frame_average": mean, "frame_rms_contrast": rms, "light_level": light,
            "granulation_rms_contrast": contrast, "fried_parameter": valid_fried_parameter(header)}


def code_version() -> str:
    import obsflow

    return f"obsflow {obsflow.__version__}"


def chunked_json(task: Task, tag: str) -> list:
    """A data-parallel task's per-chunk JSON lists, joined in chunk order."""
    return [item for output in sorted(task.upstream_outputs(tag), key=lambda o: o["name"])
            for item in json.loads(task.read_output(output))]


class QualityMetrics(Calibrated):
    """The frames' quality values gathered, the QC table of the dataset and its calibrations, and warnings."""

    def run(self) -> None:
        parsed = self.read_json("parsed")
        rows = [r for r in parsed["frames"] if r["task_type"] == "observe"]
        per_frame = chunked_json(self, "frame-metrics")
        bad = self.calibration_image("bad-pixels").astype(bool)
        dark_means = {f"{exposure:g}": float(np.mean(dark)) for exposure, dark in self.darks().items()}
        self.write_json("quality_metrics.json", {
            "frame_counts": {"observe": len(rows)}, "frames": per_frame,
            "warnings": quality_warnings(per_frame, rows, self.parameters["light_level_tolerance"]),
            "qc": qc_table(per_frame, rows, dark_means, self.calibration_image("gain"), bad),
        }, tags=("quality", "product"))


def quality_warnings(per_frame: list[dict], rows: list[dict], tolerance: float) -> list[str]:
    warnings = []
    missing_r0 = sum(1 for f in per_frame if f["fried_parameter"] is None)
    if missing_r0:
        warnings.append(f"{missing_r0} of {len(per_frame)} frame(s) have no valid Fried parameter (AO unlocked or implausible)")
    light = np.array([f["light_level"] for f in per_frame])
    if light.size and np.nanmedian(light) > 0:
        spread = float(np.nanmax(np.abs(light / np.nanmedian(light) - 1)))
        if spread > tolerance:
            warnings.append(f"light level varies by {spread:.0%} (more than {tolerance:.0%}): clouds or guiding?")
    if len(per_frame) != len(rows):
        warnings.append(f"{len(rows)} observe frames parsed but {len(per_frame)} calibrated")
    return warnings


def qc_table(per_frame: list[dict], rows: list[dict], dark_means: dict[str, float], gain: np.ndarray,
             bad: np.ndarray) -> list[dict]:
    """The dataset's QC values: name, value, unit, note; the same in the metrics JSON and the report."""
    light = np.array([f["light_level"] for f in per_frame], dtype=float)
    contrast = np.array([f["granulation_rms_contrast"] for f in per_frame], dtype=float) * 100
    r0 = np.array([f["fried_parameter"] for f in per_frame if f["fried_parameter"] is not None], dtype=float) * 100
    times = sorted(f["date_obs"] for f in per_frame)
    median_light = float(np.nanmedian(light)) if light.size else float("nan")

    def value(v: float, digits: int = 4):
        return None if v is None or not np.isfinite(v) else round(float(v), digits)

    return [
        {"name": "observe frames", "value": len(per_frame), "unit": "", "note": f"{len(rows)} parsed"},
        {"name": "first frame", "value": times[0] if times else None, "unit": "UTC", "note": ""},
        {"name": "last frame", "value": times[-1] if times else None, "unit": "UTC", "note": ""},
        {"name": "exposure time", "value": ", ".join(f"{e:g}" for e in sorted({r["exposure_ms"] for r in rows})),
         "unit": "ms", "note": ""},
        {"name": "light level, median", "value": value(median_light, 1), "unit": "ct", "note": "central region"},
        {"name": "light level, largest deviation", "value": value(
            float(np.nanmax(np.abs(light / median_light - 1))) * 100 if light.size and median_light else None, 2),
         "unit": "%", "note": "from the median"},
        {"name": "granulation RMS contrast, median", "value": value(np.nanmedian(contrast) if contrast.size else None, 2),
         "unit": "%", "note": "seeing measured from the data"},
        {"name": "granulation RMS contrast, range", "value": (
            f"{np.nanmin(contrast):.2f} - {np.nanmax(contrast):.2f}" if contrast.size else None), "unit": "%", "note": ""},
        {"name": "Fried parameter r0, median", "value": value(np.median(r0) if r0.size else None, 2), "unit": "cm",
         "note": f"AO; {len(per_frame) - r0.size} frame(s) without a valid r0"},
        *({"name": f"master dark mean, {exposure} ms", "value": value(mean, 2), "unit": "ct", "note": ""}
          for exposure, mean in sorted(dark_means.items())),
        {"name": "normalised gain, range", "value": f"{np.nanmin(gain[~bad]):.3f} - {np.nanmax(gain[~bad]):.3f}"
         if (~bad).any() else None, "unit": "", "note": "good pixels"},
        {"name": "bad pixels", "value": int(bad.sum()), "unit": "", "note": f"{bad.mean() * 100:.4f} % of the detector"},
    ]


class BrowseMovie(Task):
    """An H.264 MP4 of the calibrated observe frames (percentile-clipped, shrunk by the frames task)."""

    def run(self) -> None:
        outputs = sorted(self.upstream_outputs("movie-frames"), key=lambda o: o["name"])
        frames = [frame for output in outputs for frame in np.load(io.BytesIO(self.read_output(output)))]
        if not frames:
            raise TaskFailure("no calibrated frames to make a movie of")
        self.write("browse.mp4", h264_movie(frames, frames[0].shape[1], self.options["movie_fps"]),
                   tags=("product", "movie"), content_type="video/mp4")


def h264_movie(frames: list[np.ndarray], max_width: int, fps: int) -> bytes:
    """8-bit grey frames as an H.264 MP4 (yuv420p, playable in browsers), scaled to at most ``max_width``."""
    import av

    ny, nx = frames[0].shape
    width = min(max_width, nx) // 2 * 2
    height = max(2, round(ny * width / nx) // 2 * 2)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "medium"}
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            container.mux(stream.encode(picture.reformat(width=width, height=height, format="yuv420p")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


class QualityReport(Calibrated):
    """A PDF quality report: warnings and QC values first, images, then light level and seeing in time."""

    def run(self) -> None:
        metrics = self.read_json("quality")
        sample, header = read_fits(self.read_output(self.upstream_outputs("sample")[0]))
        darks = self.darks()
        exposure = float(header["EXPOSURE"])
        panels = {
            f"calibrated frame {header['FRAMENUM']} of {header['NFRAMES']} ({header['DATE-OBS']})":
                (sample, "calibrated signal [ct]", "gray"),
            f"master dark ({exposure:g} ms)": (calibration.thumbnail(darks.get(exposure, next(iter(darks.values())))),
                                              "dark signal [ct]", "magma"),
            "normalised gain": (calibration.thumbnail(self.calibration_image("gain")), "relative response [1]", "viridis"),
            "bad pixels (set NaN in L1)": (calibration.thumbnail(self.calibration_image("bad-pixels"), reduce=np.nanmax),
                                           "bad [1 = yes]", "binary"),
        }
        identity = [("dataset", layout.dataset_id(self.run_id)), ("run", self.run_id),
                    ("recipe", self.context.recipe.key), ("proposal", self.context.input_dataset.get("proposal_id", "")),
                    ("instrument", str(header["INSTRUME"])), ("wavelength", f"{float(header['WAVELNTH']):g} nm"),
                    ("frames", ", ".join(f"{k} {v}" for k, v in sorted(metrics["frame_counts"].items())))]
        self.write("quality_report.pdf", report.quality_report_pdf(identity, metrics, panels),
                   tags=("product", "report"), content_type="application/pdf")


def image_bytes(header: fits.Header) -> int:
    """The uncompressed size of an image, from its header."""
    return abs(int(header["BITPIX"])) // 8 * int(np.prod([int(header[f"NAXIS{i}"]) for i in range(1, int(header["NAXIS"]) + 1)]))


class AsdfInventory(Task):
    """ASDF metadata (inventory, table of L1 headers, input dataset, as-run configuration) and inventory JSON,
    from the L1 headers the frames task recorded (the L1 files are not read back)."""

    def run(self) -> None:
        import asdf

        l1 = sorted(self.upstream_outputs("l1"), key=lambda o: o["name"])
        headers = chunked_json(self, "l1-headers")
        keys = [k for k in headers[0] if all(k in h for h in headers)]
        table = {key: np.array([h[key] for h in headers]) for key in keys}
        inventory = {
            "dataset_id": layout.dataset_id(self.run_id), "product_id": headers[0]["PRODUCT"],
            "run_id": self.run_id, "recipe": self.context.recipe.key, "frame_count": len(headers),
            "files": [{"name": o["name"], "sha256": o["sha256"], "size": o["size"]} for o in l1],
            # image bytes per stored byte, headers included (small frames are mostly header)
            "compression_ratio": round(sum(image_bytes(h) for h in headers) / sum(o["size"] for o in l1), 3),
            "start_time": min(h["DATE-BEG"] for h in headers), "end_time": max(h["DATE-END"] for h in headers),
            "wavelength_min_nm": float(headers[0]["WAVEMIN"]), "wavelength_max_nm": float(headers[0]["WAVEMAX"]),
            "instrument": headers[0]["INSTRUME"], "proposal_id": self.context.input_dataset["proposal_id"],
        }
        tree = {"inventory": inventory, "headers": table, "input_dataset": self.context.input_dataset,
                "configuration": self.context.run["configuration"]}
        buffer = io.BytesIO()
        asdf.AsdfFile(tree).write_to(buffer)
        self.write(f"VBI_{inventory['dataset_id']}_metadata.asdf", buffer.getvalue(), tags=("product", "asdf"),
                   content_type="application/asdf")
        self.write("inventory.json", json.dumps(inventory, indent=2).encode(), tags=("product", "inventory"),
                   content_type="application/json")
