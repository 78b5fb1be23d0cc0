"""Reading ahead and writing behind, attacked: a chunk's files must not all be held in memory at once.

Found from outside: ``read_outputs`` submitted every read of the chunk at once (``pool.map``) and ``write_many``
made every file before it waited for any upload, so a stamp chunk held all its calibrated and all its stamped
frames in memory (a chunk of a few hundred 4k x 4k frames: gigabytes), where it held one before.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from obsflow.recipes.definitions import RECIPES
from obsflow_tasks.base import Task, TaskContext

VBI = next(r for r in RECIPES if r.key == "vbi-l1@3.1.0")
THREADS = 4
FILES = 60


class Counting:
    """An S3 client whose uploads take a little while, counted."""

    def __init__(self):
        self.lock, self.uploaded = threading.Lock(), 0

    def put_object(self, Bucket, Key, Body, ContentType):  # noqa: N803 (boto3's names)
        time.sleep(0.005)
        with self.lock:
            self.uploaded += 1


def task(s3=None) -> Task:
    return Task(TaskContext(s3=s3, work_bucket="work", run={"run_id": "run-1"}, recipe=VBI, task=VBI.task("stamp"),
                            input_dataset={"frames": []}, digest="d"))


def test_reading_ahead_holds_a_bounded_number_of_files():
    # Given a task reading 60 files with 4 threads, each read counted as it starts
    reader, started = task(), []
    reader.read_output = lambda output: started.append(output["key"]) or output["key"].encode()
    with ThreadPoolExecutor(THREADS) as pool:
        # When the caller takes them one by one, slowly
        for taken, body in enumerate(reader.read_outputs([{"key": f"k{i}"} for i in range(FILES)], pool), 1):
            time.sleep(0.001)
            # Then they come in order, and only a few are read ahead of it
            assert body == f"k{taken - 1}".encode()
            assert len(started) - taken <= 2 * THREADS, (len(started), taken)


def test_writing_behind_holds_a_bounded_number_of_files():
    # Given a task writing 60 files, its uploads slower than making them
    s3 = Counting()
    writer, made = task(s3), []

    def files():
        for index in range(FILES):
            # Then it makes the next only while a few are waiting for their upload
            assert index - s3.uploaded <= 2 * THREADS + 1, (index, s3.uploaded)
            made.append(index)
            yield f"f{index:03d}.fits", b"x" * 10

    with ThreadPoolExecutor(THREADS) as pool:
        writer.write_many(files(), pool)
    # And every output is recorded, in order
    assert [o["name"] for o in writer.context.outputs] == [f"f{i:03d}.fits" for i in range(FILES)]
    assert s3.uploaded == FILES
