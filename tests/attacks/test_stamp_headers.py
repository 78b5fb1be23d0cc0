"""The stamp's ASDF header rows, attacked: taken from the frames task's ``calibrated-headers`` only when every
frame has its row.

Found from outside: the code version in the digests did not change with this release, so a frames chunk
recorded by the code before it (no ``calibrated-headers``) is reused beside a chunk the new code computes.
The rows of the new chunk alone were then indexed by frame: the stamp of the old chunk wrote the new chunk's
frames' headers (their DATE-OBS, their statistics) into its own rows, silently; the other chunk's stamp failed
with an IndexError.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
from astropy.io import fits

from obsflow.recipes.definitions import RECIPES
from obsflow.simulate import simulate_op
from obsflow_tasks.base import TaskContext
from obsflow_tasks.vbi.l1_header import calibrated_header
from obsflow_tasks.vbi.tasks import Stamp, header_row, l1_fits_bytes

VBI = next(r for r in RECIPES if r.key == "vbi-l1@3.1.0")
FRAMES = 4


class Bucket:
    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def put_object(self, Bucket, Key, Body, ContentType):  # noqa: N803 (boto3's names)
        self.objects[Key] = Body


class StampOf(Stamp):
    """The stamp task with its upstream outputs given, not read from S3."""

    def __init__(self, context, upstream: dict[str, list[tuple[dict, bytes]]]):
        super().__init__(context)
        self.upstream = upstream

    def upstream_outputs(self, tag):
        return [output for output, _ in self.upstream.get(tag, [])]

    def read_output(self, output):
        return next(body for outputs in self.upstream.values() for o, body in outputs if o["key"] == output["key"])


def calibrated_frames() -> list[tuple[dict, bytes, dict]]:
    """Four calibrated observe frames as the frames task writes them, each with its header row."""
    op = simulate_op("op_stamp", "observe", FRAMES, proposal_id="pid_1_2", experiment_id="eid_1_2", shape=(16, 16),
                     start=dt.datetime(2026, 11, 20, 20), seed=5)
    made = []
    for index, (_, body) in enumerate(op.frames):
        raw = fits.getheader(io.BytesIO(body))
        data = fits.getdata(io.BytesIO(body)).astype(np.float32) / 1000
        header = calibrated_header(raw, frame_index=index, n_frames=FRAMES, calibration_version="obsflow 0.1.0",
                                   central_mean=1.0 + index, central_rms=0.1, fried_parameter=0.1, data_bytes=data.nbytes)
        name = f"calibrated_{index:05d}.fits"
        made.append(({"name": name, "key": f"task-outputs/frames/{name}", "tags": ["calibrated"]},
                     l1_fits_bytes(data, header), header_row(header)))
    return made


def test_a_frames_chunk_recorded_without_calibrated_headers_beside_one_with_them_stamps_the_right_headers():
    # Given four frames in two chunks of two: chunk 0 reused from a frames run of the code before (no
    # calibrated-headers), chunk 1 computed now (its two rows)
    made = calibrated_frames()
    rows = [row for _, _, row in made[2:]]
    upstream = {"calibrated": [(output, body) for output, body, _ in made],
                "calibrated-headers": [({"name": "calibrated_headers_00001.json", "key": "task-outputs/f1/h.json",
                                         "tags": ["calibrated-headers"]}, json.dumps(rows, default=str).encode())]}
    frames = [{"file_id": f"f{i}", "role": "observe", "date_obs": f"2026-11-20T20:00:0{i}"} for i in range(FRAMES)]
    run = {"run_id": "run-2", "recipe": "vbi-l1", "recipe_version": "3.1.0", "instance_id": "ri-1",
           "input_dataset": {"sha256": "0" * 64}, "configuration": {"parameters": {}, "options": {}}}
    for chunk in (0, 1):
        bucket = Bucket()
        context = TaskContext(s3=bucket, work_bucket="work", run=run, recipe=VBI, task=VBI.task("stamp"),
                              input_dataset={"frames": frames}, digest=f"stamp{chunk}", chunk=(chunk, 2))
        # When the stamp of each chunk runs
        StampOf(context, upstream).run()
        # Then each row is its own frame's header (its FILE_ID and DATE-BEG), with the run's identity
        written = next(body for key, body in bucket.objects.items() if "l1_headers" in key)
        headers = json.loads(written)
        own = [made[i][2] for i in range(2 * chunk, 2 * chunk + 2)]
        assert [(h["FILE_ID"], h["DATE-BEG"]) for h in headers] == [(r["FILE_ID"], r["DATE-BEG"]) for r in own]
        assert all(h["DSETID"] for h in headers)
