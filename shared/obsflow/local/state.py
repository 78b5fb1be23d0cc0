"""The local stack's state on disk (`obsflow local serve --state-dir DIR`).

moto keeps everything in memory. Here its service backends (objects and their versions,
table items, queued messages, topics and subscriptions, parameters, roles, state machines
and their executions' history, task logs) are saved every few seconds and when the stack
stops, and put back when it starts again. Not kept, because the stack makes them again at
every start from the code: Lambda functions, Batch queues and job definitions. A Batch job
does not outlive the process that ran it.

A save costs what changed since the last one, not everything ever stored: the state is kept
in pieces (obsflow.local.state_pieces: each item, object, execution, stream, and the rest of
each backend), and a save appends the pieces that changed to ``DIR/state.journal``. When the
journal has grown to half the size of ``DIR/state.pickle`` (the base, which holds every
piece), a save writes every piece to a new base instead, and starts a new journal: the
journal's total writes stay within a small multiple of what changed. The base is written
to a private temporary file put in its place at once; each save's pieces end with a commit
record, and each record carries its length and checksum, so a crash mid-save loses that save
alone: the journal is read up to its last whole save. A journal names the base it follows
(a generation), so one left behind by a crash mid-compaction is not applied to a newer base.

Loading a pickle runs whatever code it names, so the state is loaded only from a directory and files of the
user's own that no other user may change (obsflow.local.private), and all are private (0700, 0600): they hold
every object's body. A state that cannot be read stops the stack with one line saying what to do; nothing is
deleted.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import json
import os
import pickle
import struct
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from obsflow.errors import ObsflowError
from obsflow.local.private import private_directory, private_file
from obsflow.local.state_pieces import (
    ChangedWhilePickled,
    Pieces,
    _defaultdict,
    _plain_dict_subclass,
    _tags_of_a_resource,
    live_backends,
)
from obsflow.observability import logger

# Named here by state files of format 2: kept, so that reading one says which release wrote it
_NAMED_BY_FORMAT_2 = (_defaultdict, _plain_dict_subclass, _tags_of_a_resource)

SNAPSHOT_INTERVAL_S = 5.0
FILE_NAME = "state.pickle"  # the base: every piece, as of its writing
JOURNAL_NAME = "state.journal"  # the pieces each save changed since
FORMAT = 3
COMPACT_AT = 0.5  # a journal this large, as a fraction of the base, makes the next save write a new base
COMPACT_AT_LEAST = 1 << 20  # bytes: below this, a journal is never worth a new base
_RECORD = struct.Struct(">QI")  # a record's length and CRC-32, before it
_LOADED_AS_CODE = ", and the state in it is loaded as code"


class UnusableState(ObsflowError, RuntimeError):
    """A saved state this release cannot load, and what to do (a RuntimeError: `local serve` says it in one line)."""


@dataclass(frozen=True)
class Restored:
    saved_at: str
    clean: bool  # written when the stack stopped (else: the last periodic snapshot before a crash)
    path: str

    def describe(self) -> str:
        if self.clean:
            return f"restored the state saved when the stack stopped at {self.saved_at} from {self.path}"
        return (f"the stack did not stop cleanly: restored the last snapshot, taken at {self.saved_at}, from "
                f"{self.path}. What arrived or changed in the {SNAPSHOT_INTERVAL_S:g} s before the crash may be "
                "missing: upload it again (ingest counts each frame once); runs that were running are failed "
                "with a ticket and can be redriven")


@dataclass
class SaveStats:
    """What saving has cost (for benchmarks, and logged with each save)."""

    saves: int = 0  # that wrote something
    compactions: int = 0  # saves that wrote a new base
    last_save_s: float = 0.0
    last_save_bytes: int = 0
    last_save_compacted: bool = False
    base_bytes: int = 0
    journal_bytes: int = 0

    @property
    def on_disk_bytes(self) -> int:
        return self.base_bytes + self.journal_bytes


@dataclass
class _Read:
    """A state as read from its files: the latest bytes of each piece."""

    shells: dict = field(default_factory=dict)
    collections: dict = field(default_factory=dict)
    bucket_accounts: bytes | None = None
    saved_at: str = ""
    clean: bool = False

    def apply(self, records: list[tuple]) -> None:
        for record in records:
            kind = record[0]
            if kind == "shell":
                self.shells[record[1]] = record[2]
            elif kind == "cleared":
                self.collections[record[1]] = {}
            elif kind == "entry":
                self.collections.setdefault(record[1], {})[record[2]] = record[3]
            elif kind == "bucket-accounts":
                self.bucket_accounts = record[1]


class _Locations:
    """Where each piece's latest record lies in the state's files, as (file, offset, length): a new base copies
    these bytes instead of pickling every piece again (most never change: a frame's object, an ended run)."""

    def __init__(self):
        self.entries: dict[tuple, dict] = {}  # collection's path -> {key: where}
        self.others: dict[tuple, tuple] = {}  # ("shell", place) or ("bucket-accounts",) -> where

    def note(self, record: tuple, where: tuple[Path, int, int]) -> None:
        kind = record[0]
        if kind == "shell":
            self.others["shell", record[1]] = where
        elif kind == "bucket-accounts":
            self.others["bucket-accounts",] = where
        elif kind == "cleared":
            self.entries.pop(record[1], None)
        elif kind == "entry" and record[3] is None:
            self.entries.get(record[1], {}).pop(record[2], None)
        elif kind == "entry":
            self.entries.setdefault(record[1], {})[record[2]] = where

    def runs(self) -> list[tuple[Path, int, int]]:
        """Every located record, as (file, offset, length) runs of adjacent records in file order."""
        places = sorted([*self.others.values(), *(w for entries in self.entries.values() for w in entries.values())])
        runs: list[list] = []
        for path, offset, length in places:
            if runs and runs[-1][0] == path and runs[-1][1] + runs[-1][2] == offset:
                runs[-1][2] += length
            else:
                runs.append([path, offset, length])
        return [tuple(run) for run in runs]

    def moved(self, path: Path, starts: list[tuple[Path, int, int, int]]) -> None:
        """After the runs were copied to ``path``: each (file, offset, length, new offset) run's records are there."""
        def new_place(where):
            source, offset, length = where
            index = bisect.bisect_right(keys, (source, offset)) - 1
            _, run_offset, _, new_offset = starts[index]
            return path, new_offset + offset - run_offset, length

        keys = [(source, offset) for source, offset, _, _ in starts]
        self.others = {name: new_place(where) for name, where in self.others.items()}
        self.entries = {p: {key: new_place(where) for key, where in entries.items()}
                        for p, entries in self.entries.items()}


_COPY_CHUNK = 16 << 20


def _record(record: tuple) -> bytes:
    payload = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    return _RECORD.pack(len(payload), zlib.crc32(payload)) + payload


class _Damaged(Exception):
    pass


def _header(file) -> dict:
    try:
        header = pickle.load(file)
    except Exception as exc:  # noqa: BLE001  (truncated, not a pickle, or naming what this release lacks)
        raise _Damaged(f"{type(exc).__name__}: truncated?") from exc
    if not isinstance(header, dict):
        raise _Damaged("not a state obsflow saved")
    return header


def _saves(file, size: int) -> tuple[list[tuple[list, str, bool]], int, bool]:
    """The saves in a state file after its header, each ([(record, (offset, length))], saved at, clean); the
    length up to the end of the last whole one; and whether anything after it is cut short (a crash mid-save).
    _Damaged if anything else is wrong."""
    saves, pending, whole = [], [], file.tell()
    while True:
        at = file.tell()
        head = file.read(_RECORD.size)
        if not head:
            return saves, whole, bool(pending)
        length, checksum = _RECORD.unpack(head) if len(head) == _RECORD.size else (size, 0)
        end = at + _RECORD.size + length
        if end > size:
            return saves, whole, True  # the last record, cut short
        payload = file.read(length)
        if zlib.crc32(payload) != checksum:
            if end == size:
                return saves, whole, True  # the last record, written in part
            raise _Damaged(f"the record at byte {at} does not match its checksum")
        try:
            record = pickle.loads(payload)
        except Exception as exc:  # noqa: BLE001
            raise _Damaged(f"the record at byte {at}: {type(exc).__name__}") from exc
        if record[0] == "commit":
            saves.append((pending, record[1], record[2]))
            pending, whole = [], file.tell()
        else:
            pending.append((record, (at, end - at)))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class StateDirectory:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.journal_path = self.directory / JOURNAL_NAME
        self._lock = threading.Lock()
        self._prepared = False
        self._read: _Read | None = None
        self._pieces = Pieces()
        self._located = _Locations()
        self._generation: str | None = None  # the base's, once this stack has written or read it
        self._journal_bytes: int | None = None  # the journal's length up to its last whole save; None: none yet
        self._stats = SaveStats()

    def prepare(self) -> None:
        """Make the directory private, or refuse it, and read what was saved: the stack does this before it starts
        anything, so a state it cannot use stops it there, with one line, and nothing changed."""
        self._private_directory()
        self._read = self._load()
        self._prepared = True

    def _private_directory(self) -> None:
        private_directory(self.directory, "state directory", why=_LOADED_AS_CODE,
                          instead="use a directory of your own that only you can write to (--state-dir DIR)")

    def _open(self, path: Path, what: str, instead: str):
        try:
            return private_file(path, os.O_RDONLY, what, why=_LOADED_AS_CODE, instead=instead)
        except FileNotFoundError:
            return None

    def _load(self) -> _Read | None:
        base = self._open(self.path, "state file", instead="move it away to start empty")
        if base is None:
            if os.path.lexists(self.journal_path):
                raise UnusableState(f"state journal {self.journal_path} has no state file beside it ({self.path}): "
                                    "move it away to start empty, or put back the state file")
            return None
        read = _Read()
        with open(base, "rb") as file:
            header = self._readable(file, self.path, read, "state file",
                                    instead="move it away to start empty, or put back a copy of it")
        self._generation, self._stats.base_bytes = header["generation"], header["size"]
        journal = self._open(self.journal_path, "state journal", instead="move it away to start empty")
        if journal is not None:
            with open(journal, "rb") as file:
                header = self._readable(file, self.journal_path, read, "state journal", instead=(
                    f"move it away to start from the state file alone (as saved at {read.saved_at}), or put back a "
                    "copy of it"))
            if header["follows"]:
                self._journal_bytes = self._stats.journal_bytes = header["whole"]
            # else: left by a crash as a new base replaced the one it followed, which holds it all
        return read

    def _readable(self, file, path: Path, read: _Read, what: str, instead: str) -> dict:
        """Apply the saves in ``file`` to ``read``: all of a state file's; a journal's when it follows the state
        file read. Its header, with its size, whether it follows, and "whole": the length up to its last whole
        save."""
        size = os.fstat(file.fileno()).st_size
        base = what == "state file"
        try:
            header = _header(file)
            if header.get("format") != FORMAT:
                raise UnusableState(f"{path} was written by another obsflow release (format "
                                    f"{header.get('format')}, this one reads {FORMAT}): move it away to start empty")
            if header.get("kind") != ("base" if base else "journal") or not header.get("generation"):
                raise _Damaged(f"not a {what} obsflow saved")
            header["follows"] = base or header["generation"] == self._generation
            saves, header["whole"], cut_short = _saves(file, size) if header["follows"] else ([], 0, False)
            if base and (cut_short or not saves):
                raise _Damaged("cut short: truncated?")
        except _Damaged as exc:
            raise UnusableState(f"{what} {path} is unreadable ({exc}): {instead}") from exc
        for records, saved_at, clean in saves:
            read.apply([record for record, _ in records])
            for record, (offset, length) in records:
                self._located.note(record, (path, offset, length))
            read.saved_at, read.clean = saved_at, clean
        header["size"] = size
        return header

    def restore(self) -> Restored | None:
        """Put the saved backends in place (before any resource is created); None when nothing was saved."""
        if not self._prepared:
            self.prepare()
        read, self._read = self._read, None
        if read is None:
            return None
        backends, bucket_accounts = self._pieces.assemble(read.shells, read.collections, read.bucket_accounts)
        live = live_backends()
        for (service, account, region), backend in backends.items():
            live[service][account][region] = backend
        # S3 finds a bucket's owner in a table beside its backends (a name is global across accounts)
        live["s3"].bucket_accounts.update(bucket_accounts)
        return Restored(saved_at=read.saved_at, clean=read.clean, path=str(self.path))

    def save(self, clean: bool = False) -> None:
        """Save what changed since the last save (a crash mid-write keeps the saves before it); every piece anew,
        as a new base, when the journal has grown large or nothing is known to be saved yet."""
        with self._lock:
            started = time.perf_counter()
            if not self.directory.is_dir():
                self._private_directory()
            anew = self._generation is None or not self.path.exists()
            compact = anew or self._journal_bytes is not None and \
                self._journal_bytes > max(COMPACT_AT * self._stats.base_bytes, COMPACT_AT_LEAST)
            try:
                written = self._compact(clean) if anew else self._rebase(clean) if compact else self._append(clean)
            except ChangedWhilePickled as exc:  # a request kept changing something: everything, at the next save
                self._generation = None
                logger.warning("local state not saved this time: it changed while being written; the next save "
                               "writes everything", extra={"error": str(exc)})
                return
            except BaseException:  # what this save took as changed may not be on disk: everything, next time
                self._generation = None
                raise
            if written:
                self._saved(time.perf_counter() - started, written, compact)

    def _compact(self, clean: bool) -> int:
        """Every piece pickled anew, as a new base (nothing is known to be saved)."""
        located = _Locations()

        def write(file) -> None:
            for record in self._pieces.everything():
                data = _record(record)
                located.note(record, (self.path, file.tell(), len(data)))
                file.write(data)

        size = self._new_base(write, clean)
        self._located = located
        return size

    def _rebase(self, clean: bool) -> int:
        """A new base from what changed (appended first) and the bytes of every other piece's latest record, copied
        from the base and journal: a piece is pickled once when it changes, not again at each new base."""
        self._append(False)
        runs, starts = self._located.runs(), []
        sources = {path: open(path, "rb") for path in {run[0] for run in runs}}  # closed below

        def write(file) -> None:
            for source, offset, length in runs:
                starts.append((source, offset, length, file.tell()))
                sources[source].seek(offset)
                while length:
                    chunk = sources[source].read(min(length, _COPY_CHUNK))
                    if not chunk:
                        raise _Damaged(f"{source} is shorter than its saves")
                    file.write(chunk)
                    length -= len(chunk)

        try:
            size = self._new_base(write, clean)
        finally:
            for source in sources.values():
                source.close()
        self._located.moved(self.path, starts)
        return size

    def _new_base(self, write, clean: bool) -> int:
        generation = uuid.uuid4().hex
        # a new file only its user can read (0600), beside the state, never through a link; then in its place
        descriptor, partial = tempfile.mkstemp(prefix="state.", suffix=".partial", dir=self.directory)
        try:
            with open(descriptor, "wb") as written:
                pickle.dump({"format": FORMAT, "generation": generation, "kind": "base"}, written,
                            protocol=pickle.HIGHEST_PROTOCOL)
                write(written)
                written.write(_record(("commit", _now(), clean)))
                size = written.tell()
            os.replace(partial, self.path)
        except BaseException:
            if os.path.exists(partial):
                os.unlink(partial)
            raise
        # The journal followed the base just replaced. A crash before this line leaves it behind, naming that
        # base's generation: it is not applied to this one.
        if os.path.lexists(self.journal_path):
            os.unlink(self.journal_path)
        self._generation, self._journal_bytes = generation, None
        self._stats.base_bytes, self._stats.journal_bytes = size, 0
        return size

    def _append(self, clean: bool) -> int:
        records = self._pieces.changed()
        if not records and not clean:
            return 0
        pieces = [(record, _record(record)) for record in records]
        batch = b"".join(data for _, data in pieces) + _record(("commit", _now(), clean))
        descriptor = private_file(self.journal_path, os.O_WRONLY | os.O_CREAT, "state journal", why=_LOADED_AS_CODE,
                                  instead="move it away")
        with open(descriptor, "wb") as journal:  # on a descriptor: not truncated
            if self._journal_bytes is None:  # a new journal, for this base
                os.ftruncate(descriptor, 0)
                journal.write(pickle.dumps({"format": FORMAT, "generation": self._generation, "kind": "journal"},
                                           protocol=pickle.HIGHEST_PROTOCOL))
                journal.flush()
                self._journal_bytes = journal.tell()
            elif os.fstat(descriptor).st_size != self._journal_bytes:  # a save cut short: its part goes
                os.ftruncate(descriptor, self._journal_bytes)
            journal.seek(self._journal_bytes)
            journal.write(batch)
            size = journal.tell()
        offset = self._journal_bytes
        for record, data in pieces:
            self._located.note(record, (self.journal_path, offset, len(data)))
            offset += len(data)
        written, self._journal_bytes = size - self._journal_bytes, size
        self._stats.journal_bytes = size
        return written

    def _saved(self, seconds: float, written: int, compacted: bool) -> None:
        stats = self._stats
        stats.saves += 1
        stats.compactions += compacted
        stats.last_save_s, stats.last_save_bytes, stats.last_save_compacted = seconds, written, compacted
        (logger.info if compacted else logger.debug)(
            "local state saved" + (": a new base" if compacted else ""),
            extra={"seconds": round(seconds, 4), "bytes_written": written, "base_bytes": stats.base_bytes,
                   "journal_bytes": stats.journal_bytes, "saves": stats.saves, "compactions": stats.compactions})

    def stats(self) -> SaveStats:
        """What saving has cost: the last save's time and bytes, the size on disk, saves and compactions."""
        with self._lock:
            return dataclasses.replace(self._stats)

    def keep_saving(self, stop: threading.Event) -> None:
        """Save every SNAPSHOT_INTERVAL_S until ``stop``; the stack saves a last, clean one as it stops."""
        while not stop.wait(SNAPSHOT_INTERVAL_S):
            try:
                self.save()
            except Exception as exc:  # noqa: BLE001  (said, and tried again: the next save writes everything)
                logger.warning("local state not saved", extra={"error": f"{type(exc).__name__}: {exc}"})


def default_state_dir(stage: str) -> Path:
    """Under the user's data directory (XDG_DATA_HOME, else ~/.local/share)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "obsflow" / "local" / stage


def _parameter_name(stage: str) -> str:
    return f"/obsflow/{stage}/local-stack"


def record_start(settings, session, state: StateDirectory | None, restored: Restored | None) -> None:
    """What a client may need to know about this local stack's state: when it started, and from what."""
    ssm = session.client("ssm", region_name=settings.region, endpoint_url=settings.endpoint_url)
    ssm.put_parameter(Name=_parameter_name(settings.stage), Type="String", Overwrite=True, Value=json.dumps({
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "state_dir": str(state.directory) if state else None,
        "restored": restored.describe() if restored else None,
    }))


def empty_stack_note(settings, ssm) -> str | None:
    """For a user who looks for something on a local stack that started without saved state: why it is not there."""
    try:
        started = json.loads(ssm.get_parameter(Name=_parameter_name(settings.stage))["Parameter"]["Value"])
    except Exception:  # noqa: BLE001  (no note is better than a second error)
        return None
    if started.get("restored"):
        return f"This local stack {started['restored']}."
    if started.get("state_dir"):
        return (f"This local stack started at {started['started_at']} with nothing saved yet in "
                f"{started['state_dir']}.")
    return (f"This local stack started at {started['started_at']} empty, without saved state: what an earlier "
            "stack held ended with it. `obsflow local serve --state-dir DIR` keeps it across restarts.")
